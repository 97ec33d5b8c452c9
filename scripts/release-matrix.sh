#!/usr/bin/env bash
# The release matrix: the end-to-end test (tests/e2e/test_up.py) on each Debian release, one after
# the other, then a table of suite, Xen version, result and duration.
#
#   sudo scripts/release-matrix.sh                    # bullseye bookworm trixie (Xen 4.14, 4.17, 4.20)
#   sudo scripts/release-matrix.sh trixie             # only the suites given
#   MIRAGE_MATRIX_DIR=/some/dir scripts/release-matrix.sh   # where the logs go
#
# Each suite builds its own base image and provisions a fresh dom0: ~25-40 min per suite under TCG.
# Exit status: 0 when every suite passed, 1 when one failed (or ran no test), 2 on bad arguments.
set -u

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
SUPPORTED=(bullseye bookworm trixie)

suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=("${SUPPORTED[@]}")
for suite in "${suites[@]}"; do
    if [[ ! " ${SUPPORTED[*]} " == *" $suite "* ]]; then
        echo "release-matrix: unknown suite '$suite'. Fix: use one of ${SUPPORTED[*]}" >&2
        exit 2
    fi
done
if [ ! -x "$PYTHON" ]; then
    echo "release-matrix: no Python at $PYTHON. Fix: create the venv (see README) or set PYTHON=" >&2
    exit 2
fi

logdir=${MIRAGE_MATRIX_DIR:-/var/tmp/mirage-env-matrix/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$logdir"
summary="$logdir/results.txt"

row() { printf '%-10s %-12s %-34s %s\n' "$@"; }

# "== 7 passed, 1 skipped in 1234.56s ==" → "7 passed, 1 skipped"
outcome_of() { sed -n 's/^=* *\([0-9][0-9]* \(passed\|failed\|skipped\|error\).*\) in [0-9.]*s.*/\1/p' "$1" | tail -n 1; }

# The e2e test records the Xen version it found in the measurements section: "xen version: 4.17.5"
xen_of() { sed -n 's/^ *xen version: *\([0-9][0-9.a-z-]*\).*/\1/p' "$1" | head -n 1; }

failures=0
results=()
for suite in "${suites[@]}"; do
    log="$logdir/$suite.log"
    echo "release-matrix: $suite → $log"
    start=$(date +%s)
    MIRAGE_E2E_SUITE=$suite "$PYTHON" -m pytest -v -rs tests/e2e/test_up.py >"$log" 2>&1
    rc=$?
    seconds=$(( $(date +%s) - start ))
    outcome=$(outcome_of "$log")
    xen=$(xen_of "$log")
    # pytest exits 0 when everything was skipped: a row passes only when tests ran and none failed.
    if [ "$rc" -eq 0 ] && [[ "$outcome" == *passed* ]]; then
        result="passed ($outcome)"
    else
        result="FAILED (${outcome:-pytest exit $rc})"
        failures=$((failures + 1))
    fi
    results+=("$(row "$suite" "${xen:-?}" "$result" "$((seconds / 60))m$((seconds % 60))s")")
    echo "release-matrix: $suite: $result in ${seconds}s"
done

{
    row suite xen result duration
    printf '%s\n' "${results[@]}"
    echo "logs: $logdir"
} | tee "$summary"
[ "$failures" -eq 0 ]
