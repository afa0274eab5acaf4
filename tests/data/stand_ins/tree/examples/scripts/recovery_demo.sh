#!/usr/bin/env bash
# Stand-in for torc's examples/scripts/recovery_demo.sh, the recovery script of the failure-handler
# examples (run before a retry): it records what it was called for and succeeds.
echo "recovery for job ${TORC_JOB_NAME:-?} (id ${TORC_JOB_ID:-?}), return code ${TORC_RETURN_CODE:-?}," \
     "attempt ${TORC_ATTEMPT_ID:-?}"
if [ -n "${STANDIN_CALLS:-}" ]; then
    printf '%s\t%s\t0\n' "$0" "${TORC_JOB_NAME:-}" >> "$STANDIN_CALLS"
fi
