"""Values merged as Helm merges `-f a -f b` (and then --set): maps deeply, a later scalar or list
wins, and a null removes the key. A shallow {**a, **b} would drop a whole block of the first file.
Shared by the fake helm (helmtool.py, under .tools/venv's Python) and the chart tests."""
import json


def helm_merge(*layers):
    """A new dict: `layers` merged in order; none of them is changed."""
    merged = {}
    for layer in layers:
        merge_into(merged, json.loads(json.dumps(layer or {})))
    return merged


def merge_into(base, extra):
    for key, value in extra.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_into(base[key], value)
        else:
            base[key] = value
    return base
