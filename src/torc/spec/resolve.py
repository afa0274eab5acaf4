"""From a validated spec to fully resolved jobs: ${files...}/${user_data...} substitution,
name references checked, explicit and implicit edges, cycles reported. Nothing is sent to the
server until every check has passed."""

from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from torc.spec.load import SpecError
from torc.spec.model import JobSpec, WorkflowSpec

_TOKEN = re.compile(r"\$\{(files|user_data)\.(input|output)\.([^}]+)\}")


@dataclass
class ResolvedJob:
    spec: JobSpec
    command: str
    invocation_script: str | None
    depends_on: list[str] = field(default_factory=list)
    input_files: list[str] = field(default_factory=list)
    output_files: list[str] = field(default_factory=list)
    input_user_data: list[str] = field(default_factory=list)
    output_user_data: list[str] = field(default_factory=list)


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _match_regexes(patterns: list[str] | None, names: Iterable[str], what: str, label: str,
                   problems: list[str]) -> list[str]:
    out: list[str] = []
    for pattern in patterns or []:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            problems.append(f"{label}: invalid regular expression {pattern!r} in {what}: {exc}")
            continue
        hits = [n for n in names if regex.search(n)]
        if not hits:
            problems.append(f"{label}: {what} pattern {pattern!r} matches no name")
        out += hits
    return out


def _substitute(text: str | None, files: dict[str, str], data: dict[str, object], label: str,
                found: dict[tuple[str, str], list[str]], problems: list[str]) -> str | None:
    """Replace ${files.input.X} etc. with paths / JSON data, recording which names were used."""
    if text is None:
        return None

    def replace(match: re.Match[str]) -> str:
        kind, direction, name = match.groups()
        table = files if kind == "files" else data
        if name not in table:
            what = "an undefined file" if kind == "files" else "undefined user data"
            problems.append(f"{label}: ${{{kind}.{direction}.{name}}} refers to {what}")
            return match.group(0)
        found[(kind, direction)].append(name)
        return files[name] if kind == "files" else json.dumps(data[name])

    return _TOKEN.sub(replace, text)


def resolve(spec: WorkflowSpec, source: str, broken: set[str] | frozenset[str] = frozenset()) -> list[ResolvedJob]:
    """Resolve every job of a validated spec; raise SpecError listing every reference problem."""
    jobs, problems = _resolve(spec, broken)
    if problems:
        raise SpecError(source, problems)
    return jobs


def reference_problems(spec: WorkflowSpec, broken: set[str]) -> list[str]:
    """Reference problems of a spec that also has schema problems (reported together)."""
    return _resolve(spec, broken)[1]


def _resolve(spec: WorkflowSpec, broken: set[str] | frozenset[str]) -> tuple[list[ResolvedJob], list[str]]:
    problems: list[str] = []

    files = {f.name: f.path for f in spec.files or []}
    files.update({name: "" for name in broken if name not in files})
    data = {u.name: u.data for u in spec.user_data or [] if u.name}
    for kind, items in (("file", [f.name for f in spec.files or []]),
                        ("user_data", [u.name for u in spec.user_data or [] if u.name]),
                        ("resource_requirements", [r.name for r in spec.resource_requirements or []]),
                        ("failure_handler", [h.name for h in spec.failure_handlers or []]),
                        ("slurm_scheduler", [s.name for s in spec.slurm_schedulers or []]),
                        ("job", [j.name for j in spec.jobs])):
        seen: set[str] = set()
        for name in items:
            if name in seen:
                problems.append(f"{kind} {name!r}: duplicate name")
            seen.add(name)
    for handler in spec.failure_handlers or []:
        for index, rule in enumerate(handler.rules):
            if not rule.exit_codes and not rule.match_all_exit_codes:
                problems.append(f"failure_handler {handler.name!r}: rule {index + 1} matches no exit code; give it "
                                "exit_codes or set match_all_exit_codes: true")
    for rr in spec.resource_requirements or []:
        if rr.name == "default":
            problems.append("resource_requirements 'default': the name is reserved for the workflow default")

    job_names = [j.name for j in spec.jobs]
    known_jobs = set(job_names) | broken  # items with schema problems are reported once, not again here
    rr_names = {r.name for r in spec.resource_requirements or []} | broken
    handlers = {h.name for h in spec.failure_handlers or []} | broken
    schedulers = {s.name for s in spec.slurm_schedulers or []} | broken
    resolved: list[ResolvedJob] = []
    hints_left = 10
    for job in spec.jobs:
        label = f"job {job.name!r}"
        found: dict[tuple[str, str], list[str]] = defaultdict(list)
        command = _substitute(job.command, files, data, label, found, problems) or ""
        invocation = _substitute(job.invocation_script, files, data, label, found, problems)
        r = ResolvedJob(job, command, invocation)
        if job.name in (job.depends_on or []):
            problems.append(f"{label}: depends_on names the job itself")
        # A regex that also matches the job's own name (e.g. "^train_" on "train_all") means the others.
        r.depends_on = [d for d in _unique((job.depends_on or []) + _match_regexes(
            job.depends_on_regexes, job_names, "depends_on_regexes", label, problems)) if d != job.name]
        for attr, regex_attr, names, key in (
            ("input_files", "input_file_regexes", files, ("files", "input")),
            ("output_files", "output_file_regexes", files, ("files", "output")),
            ("input_user_data", "input_user_data_regexes", data, ("user_data", "input")),
            ("output_user_data", "output_user_data_regexes", data, ("user_data", "output")),
        ):
            explicit = getattr(job, attr) or []
            by_regex = _match_regexes(getattr(job, regex_attr), names, regex_attr, label, problems)
            for name in explicit:
                if name not in names:
                    kind = "file" if attr.endswith("files") else "user data"
                    problems.append(f"{label}: {attr} refers to undefined {kind} {name!r}")
            setattr(r, attr, _unique(explicit + by_regex + found[key]))
        for dep in job.depends_on or []:
            if dep not in known_jobs:
                # difflib costs O(len(job_names)) per name: suggest for the first few only, or a
                # templated typo across thousands of jobs takes hours to report.
                hints_left -= 1
                close = difflib.get_close_matches(dep, job_names, 1) if hints_left >= 0 and len(dep) <= 200 else []
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(f"{label}: depends_on refers to undefined job {dep!r}{hint}")
        if job.resource_requirements and job.resource_requirements not in rr_names | {"default"}:
            problems.append(f"{label}: resource_requirements {job.resource_requirements!r} is not defined")
        if job.failure_handler and job.failure_handler not in handlers:
            problems.append(f"{label}: failure_handler {job.failure_handler!r} is not defined")
        if job.scheduler and job.scheduler not in schedulers:
            problems.append(f"{label}: scheduler {job.scheduler!r} is not defined in slurm_schedulers")
        resolved.append(r)

    for index, action in enumerate(spec.actions or []):
        label = f"action {index} ({action.trigger_type})"
        for name in action.jobs or []:
            if name not in known_jobs:
                problems.append(f"{label}: jobs refers to undefined job {name!r}")
        matched = (action.jobs or []) + _match_regexes(action.job_name_regexes, job_names, "job_name_regexes",
                                                       label, problems)
        if action.action_type == "run_commands" and not action.commands:
            problems.append(f"{label}: a run_commands action needs commands: a non-empty list of commands")
        if action.trigger_type in ("on_jobs_ready", "on_jobs_complete") and not matched:
            problems.append(f"{label}: a job trigger needs jobs or job_name_regexes that name at least one job")
    if not problems:
        cycle = find_cycle(resolved)
        if cycle:
            problems.append("dependency cycle: " + " -> ".join(cycle))
    return resolved, problems


def edges(jobs: list[ResolvedJob]) -> dict[str, set[str]]:
    """job name -> names of the jobs it waits for (explicit plus file/user-data producers)."""
    producers: dict[tuple[str, str], set[str]] = defaultdict(set)
    for j in jobs:
        for f in j.output_files:
            producers[("f", f)].add(j.spec.name)
        for u in j.output_user_data:
            producers[("u", u)].add(j.spec.name)
    names = {j.spec.name for j in jobs}
    out: dict[str, set[str]] = {}
    for j in jobs:
        blockers = set(j.depends_on) & names
        for f in j.input_files:
            blockers |= producers[("f", f)]
        for u in j.input_user_data:
            blockers |= producers[("u", u)]
        blockers.discard(j.spec.name)
        out[j.spec.name] = blockers
    return out


def find_cycle(jobs: list[ResolvedJob]) -> list[str] | None:
    graph = edges(jobs)
    indegree = {n: len(b) for n, b in graph.items()}
    dependents: dict[str, list[str]] = defaultdict(list)
    for n, blockers in graph.items():
        for b in blockers:
            dependents[b].append(n)
    queue = deque(n for n, d in indegree.items() if d == 0)
    while queue:
        n = queue.popleft()
        for d in dependents[n]:
            indegree[d] -= 1
            if indegree[d] == 0:
                queue.append(d)
    left = {n for n, d in indegree.items() if d > 0}
    if not left:
        return None
    node = min(left)
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = min(b for b in graph[node] if b in left)
    cycle = path[path.index(node):] + [node]
    return list(reversed(cycle))
