#!/bin/sh
# Entry point of the ibconform image (deploy/Containerfile), run by the Job of deploy/job.yaml: the whole
# suite on the inventory mounted from a ConfigMap, the report in a new folder on the mounted reports volume,
# and ibconform's exit code as the container's (0 every check passed, 1 some failed, 2 interrupted,
# 3 internal error, 4 usage error), so the Job succeeds exactly when the cluster passes. Arguments are
# passed on to `ibconform run` (e.g. --read-only). The API is reached with the pod's ServiceAccount.
set -eu

inventory="${IBCONFORM_INVENTORY:-/etc/ibconform/inventory.yaml}"
reports="${IBCONFORM_REPORTS:-/reports}"

if [ ! -d "$reports" ] || [ ! -w "$reports" ]; then
    echo "ibconform-job: error: $reports: not a writable folder: mount the reports volume there" \
        "(deploy/job.yaml) or set IBCONFORM_REPORTS" >&2
    exit 4
fi
pod=$(printf '%s' "${HOSTNAME:-pod}" | tr -c 'A-Za-z0-9.-' '_')
out="$reports/run-$(date -u +%Y%m%dT%H%M%SZ)-$pod"

exec ibconform run --inventory "$inventory" --out "$out" "$@"
