#!/usr/bin/env bash
# Stand-in for torc's tests/scripts/postprocess.sh (diamond example):
#   postprocess.sh -i A.json -i B.json -o OUT.json
# OUT gets {"count": n, "sum": s} over all numbers of the JSON lists in the inputs.
set -euo pipefail
inputs=(); outputs=()
while [ $# -gt 0 ]; do
    case "$1" in
        -i) inputs+=("$2"); shift 2 ;;
        -o) outputs+=("$2"); shift 2 ;;
        *) echo "postprocess.sh: unexpected argument $1" >&2; exit 2 ;;
    esac
done
if [ ${#inputs[@]} -lt 1 ] || [ ${#outputs[@]} -ne 1 ]; then
    echo "usage: postprocess.sh -i IN [-i IN ...] -o OUT" >&2; exit 2
fi
python3 - "${outputs[0]}" "${inputs[@]}" <<'PY'
import json, sys
target, *sources = sys.argv[1:]
values = []
for source in sources:
    with open(source) as f:
        values += json.load(f)
with open(target, "w") as f:
    json.dump({"count": len(values), "sum": sum(values)}, f)
PY
echo "postprocess: summed ${inputs[*]} into ${outputs[0]}"
