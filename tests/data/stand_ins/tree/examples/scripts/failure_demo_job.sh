#!/usr/bin/env bash
# Stand-in for torc's examples/scripts/failure_demo_job.sh:
#   failure_demo_job.sh --fail-rate P --work-time SECONDS
# Works for SECONDS, then fails with probability P, with one of the exit codes the failure-handler
# examples describe (10 convergence, 11 resources, 12 transient, 1 unrecoverable).
# Unlike torc's script it is deterministic: the "random" draw is a hash of the job name, the attempt
# and $STANDIN_SEED, so a test run always gives the same outcome, and a retry (next attempt) draws
# again. Each run appends "<program>\t<job>\t<exit code>\t<arg>..." to $STANDIN_CALLS, if set.
set -euo pipefail
exec python3 - "$0" "$@" <<'PY'
import hashlib, os, sys, time
program, *argv = sys.argv[1:]
fail_rate, work_time = 0.5, 0.0
for i, arg in enumerate(argv):
    if arg == "--fail-rate":
        fail_rate = float(argv[i + 1])
    elif arg == "--work-time":
        work_time = float(argv[i + 1])
job = os.environ.get("TORC_JOB_NAME", "")
key = f"{job}:{os.environ.get('TORC_ATTEMPT_ID', '1')}:{os.environ.get('STANDIN_SEED', '')}"
digest = hashlib.sha256(key.encode()).digest()
draw = int.from_bytes(digest[:8], "big") / 2**64
code = (10, 11, 12, 1)[digest[8] % 4] if draw < fail_rate else 0
time.sleep(work_time)
if os.environ.get("STANDIN_CALLS"):
    with open(os.environ["STANDIN_CALLS"], "a") as log:
        log.write("\t".join([program, job, str(code), *argv]) + "\n")
print(f"{job}: draw {draw:.3f} against fail rate {fail_rate}: exit {code}")
sys.exit(code)
PY
