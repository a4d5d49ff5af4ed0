#!/usr/bin/env python3
"""The functions that ran the most instructions (self cost) in callgrind output files, per request.

    bench/callgrind-top.py REQUESTS FILE... [--top N]

callgrind_annotate attributes everything to the thread's entry point once the counters have been
zeroed mid-run (as the bench scripts do after their warm-up), so this reads the files itself:
`fn=` starts a function's lines, `calls=` lines are followed by the callee's inclusive cost (not
this function's own), and names and object files are compressed to `(id)` after first use."""
import collections
import re
import sys


def self_costs(path, costs):
    names, objects = {}, {}
    current, obj, after_calls = None, "?", False
    named = re.compile(r"^(c?)(fn|ob|fl|fi|fe|cfi|cfl|cob)=\((\d+)\)(?: (.*))?$")
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = named.match(line)
        if m:
            kind, ident, text = m.group(2), m.group(3), m.group(4)
            table = objects if kind in ("ob", "cob") else names
            if text:
                table[(kind.lstrip("c") if kind != "cob" else "ob", ident)] = text
            if line.startswith("ob="):
                obj = objects.get(("ob", ident), ident).rsplit("/", 1)[-1]
            elif line.startswith("fn="):
                current = (obj, names.get(("fn", ident), ident))
            continue
        if line.startswith("calls="):
            after_calls = True
            continue
        if current and line[:1] in "0123456789+-*":
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                if after_calls:
                    after_calls = False
                else:
                    costs[current] += int(fields[1])


def main():
    args = sys.argv[1:]
    top = 25
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i:i + 2]
    requests, files = int(args[0]), args[1:]
    costs = collections.Counter()
    for path in files:
        self_costs(path, costs)
    total = sum(costs.values())
    print(f"{total / requests:10.0f}  instructions per request, by function (self):")
    for (obj, fn), cost in costs.most_common(top):
        print(f"{cost / requests:10.0f}  {100 * cost / total:5.1f}%  {fn}  [{obj}]")


if __name__ == "__main__":
    main()
