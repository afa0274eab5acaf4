"""Parameter expansion for job and file specs (reference §1.5). Pure: stdlib only.

One spec item with `parameters` (or `use_parameters`) becomes one item per combination of
values, with `{p}` / `{p:FMT}` placeholders rendered in its string fields.

Deliberate differences from torc:
- Combinations follow the order the parameters are written (last one varies fastest), not
  hash-map order, so job creation order is deterministic.
- `{i:03d}` and `{i}` in one string are both replaced; any Python format spec works.
- Float ranges are computed in decimal arithmetic (0.1 steps give 0.3, not 0.30000000000000004).
- Errors instead of silent surprises: an unknown `use_parameters` name, an unknown
  `parameter_mode`, a value list that is empty, a format spec that does not fit the value.
- Copies of one item that render the same name are merged into one item ("fan-in"): their
  list fields are joined. torc creates duplicate jobs there; torc's examples (an
  `aggregate_results` job with the sweep's parameters and `depends_on: [train_{lr}...]`) mean
  "wait for all of them", which is what the merge gives.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import re
from decimal import Decimal
from typing import Any

Value = int | float | str

MODES = ("product", "zip")
PARAMETER_KEYS = ("parameters", "parameter_mode", "use_parameters")
# Guards against typos like "0:1e9" that would otherwise exhaust memory.
MAX_COMBINATIONS = 1_000_000
# "{i:>999999999}" would build a gigabyte string per job (or fail with MemoryError).
MAX_FORMAT_WIDTH = 1000

JOB_FIELDS = (
    "name", "command", "invocation_script", "resource_requirements", "scheduler",
    "depends_on", "depends_on_regexes", "input_files", "input_file_regexes",
    "output_files", "output_file_regexes", "input_user_data", "input_user_data_regexes",
    "output_user_data", "output_user_data_regexes",
)  # failure_handler is not templated in torc either
FILE_FIELDS = ("name", "path")

_INT = re.compile(r"[+-]?\d+")
# Decimal literals only: Python's float() would also take "nan", "inf" and "1_0".
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


class ParameterError(ValueError):
    """Bad parameters; `problems` holds every problem found, one message each."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{len(self.problems)} problems with parameters:\n{lines}"
        super().__init__(message)


# ---------------------------------------------------------------------------- values


def parse_values(name: str, text: str | int | float | list) -> list[Value]:
    """Expand one parameter's value ("1:10", "0:1:0.25", "[a,b]", 7, [0.1, 0.2], ...)."""
    if isinstance(text, list):
        values = [_native(name, item) for item in text]
        where = f"list {text!r}"
    elif isinstance(text, (bool, int, float)):
        values = [_native(name, text)]
        where = repr(text)
    elif isinstance(text, str):
        values = _parse_text(name, text)
        where = repr(text)
    else:
        raise ParameterError(
            f"parameter {name!r}: expected a string such as '1:10' or '[a,b]', a list or a "
            f"number; found {type(text).__name__} {text!r}"
        )
    if not values:
        raise ParameterError(f"parameter {name!r}: {where} gives no values; give at least one")
    return values


def _native(name: str, item: Any) -> Value:
    """A YAML/JSON scalar as a parameter value (already typed, so no quote stripping)."""
    if isinstance(item, bool):
        return "true" if item else "false"  # the spelling a shell command expects
    if isinstance(item, float) and not math.isfinite(item):
        raise ParameterError(f"parameter {name!r}: expected a finite number; found {item!r}")
    if isinstance(item, (int, float, str)):
        return item
    raise ParameterError(
        f"parameter {name!r}: expected numbers or strings in the list; found "
        f"{type(item).__name__} {item!r}"
    )


def _parse_text(name: str, text: str) -> list[Value]:
    s = text.strip()
    if not s:
        raise ParameterError(f"parameter {name!r}: the value is empty; expected e.g. '1:10' or '[a,b]'")
    # torc tolerates "{1:5}" (template braces typed by mistake) but not "{a, b}".
    if s.startswith("{") and s.endswith("}") and "," not in s:
        s = s[1:-1].strip()
    if s.startswith("[") and s.endswith("]"):
        inner = s[1:-1].strip()
        if not inner:
            return []
        items = [item.strip() for item in inner.split(",")]  # no escaping, as in torc
        for pos, item in enumerate(items, 1):
            if not item:
                raise ParameterError(
                    f"parameter {name!r}: item {pos} of list {text!r} is empty; "
                    "remove the extra comma or quote an empty string as ''"
                )
        return [_scalar(item) for item in items]
    if ":" in s:
        return _parse_range(name, text, s)
    return [_scalar(s)]


def _scalar(item: str) -> Value:
    """int, then float, else the string without one pair of surrounding quotes."""
    if _INT.fullmatch(item):
        return int(item)
    if _FLOAT.fullmatch(item):
        return float(item)
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
        return item[1:-1]
    return item


def _parse_range(name: str, text: str, s: str) -> list[Value]:
    parts = [p.strip() for p in s.split(":")]
    if len(parts) not in (2, 3):
        raise ParameterError(
            f"parameter {name!r}: expected a range 'start:end' or 'start:end:step'; found {text!r} "
            "(to use a string containing ':', write it as a list: ['a:b'])"
        )
    if all(_INT.fullmatch(p) for p in parts):
        start, end, step = int(parts[0]), int(parts[1]), int(parts[2]) if len(parts) == 3 else 1
        if step == 0:
            raise ParameterError(f"parameter {name!r}: step 0 in range {text!r}; the step must not be zero")
        count = max(0, (end - start) // step + 1)
        _check_count(name, text, count)
        return [start + i * step for i in range(count)]
    if not all(_FLOAT.fullmatch(p) for p in parts):
        bad = next(p for p in parts if not _FLOAT.fullmatch(p))
        raise ParameterError(
            f"parameter {name!r}: expected numbers in range {text!r}; found {bad!r} "
            "(to use a string containing ':', write it as a list: ['a:b'])"
        )
    # Decimal keeps the written numbers exact, so start + i*step has no binary drift
    # (0.3, not 0.30000000000000004); the end is included with torc's 1e-10 tolerance.
    start_d, end_d = Decimal(parts[0]), Decimal(parts[1])
    step_d = Decimal(parts[2]) if len(parts) == 3 else Decimal(1)
    if step_d == 0:
        raise ParameterError(f"parameter {name!r}: step 0 in range {text!r}; the step must not be zero")
    span = (end_d - start_d) / step_d + Decimal("1e-10") / abs(step_d)
    count = max(0, int(span) + 1) if span >= 0 else 0
    _check_count(name, text, count)
    return [float(start_d + i * step_d) for i in range(count)]


def _check_count(name: str, text: str, count: int) -> None:
    if count == 0:
        raise ParameterError(
            f"parameter {name!r}: range {text!r} is empty (the step moves away from the end); "
            "use a negative step to count down"
        )
    if count > MAX_COMBINATIONS:
        raise ParameterError(
            f"parameter {name!r}: range {text!r} gives {count} values; at most {MAX_COMBINATIONS} are allowed"
        )


# ---------------------------------------------------------------------------- combinations


def combinations(params: dict[str, Any], mode: str = "product") -> list[dict[str, Value]]:
    """All value combinations, deterministic: written order, last parameter varying fastest.

    `params` maps names to raw values (anything `parse_values` takes). Raises one
    ParameterError listing every bad parameter.
    """
    mode = "product" if mode is None else mode
    problems: list[str] = []
    if mode not in MODES:
        problems.append(f"parameter_mode {mode!r} is not known; use one of: {', '.join(MODES)}")
    parsed: dict[str, list[Value]] = {}
    for name, raw in params.items():
        if not isinstance(name, str) or not name or any(c in name for c in "{}:"):
            problems.append(f"parameter name {name!r} is not usable; use a name such as 'i' or 'lr'")
            continue
        try:
            parsed[name] = parse_values(name, raw)
        except ParameterError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ParameterError(problems)

    names = list(parsed)
    if not names:
        return [{}]  # no parameters: the item once, as in torc
    if mode == "zip":
        lengths = {len(v) for v in parsed.values()}
        if len(lengths) > 1:
            found = ", ".join(f"{n} has {len(v)}" for n, v in parsed.items())
            raise ParameterError(
                f"parameter_mode 'zip' needs the same number of values for every parameter; found {found}"
            )
        return [dict(zip(names, row, strict=True)) for row in zip(*parsed.values(), strict=True)]
    total = math.prod(len(v) for v in parsed.values())
    if total > MAX_COMBINATIONS:
        raise ParameterError(
            f"parameters give {total} combinations; at most {MAX_COMBINATIONS} are allowed"
        )
    return [dict(zip(names, row, strict=True)) for row in itertools.product(*parsed.values())]


# ---------------------------------------------------------------------------- templating


def format_value(value: Value, spec: str = "") -> str:
    """One value as text. Without a spec floats render like torc (Rust): 1.0 -> "1",
    0.1 -> "0.1", 1e-07 -> "0.0000001" (shortest round-trip digits, never an exponent)."""
    if spec:
        if any(int(digits) > MAX_FORMAT_WIDTH for digits in re.findall(r"\d+", spec)):
            raise ParameterError(f"format '{spec}': width and precision must be at most {MAX_FORMAT_WIDTH}")
        if isinstance(value, float) and spec[-1:] in "dxXob" and value.is_integer():
            value = int(value)  # {i:03d} over a float range of whole numbers
        try:
            return format(value, spec)
        except (TypeError, ValueError):
            raise ParameterError(
                f"format '{spec}' does not apply to {type(value).__name__} value {value!r}"
            ) from None
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    return str(value)


@functools.lru_cache(maxsize=256)
def _placeholder(names: tuple[str, ...]) -> re.Pattern[str]:
    # Only "{name}" and "{name:spec}" for known names match, so "${files.input.x}",
    # awk's "{print $1}" and other braces stay as they are.
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(r"\{(" + alternatives + r")(?::([^{}]*))?\}")


def render(template: str, values: dict[str, Value]) -> str:
    """Replace `{p}` and `{p:FMT}` for every p in `values`; anything else is left untouched."""
    if not values or "{" not in template:
        return template

    def replace(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        try:
            return format_value(value, match.group(2) or "")
        except ParameterError as exc:
            raise ParameterError(f"{match.group(0)}: {exc}") from None

    return _placeholder(tuple(values)).sub(replace, template)


# ---------------------------------------------------------------------------- spec items


def expand_items(
    items: list[dict],
    shared: dict | None,
    fields: tuple[str, ...],
    *,
    kind: str = "items",
) -> list[dict]:
    """Expand raw job or file dicts (before model validation) in place of their templates.

    `shared` is the workflow-level `parameters`; `fields` the keys to render (JOB_FIELDS or
    FILE_FIELDS); `kind` ("jobs", "files") names items in messages. Items without
    `parameters`/`use_parameters` pass through unchanged. Raises one ParameterError
    holding every problem of every item.
    """
    problems: list[str] = []
    if shared is not None and not isinstance(shared, dict):
        problems.append(f"workflow parameters: expected a mapping of name to values; found {shared!r}")
        shared = {}
    out: list[dict] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or (
            item.get("parameters") is None and item.get("use_parameters") is None
        ):
            out.append(item)
            continue
        name = item.get("name")
        label = f"{kind}[{index}] {name!r}" if isinstance(name, str) else f"{kind}[{index}]"
        try:
            out.extend(_expand_one(item, shared, fields))
        except ParameterError as exc:
            problems.extend(f"{label}: {p}" for p in exc.problems)
    if problems:
        raise ParameterError(problems)
    return out


def _expand_one(item: dict, shared: dict | None, fields: tuple[str, ...]) -> list[dict]:
    params = _select(item, shared)
    combos = combinations(params, item.get("parameter_mode") or "product")
    base = {k: v for k, v in item.items() if k not in PARAMETER_KEYS}
    by_name: dict[Any, tuple[dict, dict, dict]] = {}  # rendered name -> (copy, its combination, list members)
    for combo in combos:
        rendered = _render_item(base, combo, fields)
        key = rendered.get("name")
        if not isinstance(key, str):
            key = object()  # no usable name: never merge
        if key in by_name:
            _merge(*by_name[key], rendered, combo)
        else:
            by_name[key] = (rendered, combo, {})
    return [rendered for rendered, _, _ in by_name.values()]


def _select(item: dict, shared: dict | None) -> dict:
    """The item's own parameters (which replace the shared ones), else the named shared ones."""
    local = item.get("parameters")
    if local is not None:
        if not isinstance(local, dict):
            raise ParameterError(f"parameters: expected a mapping of name to values; found {local!r}")
        return local
    wanted = item["use_parameters"]
    if not isinstance(wanted, list) or not all(isinstance(n, str) for n in wanted):
        raise ParameterError(f"use_parameters: expected a list of parameter names; found {wanted!r}")
    missing = [n for n in wanted if n not in (shared or {})]
    if missing:
        known = ", ".join(shared) if shared else "none are defined"
        raise ParameterError(
            f"use_parameters names {', '.join(map(repr, missing))}, not among the workflow-level "
            f"parameters (known: {known})"
        )
    return {n: shared[n] for n in wanted}  # type: ignore[index]


def _render_item(base: dict, combo: dict[str, Value], fields: tuple[str, ...]) -> dict:
    out = {}
    for key, value in base.items():
        if key in fields and isinstance(value, str):
            out[key] = render(value, combo)
        elif key in fields and isinstance(value, list):
            out[key] = [render(v, combo) if isinstance(v, str) else copy.deepcopy(v) for v in value]
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge(kept: dict, kept_combo: dict, members: dict[str, set], new: dict, new_combo: dict) -> None:
    """Fold `new` into `kept` (same rendered name): lists are joined, other fields must agree.
    `members` holds the hashable items of kept's lists, so a fan-in over n combinations is O(n)."""
    for key, value in new.items():
        old = kept.get(key)
        if isinstance(old, list) and isinstance(value, list):
            if key not in members:
                members[key] = {v for v in old if isinstance(v, str | int | float)}
            seen = members[key]
            for v in value:
                if isinstance(v, str | int | float):
                    if v not in seen:
                        seen.add(v)
                        old.append(v)
                elif v not in old:
                    old.append(v)
        elif old != value:
            raise ParameterError(
                f"combinations {_show(kept_combo)} and {_show(new_combo)} both give the name "
                f"{kept.get('name')!r} but different {key!r} ({old!r} vs {value!r}); "
                "use every parameter in the name, or drop the parameters it does not need"
            )


def _show(combo: dict[str, Value]) -> str:
    return "{" + ", ".join(f"{k}={format_value(v)}" for k, v in combo.items()) + "}"
