#!/usr/bin/env bash
# Drive a whole workflow through torc's REST API with curl: create, initialize, claim, start,
# complete, and watch the dependent job become ready. Needs a running server, e.g.
#   torc-server run --database torc.db          (listens on localhost:8080)
# Usage: bash docs/examples/curl_walkthrough.sh [API_URL]
set -euo pipefail
API="${1:-http://localhost:8080/torc-service/v1}"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
call() { local method=$1 path=$2; shift 2; curl -sS --fail-with-body -X "$method" "$API/$path" \
           -H 'Content-Type: application/json' "$@"; }

# 1. A workflow (the server also creates its "default" resource requirements).
WF=$(call POST workflows -d '{"name": "curl-demo", "user": "'"${USER:-demo}"'"}' | json '["id"]')
echo "workflow $WF"

# 2. Two jobs: "report" depends on "compute".
COMPUTE=$(call POST jobs -d '{"workflow_id": '"$WF"', "name": "compute", "command": "echo 42"}' | json '["id"]')
REPORT=$(call POST jobs -d '{"workflow_id": '"$WF"', "name": "report", "command": "echo done",
                            "depends_on_job_ids": ['"$COMPUTE"']}' | json '["id"]')

# 3. Initialize: compute becomes ready, report blocked.
call POST "workflows/$WF/initialize_jobs" >/dev/null
call GET "jobs?workflow_id=$WF" | json '["items"]' | tr ',' '\n' | grep -E "'name'|'status'" | paste - - || true

# 4. A runner would register itself; then claim what fits 4 CPUs and 8 GiB.
NODE=$(call POST compute_nodes -d '{"workflow_id": '"$WF"', "hostname": "laptop", "pid": 1, "start_time": "now",
        "num_cpus": 4, "memory_gb": 8, "num_gpus": 0, "num_nodes": 1, "compute_node_type": "local"}' | json '["id"]')
RUN=$(call GET "workflows/$WF/status" | json '["run_id"]')
CLAIMED=$(call POST "workflows/$WF/claim_jobs_based_on_resources/10" \
          -d '{"num_cpus": 4, "memory_gb": 8, "num_gpus": 0, "num_nodes": 1}' | json '["jobs"][0]["id"]')
echo "claimed job $CLAIMED"

# 5. Start it, run it, report the result.
call PUT "jobs/$CLAIMED/start_job/$RUN/$NODE" >/dev/null
call POST "jobs/$CLAIMED/complete_job/completed/$RUN" -d '{"job_id": '"$CLAIMED"', "workflow_id": '"$WF"',
     "run_id": '"$RUN"', "compute_node_id": '"$NODE"', "return_code": 0, "exec_time_minutes": 0.01,
     "completion_time": "2026-01-01T00:00:00.000Z", "status": "completed"}' >/dev/null

# 6. The dependent is ready at once; finish it too.
echo "report is now: $(call GET "jobs/$REPORT" | json '["status"]')"
NEXT=$(call POST "workflows/$WF/claim_next_jobs?limit=1" | json '["jobs"][0]["id"]')
call PUT "jobs/$NEXT/start_job/$RUN/$NODE" >/dev/null
call POST "jobs/$NEXT/complete_job/completed/$RUN" -d '{"return_code": 0, "exec_time_minutes": 0.01,
     "completion_time": "2026-01-01T00:00:01.000Z", "compute_node_id": '"$NODE"'}' >/dev/null
echo "is_complete: $(call GET "workflows/$WF/is_complete" | json '["is_complete"]')"
