"""Helm's own engine for the tests, through PyPI's helm-python-sdk (no helm binary can be had
here). It runs under the Python of .tools/venv, where scripts/setup-containers.sh installs it;
the tests call it as a subprocess and read JSON:

  helmtool.py render  '<values as JSON>' [release] [namespace]  -> {template path: manifest}
  helmtool.py lint                                             -> helm lint --strict's findings
  helmtool.py validate '<values as JSON>'                       -> {"ok": bool, "error": str}
"""
import json
import sys
from pathlib import Path

import helm_python

CHART = str(Path(__file__).resolve().parents[2] / "k8s" / "chart")


def main(command, *args):
    if command == "lint":
        return helm_python.lint(CHART, strict=True, kube_version="v1.31.0")
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
        print(json.dumps(main(*sys.argv[1:])))
    except helm_python.HelmError as error:
        print(json.dumps({"helm_error": str(error)}))
        sys.exit(3)
