#!/usr/bin/env bash
# Stand-in for torc's tests/scripts/work.sh (diamond example):
#   work.sh -i IN.json -o OUT.json
# Writes the squares of the JSON list of numbers in IN to OUT.
set -euo pipefail
inputs=(); outputs=()
while [ $# -gt 0 ]; do
    case "$1" in
        -i) inputs+=("$2"); shift 2 ;;
        -o) outputs+=("$2"); shift 2 ;;
        *) echo "work.sh: unexpected argument $1" >&2; exit 2 ;;
    esac
done
if [ ${#inputs[@]} -ne 1 ] || [ ${#outputs[@]} -ne 1 ]; then
    echo "usage: work.sh -i IN -o OUT" >&2; exit 2
fi
python3 - "${inputs[0]}" "${outputs[0]}" <<'PY'
import json, sys
source, target = sys.argv[1:]
with open(source) as f:
    values = json.load(f)
with open(target, "w") as f:
    json.dump([v * v for v in values], f)
PY
echo "work: squared ${inputs[0]} into ${outputs[0]}"
