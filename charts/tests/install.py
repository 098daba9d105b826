"""Installs a chart for real with Helm's engine (PyPI helm-python-sdk, Helm v4's Go SDK): the
same code path as `helm install --wait`, release stored in the cluster, `lookup` against the
live API server. Used by `cargo xtask e2e` (xtask/src/e2e.rs), which holds the checks.

usage: install.py CHART_DIR KUBECONFIG RELEASE NAMESPACE VALUES_JSON TIMEOUT_SECONDS
prints the release's manifest (the rendered objects, YAML) on stdout.
"""

import json
import sys

import helm_python as helm


def main() -> None:
    chart_dir, kubeconfig, release, namespace, values_json, timeout = sys.argv[1:7]
    values = json.loads(values_json)
    config = helm.Config(kubeconfig_path=kubeconfig, namespace=namespace)
    config.check_reachable()
    chart = helm.Chart.load(chart_dir)
    # "watcher": Helm waits until every object it made is ready (Deployments available,
    # DaemonSets scheduled and ready), or fails after the timeout.
    result = config.install(chart, release, values, namespace=namespace, wait="watcher", timeout=int(timeout))
    manifest = result.get("manifest")
    if not manifest:
        sys.exit(f"install.py: the release has no manifest (keys: {sorted(result)})")
    sys.stdout.write(manifest)


if __name__ == "__main__":
    main()
