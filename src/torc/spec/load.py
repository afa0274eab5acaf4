"""Reading spec files: format by extension, then validation into WorkflowSpec with errors that
name the file, the job and the field, what was expected and what was found."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from torc.core.errors import InvalidInputError
from torc.spec.model import WorkflowSpec

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".json5": "json5", ".kdl": "kdl"}


class SpecError(InvalidInputError):
    """A spec that cannot be used; `problems` holds every problem found, one line each."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in workflow spec:\n{lines}")


def parse_text(text: str, fmt: str, source: str) -> Any:
    try:
        if fmt == "yaml":
            return yaml.safe_load(text)
        if fmt == "json":
            return json.loads(text)
        if fmt == "json5":
            import json5

            return json5.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(source, [f"invalid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    except ValueError as exc:
        raise SpecError(source, [f"invalid {fmt.upper()}: {exc}"]) from None
    raise SpecError(source, [f"{fmt.upper()} specs are not supported yet; use YAML, JSON or JSON5"])


def _describe_location(data: Any, loc: tuple[Any, ...]) -> str:
    """('jobs', 2, 'command') -> "job 'train' (jobs[2]) field 'command'"."""
    parts: list[str] = []
    node = data
    i = 0
    while i < len(loc):
        key = loc[i]
        if isinstance(key, str) and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = loc[i + 1]
            item = node.get(key, [])[index] if isinstance(node, dict) and isinstance(node.get(key), list) else None
            kind = {"jobs": "job", "files": "file", "user_data": "user_data", "actions": "action",
                    "resource_requirements": "resource_requirements", "failure_handlers": "failure_handler",
                    "slurm_schedulers": "slurm_scheduler", "rules": "rule"}.get(key, key)
            name = item.get("name") if isinstance(item, dict) else None
            parts.append(f"{kind} {name!r} ({key}[{index}])" if name else f"{key}[{index}]")
            node = item
            i += 2
            continue
        parts.append(f"field {key!r}")
        node = node.get(key) if isinstance(node, dict) else None
        i += 1
    return " ".join(parts) or "top level"


def _model_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: Any = WorkflowSpec
    for key in loc:
        if isinstance(key, int):
            continue
        field = model.model_fields.get(key) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        annotation = field.annotation
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if a is not type(None)]
        candidates = []
        for a in inner:
            candidates += [x for x in getattr(a, "__args__", (a,)) if isinstance(x, type)]
        model = next((c for c in candidates if issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def validation_problems(data: Any, exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            where = _describe_location(data, loc[:-1])
            key = loc[-1]
            model = _model_for(loc[:-1])
            known = list(model.model_fields) if model else []
            hint = difflib.get_close_matches(str(key), known, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            problems.append(f"{where}: unknown key {key!r}{suggestion}")
        elif err["type"] == "missing":
            problems.append(f"{_describe_location(data, loc[:-1])}: missing required field {loc[-1]!r}")
        else:
            found = err.get("input")
            problems.append(f"{_describe_location(data, loc)}: {err['msg']} (found {found!r})")
    return problems


def spec_from_data(data: Any, source: str) -> WorkflowSpec:
    if not isinstance(data, dict):
        raise SpecError(source, [f"expected a mapping of workflow fields at the top level, found {type(data).__name__}"])
    try:
        return WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, validation_problems(data, exc)) from None


def load_spec(path: str | Path) -> WorkflowSpec:
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise SpecError(source, ["file not found"])
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SpecError(source, [f"unknown spec extension {path.suffix!r}; expected one of {', '.join(FORMATS)}"])
    return spec_from_data(parse_text(path.read_text(), fmt, source), source)
