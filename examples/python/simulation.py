"""Functions that examples/python/map_function_across_workers.py maps over parameter sets.

torc imports this module inside each job (`python -m torc.mapping run-function`), calls
`run(params)` with one parameter set, and stores the returned dict as the job's output user data.
"""

from __future__ import annotations

import math


def run(params: dict) -> dict:
    """One 'simulation': the damped oscillation of the given frequency, sampled `steps` times."""
    frequency = float(params["frequency"])
    steps = int(params.get("steps", 100))
    peak = max(abs(math.exp(-0.01 * t) * math.sin(frequency * t)) for t in range(steps))
    return {"frequency": frequency, "peak": round(peak, 6)}


def summarize(results: list[dict]) -> dict:
    """Postprocess: combine every simulation's result."""
    best = max(results, key=lambda r: r["peak"])
    return {"count": len(results), "best_frequency": best["frequency"], "best_peak": best["peak"]}
