#!/usr/bin/env bash
# Stand-in for torc's tests/scripts/preprocess.sh (diamond example):
#   preprocess.sh -i IN.json -o A.json -o B.json
# IN holds a JSON list of numbers; A gets its first half, B the rest.
set -euo pipefail
inputs=(); outputs=()
while [ $# -gt 0 ]; do
    case "$1" in
        -i) inputs+=("$2"); shift 2 ;;
        -o) outputs+=("$2"); shift 2 ;;
        *) echo "preprocess.sh: unexpected argument $1" >&2; exit 2 ;;
    esac
done
if [ ${#inputs[@]} -ne 1 ] || [ ${#outputs[@]} -ne 2 ]; then
    echo "usage: preprocess.sh -i IN -o OUT1 -o OUT2" >&2; exit 2
fi
python3 - "${inputs[0]}" "${outputs[@]}" <<'PY'
import json, sys
source, first, second = sys.argv[1:]
with open(source) as f:
    values = json.load(f)
half = (len(values) + 1) // 2
with open(first, "w") as f:
    json.dump(values[:half], f)
with open(second, "w") as f:
    json.dump(values[half:], f)
PY
echo "preprocess: split ${inputs[0]} into ${outputs[*]}"
