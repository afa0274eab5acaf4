"""A diamond workflow built in Python, run locally, with its results as a DataFrame.

    python examples/python/diamond_workflow.py [--url URL] [--output-dir DIR]

preprocess writes a file that two work jobs read (torc infers those dependencies from the files);
postprocess waits for both. With no --url (and no TORC_API_URL) torc starts a private server on
DIR/torc.db for the run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torc


def build(output_dir: Path) -> torc.WorkflowBuilder:
    data = output_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    wf = torc.WorkflowBuilder("diamond", description="preprocess -> two work jobs -> postprocess")
    wf.add_resource_requirements("small", num_cpus=1, memory="200m", runtime="PT5M")
    wf.add_file("inputs", data / "inputs.txt")
    for i in (1, 2):
        wf.add_file(f"out{i}", data / f"out{i}.txt")
    wf.add_job("preprocess", f"{py} -c \"open('{data}/inputs.txt', 'w').write('3\\n')\"",
               output_files=["inputs"], resource_requirements="small")
    for i in (1, 2):
        wf.add_job(f"work{i}",
                   f"{py} -c \"n = int(open('{data}/inputs.txt').read()); open('{data}/out{i}.txt', 'w')"
                   f".write(str(n * {i}))\"",
                   input_files=["inputs"], output_files=[f"out{i}"], resource_requirements="small")
    wf.add_job("postprocess", f"{py} -c \"print(sum(int(open(f'{data}/out{{i}}.txt').read()) for i in (1, 2)))\"",
               input_files=["out1", "out2"], resource_requirements="small")
    return wf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("TORC_API_URL"))
    parser.add_argument("--output-dir", default="torc_output")
    args = parser.parse_args()
    output_dir = Path(args.output_dir).resolve()

    wf = build(output_dir)
    wf.validate()  # the same checks as a spec file; raises torc.SpecError listing every problem
    run = torc.run_workflow(wf, url=args.url, output_dir=output_dir, poll_interval=0.2, idle_timeout=10)
    print(f"workflow {run.workflow_id}: {run.job_counts}")
    for name, status in sorted(run.job_statuses.items()):
        print(f"  {name}: {status}")
    print("postprocess printed:", (run.logs("postprocess")["stdout"] or "").strip())
    if args.url:  # the server outlives the run: read the results back as a DataFrame
        with torc.connect(args.url) as api:
            frame = torc.results_dataframe(api, run.workflow_id)
            print(frame[["job_name", "status", "return_code"]].to_string(index=False))
    if not run.succeeded:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
