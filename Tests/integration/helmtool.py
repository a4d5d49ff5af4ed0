"""Helm's own engine for the tests, through PyPI's helm-python-sdk (no helm binary can be had
here). It runs under the Python of .tools/venv, where scripts/setup-containers.sh installs it;
the tests call it as a subprocess and read JSON:

  helmtool.py render  '<values as JSON>' [release] [namespace]  -> {template path: manifest}
  helmtool.py lint                                             -> helm lint --strict's findings
  helmtool.py validate '<values as JSON>'                       -> {"ok": bool, "error": str}
  helmtool.py cli template NAME CHART [--namespace NS] [--set K=V] [-f FILE]...
                                     -> what `helm template` prints; the fake `helm` of fakehelm/
                                        runs this, so scripts that call helm are tested with
                                        Helm's own value parsing and rendering
"""
import json
import os
import sys
from pathlib import Path

import helm_python

from valuesmerge import merge_into

# HELMTOOL_CHART: another copy of the chart (tests that change one of its files).
CHART = os.environ.get("HELMTOOL_CHART") or str(Path(__file__).resolve().parents[2] / "k8s" / "chart")


def cli(verb, *args):
    """`helm template` (and `helm upgrade --install`, which here only renders) with the flags our
    scripts use: values files in order, then --set expressions, as helm applies them."""
    if verb not in ("template", "upgrade"):
        raise SystemExit(f"fake helm: {verb} is not supported")
    positional, values, sets, namespace = [], {}, [], "default"
    items = iter(args)
    for arg in items:
        if arg in ("--namespace", "-n"):
            namespace = next(items)
        elif arg == "--set":
            sets.append(next(items))
        elif arg in ("-f", "--values"):
            import yaml
            merge_into(values, yaml.safe_load(Path(next(items)).read_text()) or {})
        elif arg == "--timeout":
            next(items)
        elif arg.startswith("-"):
            continue  # --install, --wait, --create-namespace
        else:
            positional.append(arg)
    name, chart_path = positional
    for expression in sets:
        merge_into(values, helm_python.parse_set_string(expression))
    chart = helm_python.Chart.load(chart_path)
    try:
        rendered = chart.render(values, name=name, namespace=namespace, is_install=True)
    finally:
        chart.close()
    return "".join(f"---\n# Source: {path}\n{text}\n" for path, text in sorted(rendered.items())
                   if not path.endswith("NOTES.txt") and text.strip())


def main(command, *args):
    if command == "lint":
        return helm_python.lint(CHART, strict=True, kube_version="v1.35.0")
    chart = helm_python.Chart.load(CHART)
    try:
        values = json.loads(args[0]) if args else {}
        if command == "render":
            name = args[1] if len(args) > 1 else "counter-api"
            namespace = args[2] if len(args) > 2 else "counter-api"
            return chart.render(values, name=name, namespace=namespace, is_install=True)
        if command == "validate":
            try:
                chart.validate_schema(values)
                return {"ok": True, "error": ""}
            except helm_python.HelmError as error:
                return {"ok": False, "error": str(error)}
        raise SystemExit(f"unknown command {command}")
    finally:
        chart.close()


if __name__ == "__main__":
    try:
        if sys.argv[1] == "cli":
            sys.stdout.write(cli(*sys.argv[2:]))
            sys.exit(0)
        print(json.dumps(main(*sys.argv[1:])))
    except helm_python.HelmError as error:
        print(json.dumps({"helm_error": str(error)}))
        sys.exit(3)
