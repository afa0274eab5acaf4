#!/usr/bin/env python3
"""Stand-in for a helper program that a torc example calls but torc does not ship
(scripts/preprocess.py, train.py, ./run_simulation, ...), and for wget (no network in tests).

It ignores what the arguments mean and only produces files:
  - the output files the calling job declares: $STANDIN_MANIFEST names a file of
    "<job name>\\t<path>" lines listing each job's declared output files (job: $TORC_JOB_NAME);
  - every path given to an output-like option: -o X, -O X, --output X, --output=X,
    --model-output=X (any option ending in "output"), so files the spec does not declare exist
    too for the jobs and actions that read them next.
Parent directories are created. A *.tar.gz path gets a real gzipped tar archive holding
<name>/data.csv, so `tar -xzf` works on what the wget stand-in "downloaded". A path outside the
working directory is refused (exit 2), so a spec whose absolute paths were not rewritten fails
loudly instead of writing into /.
Each call appends a line "<program>\\t<job>\\t<return code>\\t<arg>\\t<arg>..." to $STANDIN_CALLS,
if set. Only os and sys are imported up front: the barrier example runs this 2100 times.
"""

import os
import sys

OUTPUT_OPTIONS = {"-o", "-O", "--output"}


def output_args(argv: list[str]) -> list[str]:
    paths = []
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if not name.startswith("-"):
            continue
        if name in OUTPUT_OPTIONS or name.endswith("output"):
            if eq:
                paths.append(value)
            elif i + 1 < len(argv):
                paths.append(argv[i + 1])
    return paths


def declared_outputs(job: str | None) -> list[str]:
    manifest = os.environ.get("STANDIN_MANIFEST")
    if not job or not manifest:
        return []
    with open(manifest) as f:
        rows = (line.rstrip("\n").split("\t", 1) for line in f)
        return [path for name, path in rows if name == job]


def write_archive(path: str, payload: bytes) -> None:
    import io
    import tarfile

    name = os.path.basename(path)[: -len(".tar.gz")]
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(f"{name}/data.csv")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))


def main() -> int:
    program = os.environ.get("STANDIN_PROGRAM") or sys.argv[0]
    argv = sys.argv[1:]
    job = os.environ.get("TORC_JOB_NAME")
    here = os.path.realpath(os.getcwd())
    content = f"written by stand-in {program} for job {job}: {' '.join(argv)}\n"
    for path in dict.fromkeys([*declared_outputs(job), *output_args(argv)]):
        if os.path.commonpath([here, os.path.realpath(path)]) != here:
            print(f"stand-in {program}: refusing to write {path} outside {here}", file=sys.stderr)
            return 2
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if path.endswith(".tar.gz"):
            write_archive(path, content.encode())
        else:
            with open(path, "w") as f:
                f.write(content)
    calls = os.environ.get("STANDIN_CALLS")
    if calls:
        with open(calls, "a") as log:
            log.write("\t".join([program, job or "", "0", *argv]) + "\n")
    print(f"stand-in {program} ran for job {job}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
