"""Reading spec files into one validated, parameter-expanded WorkflowSpec.

Pipeline: parse (YAML, JSON, JSON5, KDL by extension) -> expand parameters -> validate each
section item by item -> (resolve.py) references and cycles. Every problem found on the way is
collected, so a user sees all of them at once, each naming the file, the job or field and what
was expected and found.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from torc.core.errors import InvalidInputError
from torc.spec import model
from torc.spec.model import WorkflowSpec
from torc.spec.parameters import FILE_FIELDS, JOB_FIELDS, ParameterError, expand_items

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".json5": "json5", ".kdl": "kdl"}

# Each list section of a spec and the model of its items.
SECTIONS: dict[str, type[BaseModel]] = {
    "jobs": model.JobSpec,
    "files": model.FileSpec,
    "user_data": model.UserDataSpec,
    "resource_requirements": model.ResourceRequirementsSpec,
    "failure_handlers": model.FailureHandlerSpec,
    "slurm_schedulers": model.SlurmSchedulerSpec,
    "actions": model.WorkflowActionSpec,
}
_ITEM_KIND = {"jobs": "job", "files": "file", "user_data": "user_data", "actions": "action",
              "resource_requirements": "resource_requirements", "failure_handlers": "failure_handler",
              "slurm_schedulers": "slurm_scheduler", "rules": "rule"}


class SpecError(InvalidInputError):
    """A spec that cannot be used; `problems` holds every problem found, one line each."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in workflow spec:\n{lines}")


class _SpecYamlLoader(yaml.SafeLoader):
    """YAML 1.1 reads `1:30` as the base-60 integer 90; a parameter range must stay a string."""


_SpecYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_SpecYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


# Limits on the shape of parsed data: deeper nesting overflows the parsers' and validators' stacks,
# and YAML aliases can make a small file stand for billions of values (or for itself).
MAX_DEPTH = 100
MAX_EXPANDED_VALUES = 10_000_000


class _Bad(Exception):
    def __init__(self, message: str, value: Any = None, here: Any = None):
        self.message, self.value, self.here = message, value, here


def _bad_scalar(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return f"the integer {value} is out of range (integers must fit in 64 bits)"
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"the text {value[:40]!r} holds an unpaired surrogate (invalid Unicode)"
    return None


def _walk(node: Any, depth: int, sizes: dict[int, int], open_ids: set[int]) -> int:
    """The expanded size of a container (memoized by identity, so shared YAML aliases are cheap)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_ids:
        raise _Bad("a YAML alias refers to a value that contains it (recursive data)", here=node)
    if depth > MAX_DEPTH:
        raise _Bad(f"the spec is nested more than {MAX_DEPTH} levels deep")
    open_ids.add(key)
    total = 1
    if isinstance(node, dict):
        for k in node:
            if not (type(k) is str and k.isascii()) and _bad_scalar(k):
                raise _Bad(_bad_scalar(k) or "", value=k)
        values = node.values()
    else:
        values = node
    for value in values:
        if isinstance(value, dict | list):
            total += _walk(value, depth + 1, sizes, open_ids)
        else:
            total += 1
            if type(value) is not str or not value.isascii():
                problem = _bad_scalar(value)
                if problem:
                    raise _Bad(problem, value=value)
    open_ids.discard(key)
    sizes[key] = total
    return total


def _where(data: Any, target: Any, by_identity: bool) -> str:
    """Describe the first place holding `target` (only called to report a problem)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    seen: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if not isinstance(node, dict | list) or id(node) in seen or len(loc) > MAX_DEPTH:
            continue
        seen.add(id(node))
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for k, v in items:
            if (v is target) if by_identity else (k is target or (v is target and not isinstance(v, dict | list))):
                return _describe(data, (*loc, k))
            stack.append((v, (*loc, k)))
    return "top level"


def check_shape(data: Any, source: str) -> None:
    """Raise SpecError for data nested more than MAX_DEPTH levels, holding itself (a recursive YAML
    alias), whose aliases expand to more than MAX_EXPANDED_VALUES values, or holding values no
    request can carry (integers beyond 64 bits, strings with unpaired surrogates)."""
    if not isinstance(data, dict | list):
        return
    sizes: dict[int, int] = {}
    try:
        total = _walk(data, 1, sizes, set())
    except _Bad as bad:
        if bad.here is not None:
            raise SpecError(source, [f"{_where(data, bad.here, True)}: {bad.message}"]) from None
        if bad.value is not None:
            raise SpecError(source, [f"{_where(data, bad.value, False)}: {bad.message}"]) from None
        raise SpecError(source, [bad.message]) from None
    if total > MAX_EXPANDED_VALUES and total > len(sizes) * 10:
        raise SpecError(source, [f"YAML aliases expand the spec to {total} values; at most "
                                 f"{MAX_EXPANDED_VALUES} are allowed"])


def parse_text(text: str, fmt: str, source: str) -> Any:
    try:
        data = _parse(text, fmt, source)
    except RecursionError:
        raise SpecError(source, [f"the spec is nested too deeply (more than {MAX_DEPTH} levels are not allowed)"]) from None
    return data  # its shape is checked by spec_from_data (check_shape), which every caller runs next


def _parse(text: str, fmt: str, source: str) -> Any:
    try:
        if fmt == "yaml":
            return yaml.load(text, Loader=_SpecYamlLoader)  # noqa: S506 - a SafeLoader subclass
        if fmt == "json":
            return json.loads(text)
        if fmt == "json5":
            import json5

            return json5.loads(text)
        if fmt == "kdl":
            from torc.spec.kdl import KdlError, kdl_to_dict

            try:
                return kdl_to_dict(text, source)
            except KdlError as exc:
                raise SpecError(source, exc.problems) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(source, [f"invalid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    except json.JSONDecodeError as exc:
        raise SpecError(source, [f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None
    except ValueError as exc:
        raise SpecError(source, [f"invalid {fmt.upper()}: {exc}"]) from None
    raise SpecError(source, [f"unknown spec format {fmt!r}"])


# ---- describing where a problem is ---------------------------------------------------------


def _describe(data: Any, loc: Iterable[Any]) -> str:
    """('jobs', 2, 'command') -> "job 'train' (jobs[2]) field 'command'"."""
    loc = tuple(loc)
    parts: list[str] = []
    node = data
    i = 0
    while i < len(loc):
        key = loc[i]
        if isinstance(key, str) and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = loc[i + 1]
            items = node.get(key) if isinstance(node, dict) else None
            item = items[index] if isinstance(items, list) and index < len(items) else None
            name = item.get("name") if isinstance(item, dict) else None
            kind = _ITEM_KIND.get(key, key)
            parts.append(f"{kind} {name!r} ({key}[{index}])" if name else f"{key}[{index}]")
            node = item
            i += 2
            continue
        parts.append(f"field {key!r}")
        node = node.get(key) if isinstance(node, dict) else None
        i += 1
    return " ".join(parts) or "top level"


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that owns the last key of loc (for did-you-mean suggestions)."""
    current: Any = root
    for key in loc:
        if isinstance(key, int):
            continue
        field = getattr(current, "model_fields", {}).get(key)
        if field is None:
            return None
        candidates: list[Any] = [field.annotation]
        found = None
        while candidates:
            ann = candidates.pop()
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                found = ann
                break
            candidates.extend(getattr(ann, "__args__", ()))
        if found is None:
            return None
        current = found
    return current


def _problems(data: Any, exc: ValidationError, root: type[BaseModel], prefix: tuple[Any, ...] = ()) -> list[str]:
    out = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            owner = _model_at(root, tuple(err["loc"])[:-1])
            known = list(owner.model_fields) if owner else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append(f"{_describe(data, loc[:-1])}: unknown key {loc[-1]!r}{hint}")
        elif err["type"] == "missing":
            out.append(f"{_describe(data, loc[:-1])}: missing required field {loc[-1]!r}")
        else:
            out.append(f"{_describe(data, loc)}: {err['msg']} (found {err.get('input')!r})")
    return out


# ---- the pipeline --------------------------------------------------------------------------


def _expand(data: dict[str, Any], problems: list[str]) -> None:
    shared = data.get("parameters") if isinstance(data.get("parameters"), dict) else None
    for key, fields in (("jobs", JOB_FIELDS), ("files", FILE_FIELDS)):
        items = data.get(key)
        if not isinstance(items, list):
            continue
        try:
            data[key] = expand_items(items, shared, fields, kind=key)
        except ParameterError as exc:
            problems.extend(exc.problems)


def _validate_sections(data: dict[str, Any], problems: list[str]) -> tuple[dict[str, Any], set[str]]:
    """Validate each section; bad items are reported and left out. Returns the clean data and
    the names of the items left out (references to them are not reported a second time)."""
    clean = dict(data)
    broken: set[str] = set()
    for key, item_model in SECTIONS.items():
        items = data.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(f"field {key!r}: expected a list, found {type(items).__name__}")
            del clean[key]  # reported once here; the model default stands in
            continue
        try:  # fast path: the whole section at once
            clean[key] = TypeAdapter(list[item_model]).validate_python(items)
            continue
        except ValidationError:
            pass
        good = []
        for index, item in enumerate(items):
            try:
                good.append(item_model.model_validate(item))
            except ValidationError as exc:
                problems.extend(_problems(data, exc, item_model, (key, index)))
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    broken.add(item["name"])
        clean[key] = good
    return clean, broken


def spec_from_data(data: Any, source: str) -> tuple[WorkflowSpec, set[str]]:
    """Expand and validate parsed spec data; raise SpecError listing every problem."""
    if not isinstance(data, dict):
        raise SpecError(source, [f"expected a mapping of workflow fields at the top level, found {type(data).__name__}"])
    check_shape(data, source)
    problems: list[str] = []
    data = dict(data)
    _expand(data, problems)
    clean, broken = _validate_sections(data, problems)
    try:
        spec = WorkflowSpec.model_validate(clean)
    except ValidationError as exc:
        problems.extend(_problems(data, exc, WorkflowSpec))
        # Keep going with defaults and the valid sections, so reference problems are found too.
        defaults = {k: f.get_default(call_default_factory=True) for k, f in WorkflowSpec.model_fields.items()}
        sections = {k: v for k, v in clean.items() if k in SECTIONS and v is not None}
        spec = WorkflowSpec.model_construct(**{**defaults, **sections})
    if problems:
        from torc.spec.resolve import reference_problems

        raise SpecError(source, problems + reference_problems(spec, broken))
    return spec, broken


def parse_file(path: str | Path) -> tuple[Any, str]:
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise SpecError(source, ["file not found"])
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SpecError(source, [f"unknown spec extension {path.suffix!r}; expected one of {', '.join(FORMATS)}"])
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(source, [f"cannot read the file: {exc}"]) from None
    return parse_text(text, fmt, source), source


def load_spec(path: str | Path) -> WorkflowSpec:
    """Parse, expand and validate a spec file (references are checked by resolve())."""
    data, source = parse_file(path)
    spec, _ = spec_from_data(data, source)
    return spec
