"""Fuzzing the spec loader: whatever a spec file holds, loading it either works or raises SpecError
(an InvalidInputError) whose message names the file; never another exception, never a hang.

Inputs are random mutations of the real example specs (tests/data/examples) written out as YAML,
JSON, JSON5 or KDL, random edits of their text, and a list of known-nasty cases (deep nesting,
recursive YAML aliases, alias bombs, huge format widths, bad parameter expressions, cycles).
Every run is derandomized and bounded, so the suite stays fast and repeatable.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import json5
import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torc.client import TorcClient
from torc.client.from_spec import create_from_file
from torc.core.errors import InvalidInputError, TorcError
from torc.server.app import API_PREFIX, ServerConfig, create_app
from torc.spec.kdl import dict_to_kdl
from torc.spec.load import SpecError, parse_file, spec_from_data
from torc.spec.resolve import resolve
from torc.storage.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
EXAMPLE_FILES = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".json5", ".kdl", ".json"))
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _example_data() -> list[dict[str, Any]]:
    out = []
    for path in EXAMPLE_FILES:
        data, _ = parse_file(path)
        out.append(data)
    return out


EXAMPLE_DATA = _example_data()


def load_everything(path: Path) -> None:
    """The whole client-side pipeline `torc workflows create` runs before it sends anything."""
    try:
        data, source = parse_file(path)
        spec, broken = spec_from_data(data, source)
        jobs = resolve(spec, source, broken)
    except SpecError as exc:
        assert isinstance(exc, InvalidInputError)
        assert str(path) in exc.message, exc.message
        assert exc.problems and all(isinstance(p, str) and p.strip() for p in exc.problems), exc.problems
        assert "Traceback" not in exc.message
        return
    # What passed must be sendable: create_workflow serializes these as JSON.
    json.dumps(spec.metadata)
    json.dumps([u.data for u in spec.user_data or []])
    json.dumps(spec.slurm_defaults)
    assert all(isinstance(j.command, str) for j in jobs)


def write_spec(folder: Path, data: Any, fmt: str) -> Path:
    if fmt == "kdl":
        try:
            text = dict_to_kdl(data) if isinstance(data, dict) else json.dumps(data)
        except (ValueError, TypeError):
            fmt, text = "json", json.dumps(data, default=str)
    elif fmt == "yaml":
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    elif fmt == "json5":
        text = json5.dumps(data)
    else:
        text = json.dumps(data, default=str)
    path = folder / f"spec.{fmt}"
    path.write_text(text, encoding="utf-8")
    return path


# ---- strategies ---------------------------------------------------------------------------------

BAD_PARAMETER_TEXT = [
    "{1:}", "{a:03q}", "1:10:0", "0:1:0.0", "1:", ":", "::", "[,]", "[a,,b]", "[]", "", " ", "1:3:4:5",
    "10:1", "a:b", "1e400:2", "0:1:1e-400", "1:99999999999999999999", "-5:5:-1", "{a, b}", "nan:1",
    "[1, 2", "0x10:0x20", "1.5.2:3", "\u00e9:\u00e8", "1:10000001",
]
HUGE_NUMBERS = [2**63, -(2**63) - 1, 10**30, -1, 0, 1e308, -1e308, float("inf"), float("nan"), 1e-320]
NAMES = ["a", "", " ", "ジョブ", "job\nname", "a{i}", "{i:>99999999}", "${files.input.nope}", "x" * 5000,
         "../../etc/passwd", "'; DROP TABLE job; --", "\u202e\u0000", "default"]

scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(HUGE_NUMBERS), st.integers(), st.floats(allow_nan=False),
    st.sampled_from(NAMES), st.sampled_from(BAD_PARAMETER_TEXT), st.text(max_size=20),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["name", "command", "x", "1"]), inner, max_size=3),
), max_leaves=8)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a spec tree (dict keys and list indexes), down to 20 levels."""
    out = [prefix]
    if len(prefix) >= 20:
        return out
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _get(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(draw(st.sampled_from(EXAMPLE_DATA)))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["drop", "replace", "add_key", "nest", "bad_param", "cycle", "unknown_ref",
                                   "duplicate", "top_level"]))
        if not path or op == "top_level":
            data = draw(st.one_of(values, st.just(data)))
            continue
        parent, key = _get(data, path[:-1]), path[-1]
        if op == "drop":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(values)
        elif op == "add_key" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["nmae", "depends_on", "parameters", "use_parameters", "parameter_mode",
                                         "rules", "data", "zzz"]))] = draw(values)
        elif op == "nest":
            depth = draw(st.sampled_from([5, 99, 150]))
            nested: Any = parent[key]
            for _ in range(depth):
                nested = [nested]
            parent[key] = nested
        elif op == "bad_param" and isinstance(parent, dict):
            parent["parameters"] = {draw(st.sampled_from(["i", "lr", "", "a:b", "{x}"])): draw(
                st.one_of(st.sampled_from(BAD_PARAMETER_TEXT), values))}
            parent["name"] = draw(st.sampled_from(["j{i}", "j{i:03d}", "j{i:03q}", "j{lr:.2f}", "j{i:>999999}"]))
        elif op in ("cycle", "unknown_ref") and isinstance(data, dict) and isinstance(data.get("jobs"), list):
            jobs = [j for j in data["jobs"] if isinstance(j, dict)]
            if jobs:
                a, b = draw(st.sampled_from(jobs)), draw(st.sampled_from(jobs))
                if op == "cycle":
                    a["depends_on"] = [b.get("name")]
                    b["depends_on"] = [a.get("name")]
                else:
                    field = draw(st.sampled_from(["depends_on", "input_files", "output_user_data",
                                                  "resource_requirements", "failure_handler", "scheduler"]))
                    a[field] = ["nope"] if not field.endswith(("requirements", "handler", "scheduler")) else "nope"
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return data


EDGE_INTS = [0, 1, -1, 2**31, 2**63 - 1, -(2**63), 10**6]
EDGE_FLOATS = [0.0, 1e-9, 1e12, -0.5]
EDGE_TEXT = ["", " ", "ジョブ", "emoji \U0001f600", "x" * 2000, "'; DROP TABLE job; --", "a\u0000b", "{i}",
             "${files.input.x}", "default", "1:3", "on_workflow_start", "0", "PT1M", "1g"]


@st.composite
def mild_specs(draw: st.DrawFn) -> Any:
    """An example spec with one or two leaves swapped for edge values of the same type (plus the odd
    dropped key): most still load, so what the server makes of them gets tested too."""
    data = copy.deepcopy(draw(st.sampled_from(EXAMPLE_DATA)))
    for _ in range(draw(st.integers(1, 2))):
        leaves = [p for p in _paths(data) if p and not isinstance(_get(data, p), dict | list)]
        path = draw(st.sampled_from(leaves))
        parent, key, value = _get(data, path[:-1]), path[-1], _get(data, path)
        if draw(st.integers(0, 9)) == 0 and isinstance(parent, dict) and key not in ("name", "command"):
            del parent[key]
        elif isinstance(value, bool):
            parent[key] = not value
        elif isinstance(value, int):
            parent[key] = draw(st.sampled_from(EDGE_INTS))
        elif isinstance(value, float):
            parent[key] = draw(st.sampled_from(EDGE_FLOATS))
        elif isinstance(value, str):
            parent[key] = draw(st.sampled_from([*EDGE_TEXT, value + "\u00fc", value * 3]))
    return data


# ---- tests --------------------------------------------------------------------------------------


@FUZZ
@given(data=mutated_specs(), fmt=st.sampled_from(["yaml", "json", "json5", "kdl"]))
def test_mutated_example_specs_load_or_raise_spec_error(data, fmt):
    with tempfile.TemporaryDirectory() as folder:
        load_everything(write_spec(Path(folder), data, fmt))


@FUZZ
@given(source=st.sampled_from(EXAMPLE_FILES), edits=st.lists(
    st.tuples(st.floats(0, 1), st.integers(0, 40), st.sampled_from(["", "{", "}", ":", "\"", "[", "]", "-",
                                                                     "\n", "  ", "#", "\\", "\u00e9", "\x00",
                                                                     "&a", "*a", "!!", "/*", "/-", "#null"])),
    min_size=1, max_size=5))
def test_edited_example_texts_load_or_raise_spec_error(source, edits):
    text = source.read_text()
    for where, cut, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at + cut:]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"spec{source.suffix}"
        path.write_text(text, encoding="utf-8")
        load_everything(path)


@FUZZ
@given(text=st.text(max_size=300), fmt=st.sampled_from(["yaml", "json", "json5", "kdl"]))
def test_random_text_loads_or_raises_spec_error(text, fmt):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"spec.{fmt}"
        path.write_text(text, encoding="utf-8")
        load_everything(path)


DEEP = 5000
NASTY = {
    # found by this fuzz: RecursionError from every parser
    "deep.json": "[" * DEEP + "]" * DEEP,
    "deep_meta.json": '{"name": "x", "metadata": ' + "[" * DEEP + "]" * DEEP + "}",
    "deep.yaml": "name: x\nmetadata: " + "[" * DEEP + "]" * DEEP,
    "deep.json5": "{name: 'x', metadata: " + "[" * DEEP + "]" * DEEP + "}",
    "deep.kdl": 'name "x"\nmetadata {' + "a {" * DEEP + "}" * DEEP + "}",
    # found by this fuzz: recursive YAML aliases (ValueError: Circular reference detected at create)
    "recursive.yaml": "name: x\nmetadata: &a [*a]",
    "recursive_data.yaml": "name: x\nuser_data:\n- &u {name: a, data: *u}",
    "recursive_params.yaml": "name: x\nparameters: &p {i: *p}\njobs:\n- {name: a, command: b, use_parameters: [i]}",
    "alias_bomb.yaml": "name: x\nmetadata: {a: &a [1,1,1,1,1,1,1,1,1,1], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a],"
                       " c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c],"
                       " e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e],"
                       " g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f], h: [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]}",
    # found by this fuzz: MemoryError (a gigabyte string per job)
    "huge_width.yaml": "name: x\njobs:\n- {name: 'a{i:>99999999999}', command: b, parameters: {i: '1:2'}}",
    "huge_precision.yaml": "name: x\njobs:\n- {name: 'a{i:.999999999f}', command: b, parameters: {i: '1:2'}}",
    "zero_step.yaml": "name: x\njobs:\n- {name: 'a{i}', command: b, parameters: {i: '1:10:0'}}",
    "empty_range.yaml": "name: x\njobs:\n- {name: 'a{i}', command: b, parameters: {i: '{1:}'}}",
    "bad_format.yaml": "name: x\njobs:\n- {name: 'a{i:03q}', command: b, parameters: {i: '1:3'}}",
    "too_many.yaml": "name: x\njobs:\n- {name: 'a{i}', command: b, parameters: {i: '0:1e20:1e-20'}}",
    "cycle.yaml": "name: x\njobs:\n- {name: a, command: b, depends_on: [c]}\n- {name: c, command: b, depends_on: [a]}",
    "unknown_ref.yaml": "name: x\njobs:\n- {name: a, command: b, depends_on: [zz], input_files: [f]}",
    "top_list.yaml": "- 1\n- 2",
    "top_scalar.json": "42",
    "python_tag.yaml": "!!python/object/apply:os.system ['true']",
    "bad.kdl": 'name "x"\njob "a" {\n  command "b"\n',
    "bad_regex.yaml": "name: x\njobs:\n- {name: a, command: b, depends_on_regexes: ['(']}",
    # found by the create fuzz below: values the loader let through that crashed the client
    # (TypeError: Integer exceeds 64-bit range) or that only the server refused, naming no file
    "huge_cpus.yaml": "name: x\nresource_requirements:\n- {name: r, num_cpus: 99999999999999999999999, memory: 1g}",
    "huge_exit_code.yaml": "name: x\nfailure_handlers:\n- {name: f, rules: [{exit_codes: [99999999999999999999]}]}",
    "huge_user_data.yaml": "name: x\nuser_data:\n- {name: u, data: {a: [99999999999999999999]}}",
    "huge_memory.yaml": "name: x\nresource_requirements:\n- {name: r, num_cpus: 1, memory: 99999999999999999999g}",
    "surrogate.json": '{"name": "x", "description": "\\ud800"}',
    # found by the create fuzz: resolve() ignored a self-dependency, the client's level sort then failed
    # after the workflow had been created ("dependency cycle among: ..." naming no file)
    "self_dependency.yaml": "name: x\njobs:\n- {name: a, command: b, depends_on: [a]}",
    "empty_job_name.yaml": "name: x\njobs:\n- {name: '', command: b}",
    "no_commands.yaml": "name: x\nactions:\n- {trigger_type: on_workflow_start, action_type: run_commands}",
    "bad_trigger.yaml": "name: x\nactions:\n- {trigger_type: on_tuesday, action_type: run_commands}",
}


# found by the create fuzz: a "did you mean" search over every job name for every undefined reference
# (quadratic: a templated typo across thousands of jobs took hours); a parameterized fan-in job
# joined its lists in quadratic time (100,000 combinations: about a minute)
NASTY["many_typos.json"] = json.dumps({"name": "x", "jobs": [
    {"name": f"job_{i}", "command": "b", "depends_on": [f"jb_{i}"]} for i in range(5000)]})
NASTY["fan_in.yaml"] = ("name: x\njobs:\n- {name: 'train_{i}', command: b, parameters: {i: '1:50000'}}\n"
                        "- {name: agg, command: b, depends_on: ['train_{i}'], parameters: {i: '1:50000'}}\n"
                        "- {name: bad, command: b, depends_on: [nope]}")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", sorted(NASTY))
def test_nasty_specs_raise_spec_error(tmp_path, name):
    path = tmp_path / name
    path.write_text(NASTY[name], encoding="utf-8")
    with pytest.raises(SpecError) as info:
        data, source = parse_file(path)
        spec, broken = spec_from_data(data, source)
        resolve(spec, source, broken)
    assert str(path) in info.value.message


def test_invalid_utf8_spec_file_is_a_spec_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SpecError, match="latin1.yaml"):
        parse_file(path)


def test_spec_data_from_python_is_checked_too():
    """spec_from_data is also called with Python data (the builder, the dashboard): same checks."""
    data: dict[str, Any] = {"name": "x", "metadata": []}
    data["metadata"].append(data)
    with pytest.raises(SpecError, match="recursive"):
        spec_from_data(data, "<builder>")


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.one_of(mild_specs(), mild_specs(), mutated_specs()), fmt=st.sampled_from(["yaml", "json", "kdl"]))
def _create_one(client: TorcClient, folder: Path, data: Any, fmt: str) -> None:
    path = write_spec(folder, data, fmt)
    try:
        create_from_file(client, path, monitoring=False)
    except SpecError as exc:
        assert str(path) in exc.message
    except TorcError as exc:
        # The loader let the spec through and the server refused it: the check belongs in the loader,
        # where the message names the file and the job.
        pytest.fail(f"server refused a spec the loader accepted ({exc.status_code}): {exc.message}")


def test_mutated_specs_that_load_are_created_or_refused_with_a_spec_error(tmp_path):
    """What the loader accepts, the server takes: no TypeError in the client, no 4xx/5xx at create."""
    store = SqliteStore(tmp_path / "torc.db")
    try:
        app = create_app(ServerConfig(), store=store)
        with TestClient(app, base_url=f"http://testserver{API_PREFIX}/", raise_server_exceptions=False) as http:
            client = TorcClient("http://testserver" + API_PREFIX)
            client.http = http
            _create_one(client, tmp_path)
    finally:
        store.close()
