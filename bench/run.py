"""torc benchmarks: workflow creation, claim throughput, fan-in unblocking, `torc run` throughput.

    .venv/bin/python bench/run.py --quick              # small sizes, about a minute
    .venv/bin/python bench/run.py                      # default sizes
    .venv/bin/python bench/run.py --only claims --runners 32
    .venv/bin/python bench/run.py --only runner --runner-jobs 10000
    .venv/bin/python bench/run.py --only claims-pg     # claims on PostgreSQL next to SQLite (scripts/postgres-up.sh)

Every figure is printed with a baseline measured in the same run and the ratio to it; compare
ratios across runs and machines, not raw numbers. Nothing here asserts on timings. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BenchError, Figure, fmt, machine_info, make_workdir  # noqa: E402
from runner_bench import bench_runner  # noqa: E402
from scenarios import (  # noqa: E402
    bench_claims,
    bench_claims_per_job,
    bench_claims_pg,
    bench_creation,
    bench_fanin,
    bench_spec,
)

BENCHES = ("creation", "claims", "spec", "fanin", "runner", "claims-pg")
DEFAULT_BENCHES = BENCHES[:-1]  # claims-pg needs a PostgreSQL server: only when asked for
DEFAULT_POSTGRES_URL = "postgresql://postgres@localhost:5433/postgres"  # scripts/postgres-up.sh
DEFAULTS = {"jobs": 100_000, "claim_jobs": 20_000, "per_job_jobs": 2_000, "fan_in": 10_000, "spec_pairs": 50_000,
            "runner_jobs": 10_000}
QUICK = {"jobs": 5_000, "claim_jobs": 2_000, "per_job_jobs": 300, "fan_in": 1_000, "spec_pairs": 2_500,
         "runner_jobs": 1_000}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small sizes: 5k jobs, 2k claims, 300 per-job claims, 1k fan-in, 1k runner jobs "
                        "(explicit sizes win)")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help=f"run only these benchmarks ({', '.join(BENCHES)}); repeat or comma-separate")
    p.add_argument("--jobs", type=int, help=f"creation: jobs to create (default {DEFAULTS['jobs']:,})")
    p.add_argument("--runners", type=int, default=16, help="claims: concurrent runner threads (default 16)")
    p.add_argument("--claim-jobs", type=int,
                   help=f"claims: ready jobs for the batched variant (default {DEFAULTS['claim_jobs']:,})")
    p.add_argument("--claim-limit", type=int, default=8,
                   help="claims: limit of claim_jobs_based_on_resources (default 8)")
    p.add_argument("--per-job-jobs", type=int,
                   help=f"claims: jobs for the per-job endpoint variant (default {DEFAULTS['per_job_jobs']:,}; 0 skips)")
    p.add_argument("--spec-pairs", type=int,
                   help=f"spec: parameter values; the spec expands to twice as many jobs and files "
                        f"(default {DEFAULTS['spec_pairs']:,})")
    p.add_argument("--fan-in", type=int, help=f"fanin: leaf jobs (default {DEFAULTS['fan_in']:,})")
    p.add_argument("--fan-in-batch", type=int, default=100, help="fanin: leaves per complete_jobs request (default 100)")
    p.add_argument("--no-reverse", action="store_true",
                   help="fanin: skip the variant that completes the leaves in reverse id order")
    p.add_argument("--runner-jobs", type=int,
                   help=f"runner: jobs in the start -> work -> end workflow run by `torc run` "
                        f"(default {DEFAULTS['runner_jobs']:,})")
    p.add_argument("--runner-cprofile", type=Path, metavar="DIR",
                   help="runner: run `torc run` under cProfile, .pstats files in DIR (slows it: not for figures)")
    p.add_argument("--runner-torc-cmd", metavar="CMD",
                   help="runner: run this command line instead of `python -m torc.cli.main` (e.g. another torc "
                        "build); `--url URL run ID --no-progress -o DIR` is appended")
    p.add_argument("--postgres-url", default=os.environ.get("TORC_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
                   help="claims-pg: PostgreSQL server to make a throwaway database on (default "
                        "$TORC_TEST_POSTGRES_URL or the scripts/postgres-up.sh cluster)")
    p.add_argument("--workdir", type=Path, help="where the temporary databases go (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the databases and server logs")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="attach py-spy (must be on PATH or given by --py-spy) to each server; collapsed stacks (flamegraph/speedscope input) in DIR")
    p.add_argument("--py-spy", default=None, help="path to the py-spy binary for --profile")
    p.add_argument("--json-out", type=Path, help="also write the JSON summary to this file")
    args = p.parse_args(argv)
    only = [name.strip() for item in args.only for name in item.split(",") if name.strip()]
    unknown = [n for n in only if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHES)}")
    args.only = only or list(DEFAULT_BENCHES)
    sizes = QUICK if args.quick else DEFAULTS
    for key, value in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def print_table(figures: list[Figure]) -> None:
    rows = [("figure", "value", "baseline", "ratio", "cpu ratio")]
    for f in figures:
        rows.append((f.label, fmt(f.value, f.unit), f"{fmt(f.baseline)} ({f.baseline_label})" if f.baseline else "-",
                     f"{f.ratio:.2f}x" if f.ratio is not None else "-",
                     f"{f.cpu_ratio:.2f}x" if f.cpu_ratio is not None and f.cpu_ratio == f.cpu_ratio else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = "-+-".join("-" * w for w in widths)
    for index, row in enumerate(rows):
        print(" | ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))))
        if index == 0:
            print(line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    workdir = args.workdir or make_workdir(args.keep)
    workdir.mkdir(parents=True, exist_ok=True)
    py_spy = None
    if args.profile:
        py_spy = args.py_spy or shutil.which("py-spy")
        if not py_spy:
            print("--profile: py-spy not found (pip install py-spy, or pass --py-spy PATH)", file=sys.stderr)
            return 2
    profile = {"profile_dir": args.profile, "py_spy": py_spy}
    sizes = {"jobs": args.jobs, "runners": args.runners, "claim_jobs": args.claim_jobs, "claim_limit": args.claim_limit,
             "per_job_jobs": args.per_job_jobs, "fan_in": args.fan_in, "fan_in_batch": args.fan_in_batch,
             "spec_pairs": args.spec_pairs, "runner_jobs": args.runner_jobs}
    print(f"torc benchmarks ({'quick' if args.quick else 'default'} sizes) on {info.get('cpu', '?')}, "
          f"nproc={info['nproc']}, Python {info['python']}, SQLite {info['sqlite']}, {info['date']}")
    print(f"sizes: {sizes}; workdir {workdir}")

    figures: list[Figure] = []
    failures: dict[str, str] = {}
    seconds: dict[str, float] = {}
    plan = []
    if "creation" in args.only:
        plan.append(("creation", lambda: bench_creation(workdir, args.jobs, profile)))
    if "claims" in args.only:
        plan.append(("claims", lambda: bench_claims(workdir, args.claim_jobs, args.runners, args.claim_limit, profile)))
        if args.per_job_jobs > 0:
            plan.append(("claims_per_job", lambda: bench_claims_per_job(workdir, args.per_job_jobs, args.runners,
                                                                        profile)))
    if "claims-pg" in args.only:
        plan.append(("claims-pg", lambda: bench_claims_pg(workdir, args.claim_jobs, args.runners, args.claim_limit,
                                                          profile, args.postgres_url)))
    if "spec" in args.only:
        plan.append(("spec", lambda: bench_spec(workdir, args.spec_pairs, profile)))
    if "fanin" in args.only:
        plan.append(("fanin", lambda: bench_fanin(workdir, args.fan_in, args.fan_in_batch, not args.no_reverse,
                                                  profile)))
    if "runner" in args.only:
        plan.append(("runner", lambda: bench_runner(workdir, args.runner_jobs, profile, args.runner_cprofile,
                                                    args.runner_torc_cmd)))
    for name, fn in plan:
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            got = fn()
        except (BenchError, Exception) as exc:  # report and go on with the next benchmark
            failures[name] = repr(exc)
            traceback.print_exc()
            continue
        finally:
            seconds[name] = round(time.perf_counter() - t0, 1)
        for f in got:
            ratio = f"  ratio {f.ratio:.2f}x" if f.ratio is not None else ""
            if f.cpu_ratio is not None:
                ratio += f" (CPU ratio {f.cpu_ratio:.2f}x)"
            print(f"  {f.label}: {fmt(f.value, f.unit)}  (baseline {fmt(f.baseline)}: {f.baseline_label}){ratio}")
            for key, value in f.extra.items():
                print(f"      {key}: {value}")
        figures.extend(got)

    print()
    print_table(figures)
    summary = {
        "torc_bench": 1,
        "mode": "quick" if args.quick else "default",
        "machine": info,
        "sizes": sizes,
        "figures": {f.key: {"value": round(f.value, 4), "unit": f.unit,
                            "baseline": round(f.baseline, 4) if f.baseline is not None else None,
                            "ratio": round(f.ratio, 3) if f.ratio is not None else None,
                            "cpu_ratio": round(f.cpu_ratio, 3) if f.cpu_ratio is not None
                            and f.cpu_ratio == f.cpu_ratio else None} for f in figures},
        "bench_seconds": seconds,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "failures": failures,
    }
    line = json.dumps(summary, separators=(",", ":"), sort_keys=False)
    if args.json_out:
        args.json_out.write_text(line + "\n")
    if args.keep:
        print(f"kept: {workdir}", file=sys.stderr)
    print(line, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
