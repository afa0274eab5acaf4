"""KDL workflow specs (reference §1.7): KDL text <-> the plain dict the YAML loader produces.

`kdl_to_dict` parses KDL v1 or v2 (ckdl's "any" mode) and maps the nodes onto the same nested
dict/list structure that `yaml.safe_load` gives for the equivalent YAML spec, so one pydantic
validation (spec/load.py) serves every format. `dict_to_kdl` writes such a dict back out as KDL v2.

Mapping (differences from torc are deliberate, see the project decisions):

- Top-level scalars: ``name "x"``, ``user``, ``description``, ``project``, ``jobs_sort_method``,
  ``use_pending_failed #true``, ``compute_node_*``; ``metadata`` takes any value (see *values*).
- One node per list item: ``job``, ``file``, ``user_data``, ``resource_requirements``,
  ``failure_handler``, ``slurm_scheduler``, ``action``. The first argument is the item's name
  (``file "f" path="/p"``); properties and children are the item's fields.
- List fields are a repeated child, singular or plural, each with one or more arguments:
  ``depends_on "a" "b"``, ``input_file "f"``, ``input_files "f" "g"``. ``depends_on_job`` is accepted
  as an alias of ``depends_on`` (torc silently drops it), and every ``*_regexes`` field is writable.
  A list child with no argument is an empty list; one with the single argument ``#null`` is null.
- ``parameters``, ``slurm_defaults`` and ``resource_monitor`` are maps: one child (or property) per
  key. ``user_data``'s ``data`` is JSON text (``data "{\\"a\\": 1}"``); a non-string scalar is taken
  as is.
- An empty top-level list is written as the bare plural node (``files``), null as ``files #null``.
- *Values* (map entries, ``metadata``): one argument is a scalar, several (or none) a list; children
  make a map, or a list when they are all named ``-``; ``(object)`` / ``(array)`` annotations force
  the kind.
- Unlike torc, unknown nodes are not ignored: each is a problem naming the node, where it is and
  (when it can be told) its line, with a did-you-mean suggestion.

ckdl reports no position for parse errors, so the line and column are found by re-parsing
prefixes of the text (see `_locate_parse_error`).
"""

from __future__ import annotations

import bisect
import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import ckdl

__all__ = ["KdlError", "dict_to_kdl", "kdl_to_dict"]


class KdlError(ValueError):
    """A KDL spec that cannot be parsed or mapped; `problems` holds one line per problem."""

    def __init__(self, problems: list[str], source: str = "<kdl>"):
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in KDL workflow spec:\n{lines}")


# ---------------------------------------------------------------------------------------------
# Field tables: KDL child name -> (dict key, kind)

SCALAR, LIST, MAP, JSON = "scalar", "list", "map", "json"


def _lst(key: str, *names: str) -> dict[str, tuple[str, str]]:
    return {n: (key, LIST) for n in (key, *names)}


def _scalars(*names: str) -> dict[str, tuple[str, str]]:
    return {n: (n, SCALAR) for n in names}


JOB_FIELDS: dict[str, tuple[str, str]] = {
    **_scalars("name", "command", "invocation_script", "resource_requirements", "failure_handler",
               "scheduler", "cancel_on_blocking_job_failure", "supports_termination", "parameter_mode"),
    **_lst("depends_on", "depends_on_job", "depends_on_jobs"),
    **_lst("depends_on_regexes", "depends_on_regex"),
    **_lst("input_files", "input_file"),
    **_lst("input_file_regexes", "input_file_regex"),
    **_lst("output_files", "output_file"),
    **_lst("output_file_regexes", "output_file_regex"),
    **_lst("input_user_data"),
    **_lst("input_user_data_regexes", "input_user_data_regex"),
    **_lst("output_user_data"),
    **_lst("output_user_data_regexes", "output_user_data_regex"),
    **_lst("use_parameters", "use_parameter"),
    "parameters": ("parameters", MAP),
}

FILE_FIELDS = {
    **_scalars("name", "path", "parameter_mode"),
    **_lst("use_parameters", "use_parameter"),
    "parameters": ("parameters", MAP),
}

USER_DATA_FIELDS = {**_scalars("name", "is_ephemeral"), "data": ("data", JSON)}

RESOURCE_REQUIREMENTS_FIELDS = _scalars("name", "num_cpus", "num_gpus", "num_nodes", "memory", "runtime")

RULE_FIELDS = {
    **_lst("exit_codes", "exit_code"),
    **_scalars("match_all_exit_codes", "recovery_script", "max_retries"),
}

FAILURE_HANDLER_FIELDS: dict[str, tuple[str, str]] = {
    **_scalars("name"),
    "rule": ("rules", "rule"),
    "rules": ("rules", "rules_marker"),
}

SLURM_SCHEDULER_FIELDS = _scalars("name", "account", "partition", "nodes", "walltime", "mem", "gres", "qos",
                                  "ntasks_per_node", "tmp", "extra")

ACTION_FIELDS = {
    **_scalars("trigger_type", "action_type", "scheduler", "scheduler_type", "num_allocations",
               "start_one_worker_per_node", "max_parallel_jobs", "persistent"),
    **_lst("jobs", "job"),
    **_lst("job_name_regexes", "job_name_regex"),
    **_lst("commands", "command"),
}


@dataclass(frozen=True)
class ItemKind:
    node: str  # singular node name, e.g. "job"
    key: str  # top-level dict key, e.g. "jobs"
    fields: dict[str, tuple[str, str]]
    named: bool = True  # the first argument is the item's name


ITEM_KINDS = [
    ItemKind("job", "jobs", JOB_FIELDS),
    ItemKind("file", "files", FILE_FIELDS),
    ItemKind("user_data", "user_data", USER_DATA_FIELDS),
    ItemKind("resource_requirements", "resource_requirements", RESOURCE_REQUIREMENTS_FIELDS),
    ItemKind("failure_handler", "failure_handlers", FAILURE_HANDLER_FIELDS),
    ItemKind("slurm_scheduler", "slurm_schedulers", SLURM_SCHEDULER_FIELDS),
    ItemKind("action", "actions", ACTION_FIELDS, named=False),
]
ITEM_BY_NODE = {k.node: k for k in ITEM_KINDS}
ITEM_BY_KEY = {k.key: k for k in ITEM_KINDS}

TOP_SCALARS = (
    "name", "user", "description", "project", "jobs_sort_method", "use_pending_failed",
    "compute_node_expiration_buffer_seconds", "compute_node_wait_for_new_jobs_seconds",
    "compute_node_ignore_workflow_completion", "compute_node_wait_for_healthy_database_minutes",
)
TOP_MAPS = ("parameters", "slurm_defaults", "resource_monitor")
TOP_NODE_NAMES = sorted({*TOP_SCALARS, *TOP_MAPS, "metadata", *ITEM_BY_NODE, *ITEM_BY_KEY})


# ---------------------------------------------------------------------------------------------
# A plain node tree (ckdl values unwrapped, plus a best-effort line number)


@dataclass
class _Node:
    name: str
    args: list[Any]
    props: dict[str, Any]
    children: list[_Node]
    annotation: str | None = None
    line: int | None = None
    owner: _Node | None = None  # for a property turned into a node: the node it belongs to

    def where(self) -> int | None:
        return self.line or (self.owner.line if self.owner is not None else None)


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, ckdl.Value) else value


def _convert(node: Any, flat: list[_Node]) -> _Node:
    out = _Node(str(node.name), [_unwrap(a) for a in node.args],
                {str(k): _unwrap(v) for k, v in node.properties.items()}, [], node.type_annotation)
    flat.append(out)
    out.children = [_convert(c, flat) for c in node.children]
    return out


_RAW_START = re.compile(r'r?(#+)"(?:"")?|r"')


def _mask(text: str) -> str:
    """`text` with comments and string literals blanked out (newlines kept), best effort for KDL
    v1 and v2, so that node names are only looked for where nodes can start."""
    out = list(text)
    i, n = 0, len(text)

    def blank(start: int, end: int) -> None:
        for j in range(start, min(end, n)):
            if out[j] not in "\r\n":
                out[j] = " "

    while i < n:
        ch = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
        elif text.startswith("/*", i):
            depth, end = 1, i + 2
            while end < n and depth:
                if text.startswith("/*", end):
                    depth, end = depth + 1, end + 2
                elif text.startswith("*/", end):
                    depth, end = depth - 1, end + 2
                else:
                    end += 1
        elif ch in "r#" and (m := _RAW_START.match(text, i)) and (ch == "#" or i == 0 or not text[i - 1].isalnum()):
            closing = '"' * (3 if m.group(0).endswith('"""') else 1) + (m.group(1) or "")
            end = text.find(closing, m.end())
            end = n if end < 0 else end + len(closing)
        elif ch == '"':
            quote = '"""' if text.startswith('"""', i) else '"'
            end = i + len(quote)
            while end < n and not text.startswith(quote, end):
                end += 2 if text[end] == "\\" else 1
            end += len(quote)
        else:
            i += 1
            continue
        blank(i, end)
        i = max(end, i + 1)
    return "".join(out)


def _assign_lines(text: str, flat: list[_Node]) -> None:
    """Give each node the line it starts on, where that can be told from the text: the k-th node
    named N (document order) is the k-th place where N starts a node (line start, after `;` or `{`)
    outside comments and strings. Names whose count of such places differs from their count of
    nodes (slashdash comments, quoted names) get no line rather than a wrong one."""
    text = _mask(text)
    by_name: dict[str, list[_Node]] = {}
    for node in flat:
        by_name.setdefault(node.name, []).append(node)
    line_starts = [0] + [m.end() for m in re.finditer(r"\r\n|\n|\r", text)]
    for name, nodes in by_name.items():
        if _needs_quotes(name) and name != "-":
            continue  # written quoted, and strings are masked out
        pattern = rf"(?:^|[;{{])[ \t\ufeff]*(?:\([^)\n]*\)[ \t]*)?{re.escape(name)}(?=[\s;{{}}]|$)(?![ \t]*=)"
        starts = [m.start() for m in re.finditer(pattern, text, re.MULTILINE)]
        if len(starts) == len(nodes):
            for node, pos in zip(nodes, starts, strict=True):
                node.line = bisect.bisect_right(line_starts, pos)


# ---------------------------------------------------------------------------------------------
# Parsing


def _try_parse(text: str, version: int | str = "any") -> tuple[Any, str | None]:
    try:
        return ckdl.parse(text, version=version), None
    except ckdl.ParseError as exc:
        return None, str(exc.args[0]) if exc.args else "parse error"


_LINE_CLOSERS = ("", "*/", '\n"""', '\n"""#', '"#', '"##')
_COLUMN_CLOSERS = (*_LINE_CLOSERS, '"')


def _completable(prefix: str, closers: tuple[str, ...], version: int) -> str | None:
    """The closer (see _LINE_CLOSERS) that, with any open child blocks closed after it, makes
    `prefix` parse as KDL `version`; None when none does."""
    for closer in closers:
        braces = 0
        while braces <= prefix.count("{"):
            _, err = _try_parse(prefix + closer + "\n}" * braces, version)
            if err is None:
                return closer if closer or not braces else "}"
            if "unclosed" not in err:
                break
            braces += 1
    return None


def _last_true(lo: int, hi: int, pred) -> int:
    """Largest n in [lo, hi] with pred(n), given pred(lo) (binary search; assumes monotone)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if pred(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


_CLOSER_HINTS = {
    "}": "a '{' is missing its '}'",
    "*/": "a '/*' comment is not closed",
    '"': "a string is not closed (a quote is missing)",
}


def _locate_parse_error(text: str, version: int) -> tuple[tuple[int, int] | None, str]:
    """Where the text stops being the start of a valid KDL `version` document: ((line, column),
    1-based, or None when only the end is wrong, e.g. an unclosed block) and a hint (or "").

    ckdl gives no position, so this re-parses prefixes: whole lines first, then characters of the
    first bad line. A prefix counts as valid when closing an open comment, string or block makes
    it parse."""
    closer = _completable(text, _LINE_CLOSERS, version)
    if closer is not None:
        return None, _CLOSER_HINTS.get(closer, "a string is not closed")
    lines = text.splitlines(keepends=True)
    good = _last_true(0, len(lines),
                      lambda k: k == 0 or _completable("".join(lines[:k]), _LINE_CLOSERS, version) is not None)
    if good >= len(lines):
        return None, ""
    head = "".join(lines[:good])
    line = lines[good].rstrip("\r\n")
    col = _last_true(0, len(line),
                     lambda c: c == 0 or _completable(head + line[:c], _COLUMN_CLOSERS, version) is not None)
    hint = ""
    if re.search(r'"[^"]*\\[^nrtbfsu"\\/\s]', line):
        hint = ("a backslash in a quoted string starts an escape; write \\\\ for a backslash "
                "(e.g. in a regex) or use a raw string: #\"\\d+\"# in KDL v2, r\"\\d+\" in v1")
    elif col == len(line) and _completable(head + line, ('"',), version):
        hint = _CLOSER_HINTS['"']
    return (good + 1, col + 1), hint


def _parse_error(text: str, source: str) -> KdlError:
    """The error for text that parses as neither KDL v2 nor v1: the version that got further wins."""
    found = []
    for version in (2, 1):
        _, err = _try_parse(text, version)
        where, hint = _locate_parse_error(text, version)
        found.append((where or (len(text) + 2, 0), version == 2, version, where, err, hint))
    *_, version, where, err, hint = max(found)
    if where is None:
        place = "at end of input"
    else:
        line_text = text.splitlines()[where[0] - 1].strip()
        place = f"at line {where[0]}, column {where[1]} ({line_text[:60]!r})"
    if not hint and err and ("Bare identifier" in err or "property or argument" in err):
        hint = ("KDL v2 writes booleans and null as #true/#false/#null and KDL v1 as true/false/null "
                "(one document uses one version), and strings that are not plain identifiers need quotes")
    return KdlError([f"invalid KDL {place}: {err} (read as KDL v{version})" + (f"; {hint}" if hint else "")],
                    source)


def _parse_document(text: str, source: str) -> tuple[list[_Node], list[_Node]]:
    doc, _ = _try_parse(text)
    if doc is None:
        raise _parse_error(text, source)
    flat: list[_Node] = []
    nodes = [_convert(n, flat) for n in doc.nodes]
    return nodes, flat


# ---------------------------------------------------------------------------------------------
# Mapping KDL nodes onto the spec dict


class _Mapper:
    def __init__(self) -> None:
        self.problems: list[tuple[_Node | None, str, str]] = []

    def problem(self, node: _Node | None, where: str, message: str) -> None:
        self.problems.append((node, where, message))

    def report(self) -> list[str]:
        return [f"line {node.where()}: {where}: {message}" if node is not None and node.where() else f"{where}: {message}"
                for node, where, message in self.problems]

    def unknown(self, node: _Node, where: str, known: list[str]) -> None:
        hint = difflib.get_close_matches(node.name, known, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        self.problem(node, where, f"unknown node {node.name!r}{suggestion}")

    # -- value kinds ---------------------------------------------------------------------------

    def scalar(self, node: _Node, where: str) -> Any:
        if len(node.args) != 1 or node.props or node.children:
            self.problem(node, where, f"{node.name!r} takes exactly one value, e.g. {node.name} \"...\"")
            return node.args[0] if node.args else None
        return node.args[0]

    def list_args(self, node: _Node, where: str) -> list[Any]:
        if node.props or node.children:
            self.problem(node, where, f"{node.name!r} takes values as arguments, e.g. {node.name} \"a\" \"b\"")
        return list(node.args)

    def value(self, node: _Node, where: str) -> Any:
        """A free-form value: scalar, list or map."""
        kind = node.annotation
        if node.children:
            if node.args:
                self.problem(node, where, f"{node.name!r} has both arguments and children")
            if kind != "object" and (kind == "array" or all(c.name == "-" for c in node.children)):
                return [self.value(c, where) for c in node.children]
            return self.mapping(node, where)
        if node.props:
            if node.args:
                self.problem(node, where, f"{node.name!r} has both arguments and properties")
            return dict(node.props)
        if kind == "object":
            if node.args:
                self.problem(node, where, f"{node.name!r} is an (object) but has arguments")
            return {}
        if kind == "array" or len(node.args) != 1:
            return list(node.args)
        return node.args[0]

    def mapping(self, node: _Node, where: str) -> dict[str, Any] | None:
        """A map: one property or child per key; `#null` alone is null."""
        if node.args == [None] and not node.props and not node.children:
            return None
        if node.args:
            self.problem(node, where, f"{node.name!r} takes its entries as children, e.g. {node.name} {{ key \"value\" }}")
        out: dict[str, Any] = dict(node.props)
        for child in node.children:
            if child.name in out:
                self.problem(child, where, f"{node.name} key {child.name!r} is given twice")
            out[child.name] = self.value(child, f"{where} {node.name} {child.name!r}")
        return out

    def json_data(self, node: _Node, where: str) -> Any:
        if node.children or node.props:
            return self.value(node, where)
        value = self.scalar(node, where)
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError as exc:
            self.problem(node, where, f"data is not valid JSON text ({exc}); write it as a JSON string, "
                                      "e.g. data \"{\\\"key\\\": 1}\"")
            return value

    # -- items ---------------------------------------------------------------------------------

    def fields(self, node: _Node, where: str, table: dict[str, tuple[str, str]], out: dict[str, Any]) -> None:
        seen_scalar: set[str] = set()
        lists: dict[str, list[Any]] = {}
        entries = [_Node(k, [v], {}, [], owner=node) for k, v in node.props.items()]
        for child in [*entries, *node.children]:
            spec = table.get(child.name)
            if spec is None:
                self.unknown(child, where, sorted(table))
                continue
            key, kind = spec
            if kind == LIST:
                if key in out and key not in lists:
                    self.problem(child, where, f"{key!r} is given twice")
                    continue
                lists.setdefault(key, []).extend(self.list_args(child, where))
                out[key] = lists[key]
                continue
            if key in seen_scalar or (key in out and kind not in ("rule", "rules_marker")):
                self.problem(child, where, f"{key!r} is given twice")
                continue
            if kind == SCALAR:
                seen_scalar.add(key)
                out[key] = self.scalar(child, where)
            elif kind == MAP:
                seen_scalar.add(key)
                out[key] = self.mapping(child, where)
            elif kind == JSON:
                seen_scalar.add(key)
                out[key] = self.json_data(child, where)
            elif kind == "rule":
                rules = out.get(key)
                if not isinstance(rules, list):
                    rules = out[key] = []
                rule: dict[str, Any] = {}
                if child.args:
                    self.problem(child, where, "'rule' takes its fields as children, e.g. rule { exit_codes 1 2 }")
                self.fields(child, f"{where} rule #{len(rules) + 1}", RULE_FIELDS, rule)
                rules.append(rule)
            elif kind == "rules_marker":
                seen_scalar.add(key)
                marker = self.value(child, where)
                if marker is None and out.get(key):
                    self.problem(child, where, "'rules' is marked null but there are rule nodes")
                elif marker is None:
                    out[key] = None
                elif marker == []:
                    out.setdefault(key, [])
                else:
                    self.problem(child, where, "write each rule as its own 'rule { ... }' node")
        for key, values in lists.items():
            if values == [None]:
                out[key] = None

    def item(self, node: _Node, kind: ItemKind, index: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if kind.named and node.args:
            name = node.args[0]
            where = f"{kind.node} {name!r}"
            out["name"] = name
            if len(node.args) > 1:
                self.problem(node, where, f"{kind.node} takes one argument, its name; found {len(node.args)}")
        else:
            where = f"{kind.node} #{index}"
            if node.args:
                self.problem(node, where, f"{kind.node} takes no arguments; write its fields as children")
        self.fields(node, where, kind.fields, out)
        if kind.node == "failure_handler":
            out.setdefault("rules", [])
        return out

    # -- document ------------------------------------------------------------------------------

    def document(self, nodes: list[_Node]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        counts: dict[str, int] = {}
        for node in nodes:
            name = node.name
            item_kind = ITEM_BY_NODE.get(name)
            list_kind = ITEM_BY_KEY.get(name)
            bare = not node.args and not node.props and not node.children
            is_null = node.args == [None] and not node.props and not node.children
            if list_kind is not None and (bare or is_null):
                # `files` / `files #null` (and the same for the other lists): empty list / null.
                # For user_data and resource_requirements the singular is the plural; a nameless,
                # empty item would be useless, so the bare node means the empty list there too.
                if out.get(name) not in (None, []):
                    self.problem(node, "top level", f"{name!r} marks an empty list but there are {name} items")
                    continue
                out[name] = None if is_null else []
                continue
            if item_kind is not None:
                counts[name] = counts.get(name, 0) + 1
                items = out.get(item_kind.key)
                if not isinstance(items, list):
                    if item_kind.key in out and items is None:
                        self.problem(node, "top level", f"{item_kind.key!r} is marked null but has items")
                    items = out[item_kind.key] = []
                items.append(self.item(node, item_kind, counts[name]))
                continue
            if list_kind is not None:
                self.problem(node, "top level",
                             f"write each of the {name} as its own {list_kind.node!r} node, "
                             f"e.g. {list_kind.node} \"name\" {{ ... }}")
                continue
            if name in out:
                self.problem(node, "top level", f"{name!r} is given twice")
                continue
            if name in TOP_SCALARS:
                out[name] = self.scalar(node, "top level")
            elif name in TOP_MAPS:
                out[name] = self.mapping(node, "top level")
            elif name == "metadata":
                out[name] = self.value(node, "top level metadata")
            else:
                self.unknown(node, "top level", TOP_NODE_NAMES)
        return out


def kdl_to_dict(text: str, source: str = "<kdl>") -> dict[str, Any]:
    """Parse a KDL (v1 or v2) workflow spec into the plain dict a YAML spec loads to.

    Raises KdlError (a ValueError) listing every problem: a parse error with its line and column,
    or mapping problems such as unknown nodes and values of the wrong shape."""
    if text.startswith("\ufeff"):
        text = text[1:]
    nodes, flat = _parse_document(text, source)
    mapper = _Mapper()
    out = mapper.document(nodes)
    if mapper.problems:
        _assign_lines(text, flat)  # only needed (and only paid for) when there is something to report
        raise KdlError(mapper.report(), source)
    return out


# ---------------------------------------------------------------------------------------------
# Writing KDL v2

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$")
_KEYWORDS = {"true", "false", "null", "inf", "nan"}
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_FORBIDDEN = set(range(0x20)) | {0x7F, 0x85, 0x2028, 0x2029, 0xFEFF, 0x200E, 0x200F,
                                 *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def _quote(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) in _FORBIDDEN:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _needs_quotes(name: str) -> bool:
    return not _IDENT.fullmatch(name) or name in _KEYWORDS  # (match's `$` also matches before a final \n)


def _ident(name: Any) -> str:
    name = str(name)
    return _quote(name) if _needs_quotes(name) and name != "-" else name


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | int | float)


def _scalar(value: Any) -> str:
    if value is None:
        return "#null"
    if value is True:
        return "#true"
    if value is False:
        return "#false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "#nan"
        if math.isinf(value):
            return "#inf" if value > 0 else "#-inf"
        return _float(value)
    if isinstance(value, str):
        return _quote(value)
    raise ValueError(f"cannot write {type(value).__name__} value {value!r} as a KDL scalar")


def _float(value: float) -> str:
    """The shortest float text that ckdl reads back exactly (ckdl 1.0 is off by one ulp for about
    1.4% of full-precision doubles written the shortest way; 17 digits always come back)."""
    for text in (repr(value), f"{value:.17g}", f"{value:.16e}"):
        if not any(c in text for c in ".eE"):
            text += ".0"
        doc, _ = _try_parse(f"v {text}", 2)
        if doc is not None and doc.nodes[0].args[0] == value:
            return text
    return repr(value)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def emit(self, depth: int, text: str) -> None:
        self.lines += ("    " * depth + text).split("\n")

    @staticmethod
    def string(value: str, depth: int) -> str:
        """A string argument; multi-line text becomes a v2 multi-line string (easier to read)."""
        lines = value.split("\n")
        if len(lines) < 2 or any(line and not line.strip() for line in lines):
            return _quote(value)  # (whitespace-only lines would be emptied by the KDL reader)
        indent = "    " * (depth + 1)
        body = [indent + _quote(line)[1:-1] if line else "" for line in lines]
        return "\n".join(['"""', *body, indent + '"""'])

    def block(self, depth: int, head: str, body) -> None:
        start = len(self.lines)
        self.emit(depth, head + " {")
        body(depth + 1)
        if len(self.lines) == start + 1:  # nothing inside
            self.lines[-1] = "    " * depth + head
        else:
            self.emit(depth, "}")

    def value(self, depth: int, name: str, value: Any) -> None:
        """A free-form value (see `_Mapper.value`)."""
        head = _ident(name)
        if isinstance(value, str):
            self.emit(depth, f"{head} {self.string(value, depth)}")
        elif _is_scalar(value):
            self.emit(depth, f"{head} {_scalar(value)}")
        elif isinstance(value, dict):
            if not value or all(k == "-" for k in value):
                head = f"(object){head}"
                if not value:
                    self.emit(depth, head)
                    return
            self.block(depth, head, lambda d: [self.value(d, k, v) for k, v in value.items()])
        elif isinstance(value, list | tuple):
            if len(value) != 1 and all(_is_scalar(v) for v in value):
                self.emit(depth, " ".join([head, *(_scalar(v) for v in value)]))
            else:
                self.block(depth, head, lambda d: [self.value(d, "-", v) for v in value])
        else:
            raise ValueError(f"cannot write {type(value).__name__} value for {name!r} as KDL")

    def mapping(self, depth: int, name: str, value: Any) -> None:
        if value is None:
            self.emit(depth, f"{name} #null")
        elif not isinstance(value, dict):
            self.value(depth, name, value)  # read back as a problem, as it should be
        elif not value:
            self.emit(depth, name)
        else:
            self.block(depth, name, lambda d: [self.value(d, k, v) for k, v in value.items()])

    def list_field(self, depth: int, name: str, value: Any, one_per_line: bool = False) -> None:
        if value is None:
            self.emit(depth, f"{name} #null")
        elif isinstance(value, list | tuple) and all(_is_scalar(v) and v is not None for v in value):
            if one_per_line and value:
                singular = {"commands": "command"}.get(name, name)
                for v in value:
                    self.emit(depth, f"{singular} {_scalar(v)}")
            else:
                self.emit(depth, " ".join([name, *(_scalar(v) for v in value)]))
        else:
            raise ValueError(f"cannot write {name!r} = {value!r} as KDL: expected a list of scalars")

    def fields(self, depth: int, item: dict[str, Any], table: dict[str, tuple[str, str]], skip: set[str]) -> None:
        kinds = {key: kind for key, kind in table.values()}
        for key, value in item.items():
            if key in skip:
                continue
            kind = kinds.get(key)
            if kind in ("rule", "rules_marker"):
                if value is None:
                    self.emit(depth, "rules #null")
                    continue
                if not isinstance(value, list):
                    raise ValueError(f"cannot write rules = {value!r} as KDL: expected a list")
                for rule in value:
                    if not isinstance(rule, dict):
                        raise ValueError(f"cannot write rule {rule!r} as KDL: expected a mapping")
                    self.block(depth, "rule", lambda d, r=rule: self.fields(d, r, RULE_FIELDS, set()))
            elif kind == LIST:
                self.list_field(depth, key, value, one_per_line=key == "commands")
            elif kind == MAP:
                self.mapping(depth, key, value)
            elif kind == JSON:
                if isinstance(value, str) or not _is_scalar(value):
                    self.emit(depth, f"{key} {_quote(json.dumps(value, ensure_ascii=False))}")
                else:
                    self.emit(depth, f"{key} {_scalar(value)}")
            else:  # scalars, and unknown keys (written generically; reading them back reports them)
                self.value(depth, key, value)

    def item(self, kind: ItemKind, item: Any) -> None:
        if not isinstance(item, dict):
            raise ValueError(f"cannot write {kind.node} {item!r} as KDL: expected a mapping")
        head = kind.node
        skip: set[str] = set()
        name = item.get("name")
        if kind.named and isinstance(name, str):
            head += " " + _quote(name)
            skip.add("name")
        rest = {k: v for k, v in item.items() if k not in skip}
        if kind.node == "file" and set(rest) == {"path"} and isinstance(rest["path"], str):
            self.emit(0, f"{head} path={_quote(rest['path'])}")
            return
        self.block(0, head, lambda d: self.fields(d, item, kind.fields, skip))


def dict_to_kdl(spec: dict[str, Any]) -> str:
    """Write a spec dict (as loaded from YAML/JSON, or a dumped WorkflowSpec) as KDL v2 text such
    that ``kdl_to_dict(dict_to_kdl(d)) == d``. Raises ValueError for values KDL cannot hold here
    (e.g. a list field holding mappings)."""
    chunks: list[list[str]] = []  # one per top-level entry or list item
    for key, value in spec.items():
        w = _Writer()
        kind = ITEM_BY_KEY.get(key)
        if kind is None:
            if key in TOP_MAPS:
                w.mapping(0, key, value)
            else:
                w.value(0, key, value)
        elif value is None:
            w.emit(0, f"{key} #null")
        elif isinstance(value, list) and not value:
            w.emit(0, key)
        elif isinstance(value, list):
            for item in value:
                w.item(kind, item)
                chunks.append(w.lines)
                w = _Writer()
            continue
        else:
            raise ValueError(f"cannot write {key!r} = {value!r} as KDL: expected a list")
        chunks.append(w.lines)
    lines: list[str] = []
    for i, chunk in enumerate(chunks):
        if i and (len(chunk) > 1 or len(chunks[i - 1]) > 1):
            lines.append("")
        lines += chunk
    return "\n".join(lines) + "\n"
