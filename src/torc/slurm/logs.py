"""Diagnosing allocations from Slurm's own output files (`torc slurm parse-logs`, reference §6.3).

Each allocation writes `<out>/slurm_output_wf<W>_sl<JOBID>.o` and `.e` (see torc.slurm.submit).
`scan_text` finds known failure patterns in such text; `correlate` maps each finding to the
scheduled compute node with that Slurm job id and to the torc jobs that ran in the allocation
(results whose compute node, of type slurm, carries that Slurm job id). Pure functions: the
command reads the files and the records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# (kind, severity, pattern): the first pattern that matches a line names it
PATTERNS: list[tuple[str, str, re.Pattern[str]]] = [
    ("out_of_memory", "error", re.compile(r"oom[-_ ]kill|out of memory|OUT_OF_MEMORY|Exceeded job memory limit",
                                          re.IGNORECASE)),
    ("time_limit", "error", re.compile(r"DUE TO TIME LIMIT|\bTIME LIMIT\b|\bTIMEOUT\b")),
    ("node_failure", "error", re.compile(r"NODE_FAIL|node fail(ure|ed)|DUE TO NODE FAILURE", re.IGNORECASE)),
    ("cancelled", "error", re.compile(r"CANCELLED AT|\bCANCELLED\b")),
    ("srun_error", "error", re.compile(r"srun: error|slurmstepd: error|Unable to (create|launch) (step|job)|"
                                       r"task launch failed|launch failed", re.IGNORECASE)),
    ("signal", "warning", re.compile(r"Terminated|Killed|Segmentation fault|core dumped|Bus error")),
]

FILE_RE = re.compile(r"^slurm_output_wf(?P<wf>\d+)_sl(?P<job>\d+)\.(?P<stream>[oe])$")


@dataclass
class Finding:
    kind: str
    severity: str
    slurm_job_id: str
    file: str
    line_number: int
    line: str
    scheduled_compute_node_id: int | None = None
    job_ids: list[int] = field(default_factory=list)
    job_names: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify(line: str) -> tuple[str, str] | None:
    """(kind, severity) of a log line, or None when it matches no known pattern."""
    for kind, severity, pattern in PATTERNS:
        if pattern.search(line):
            return kind, severity
    return None


def scan_text(text: str, *, slurm_job_id: str, file: str = "") -> list[Finding]:
    """Findings in one log's text, one per matching line."""
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        hit = classify(line)
        if hit:
            findings.append(Finding(kind=hit[0], severity=hit[1], slurm_job_id=str(slurm_job_id), file=file,
                                    line_number=number, line=line.strip()[:300]))
    return findings


def log_files(output_dir: Path, workflow_id: int) -> list[tuple[str, Path]]:
    """(Slurm job id, path) of the workflow's Slurm output files in output_dir, by job id then .o/.e."""
    found = []
    if not Path(output_dir).is_dir():
        return found
    for path in Path(output_dir).iterdir():
        m = FILE_RE.match(path.name)
        if m and int(m["wf"]) == workflow_id:
            found.append((m["job"], path))
    return sorted(found, key=lambda item: (int(item[0]), item[1].name))


def scan_files(files: Iterable[tuple[str, Path]]) -> list[Finding]:
    findings = []
    for job_id, path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        findings += scan_text(text, slurm_job_id=job_id, file=str(path))
    return findings


def jobs_by_allocation(compute_nodes: Iterable[dict[str, Any]], results: Iterable[dict[str, Any]],
                       jobs: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Slurm job id -> the torc jobs (id, name) with a result from a compute node of that allocation."""
    allocation_of = {}
    for node in compute_nodes:
        info = node.get("scheduler") or {}
        if isinstance(info, dict) and info.get("slurm_job_id") not in (None, ""):
            allocation_of[node["id"]] = str(info["slurm_job_id"])
    names = {j["id"]: j.get("name") for j in jobs}
    out: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        slurm_id = allocation_of.get(result.get("compute_node_id"))
        if slurm_id is None:
            continue
        entries = out.setdefault(slurm_id, [])
        if all(e["id"] != result["job_id"] for e in entries):
            entries.append({"id": result["job_id"], "name": names.get(result["job_id"])})
    return out


def correlate(findings: list[Finding], scheduled_nodes: Iterable[dict[str, Any]],
              compute_nodes: Iterable[dict[str, Any]], results: Iterable[dict[str, Any]],
              jobs: Iterable[dict[str, Any]]) -> list[Finding]:
    """Fill each finding's scheduled compute node and torc jobs from the workflow's records."""
    scn_of = {str(n.get("scheduler_id")): n["id"] for n in scheduled_nodes if n.get("scheduler_type") == "slurm"}
    ran = jobs_by_allocation(compute_nodes, results, jobs)
    for finding in findings:
        finding.scheduled_compute_node_id = scn_of.get(finding.slurm_job_id)
        entries = sorted(ran.get(finding.slurm_job_id, []), key=lambda e: e["id"])
        finding.job_ids = [e["id"] for e in entries]
        finding.job_names = [e["name"] for e in entries]
    return findings
