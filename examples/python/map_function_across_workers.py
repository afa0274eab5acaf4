"""Map a Python function over parameter sets: one torc job per set, plus a postprocess job.

    python examples/python/map_function_across_workers.py [--url URL] [--output-dir DIR]

With no --url (and no TORC_API_URL) torc starts a private server on DIR/torc.db for the run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

import torc

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("TORC_API_URL"))
    parser.add_argument("--output-dir", default="torc_output")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:  # a private server just for this example
            from torc.server.process import spawn_server

            out = Path(args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            server = spawn_server(out / "torc.db", out / "torc.server.log")
            stack.callback(server.stop)
            url = server.url
        api = stack.enter_context(torc.connect(url))
        workflow = api.workflows.create(name="map_simulation", description="a function mapped over parameters")
        params = [{"frequency": f, "steps": 200} for f in (0.5, 1.0, 1.5, 2.0)]
        jobs = torc.map_function_to_jobs(api, workflow.id, "simulation", "run", params,
                                         postprocess_func="summarize", module_directory=HERE)
        print(f"workflow {workflow.id}: {len(jobs)} jobs")
        run = torc.run_workflow(workflow.id, client=api, output_dir=args.output_dir, poll_interval=0.2,
                                idle_timeout=10)
        print("job counts:", run.job_counts)
        results = torc.mapped_results(api, workflow.id)
        for name in sorted(k for k in results if k.startswith("job_")):
            print(f"{name}: {results[name]}")
        print("summary:", results["postprocess_result"])
        if not run.succeeded:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
