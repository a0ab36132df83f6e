#!/usr/bin/env bash
# Validates deploy/ offline: Kubernetes schemas (strict), OpenShift and Prometheus Operator
# kinds against deploy/schemas, cross-object lints, the federation scrape config (promtool),
# the args of every Thanos container against our binary (with --thanos), and a self-test
# with deliberately broken manifests. Last line: `N passed, M failed`; exit 1 on failure.
#
#   deploy/validate.sh [--thanos target/debug/thanos] [-v]
#
# The Python packages of deploy/requirements.txt are installed with pip into a virtualenv
# ($DEPLOY_VENV, default target/deploy-venv), once per requirements change.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${DEPLOY_VENV:-$here/../target/deploy-venv}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv" || { echo "validate.sh: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi
exec "$venv/bin/python" "$here/validate.py" "$@"
