"""Lints and renders a chart with Helm's own engine (PyPI helm-python-sdk, Helm v4's Go SDK)
and prints JSON on stdout for the Rust tests (webhook/tests/chart.rs), which hold the checks.

usage: render.py CHART_DIR VALUES_JSON RELEASE NAMESPACE
prints {"lint": {...}, "values": chart defaults, "objects": [{"template": path, "object": {...}}, ...], "notes": str}
"""

import json
import sys

import helm_python as helm
import yaml


def main() -> None:
    chart_dir, values_json, release, namespace = sys.argv[1:5]
    values = json.loads(values_json)
    lint = helm.lint(chart_dir, values, strict=True, namespace=namespace, kube_version="v1.37.0")
    chart = helm.Chart.load(chart_dir)
    manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    objects, notes = [], ""
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                objects.append({"template": template, "object": doc})
    json.dump({"lint": lint, "values": chart.values, "objects": objects, "notes": notes}, sys.stdout)


if __name__ == "__main__":
    main()
