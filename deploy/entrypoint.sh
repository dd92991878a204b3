#!/bin/sh
# Entry point of the ibconform image (deploy/Containerfile), run by the Jobs of deploy/job.yaml and
# deploy/fleet-job.yaml, with ibconform's exit code as the container's (0 every check passed, 1 some failed,
# 2 interrupted, 3 internal error, 4 usage error), so a Job succeeds exactly when its nodes pass. The API is
# reached with the pod's ServiceAccount.
#
#   ibconform-job [ARGS]        `ibconform run` on the mounted inventory, ARGS passed on (e.g. --read-only); the
#                               report in a new folder $IBCONFORM_REPORTS/run-<UTC time>-<pod>
# A fleet run (deploy/fleet-job.yaml) names its folder on the shared volume in IBCONFORM_RUN_DIR:
#   ibconform-job snapshot      the cluster Lists, once: `ibconform snapshot` into $IBCONFORM_RUN_DIR/snapshot
#   ibconform-job [ARGS]        with JOB_COMPLETION_INDEX set (an Indexed Job's pod): the report in
#                               $IBCONFORM_RUN_DIR/shard-<index>; what an earlier attempt of that index left there
#                               (killed, evicted) is first moved to $IBCONFORM_RUN_DIR/attempts/shard-<index>-<UTC
#                               time>-<this pod>, never merged
#   ibconform-job merge         `ibconform merge` of $IBCONFORM_RUN_DIR/shard-* into $IBCONFORM_RUN_DIR/fleet
set -eu

inventory="${IBCONFORM_INVENTORY:-/etc/ibconform/inventory.yaml}"
reports="${IBCONFORM_REPORTS:-/reports}"
run_dir="${IBCONFORM_RUN_DIR:-}"

fail() {
    echo "ibconform-job: error: $*" >&2
    exit 4
}

if [ ! -d "$reports" ] || [ ! -w "$reports" ]; then
    fail "$reports: not a writable folder: mount the reports volume there (deploy/job.yaml) or set IBCONFORM_REPORTS"
fi
pod=$(printf '%s' "${HOSTNAME:-pod}" | tr -c 'A-Za-z0-9.-' '_')
stamp=$(date -u +%Y%m%dT%H%M%SZ)

case "${1:-}" in
snapshot | merge)
    step=$1
    shift
    [ -n "$run_dir" ] || fail "$step: IBCONFORM_RUN_DIR is not set: name the fleet run's folder on the volume" \
        "(deploy/fleet-job.yaml)"
    mkdir -p "$run_dir"
    if [ "$step" = snapshot ]; then
        exec ibconform snapshot --inventory "$inventory" --out "$run_dir/snapshot" "$@"
    fi
    [ $# -eq 0 ] || fail "merge: takes no arguments (it merges $run_dir/shard-*)"
    set -- "$run_dir"/shard-*
    [ -e "$1" ] || fail "merge: no shard-* folder in $run_dir: run the fleet Job first"
    exec ibconform merge "$@" --out "$run_dir/fleet"
    ;;
esac

if [ -n "$run_dir" ] && [ -n "${JOB_COMPLETION_INDEX:-}" ]; then
    case "$JOB_COMPLETION_INDEX" in
    *[!0-9]*) fail "JOB_COMPLETION_INDEX: expected a number vs '$JOB_COMPLETION_INDEX' (set by an Indexed Job)" ;;
    esac
    out="$run_dir/shard-$JOB_COMPLETION_INDEX"
    if [ -e "$out" ]; then   # an earlier attempt of this index: set aside whole, so the merge sees one per index
        mkdir -p "$run_dir/attempts"
        mv "$out" "$run_dir/attempts/shard-$JOB_COMPLETION_INDEX-$stamp-$pod"
    fi
else
    out="$reports/run-$stamp-$pod"
fi

exec ibconform run --inventory "$inventory" --out "$out" "$@"
