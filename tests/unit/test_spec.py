"""Spec loading: formats, parameter expansion, substitution, edges, and all problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from torc.client.from_spec import blockers_from_file, dry_run_summary
from torc.spec.load import SpecError, parse_file, spec_from_data
from torc.spec.resolve import edges, resolve

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


def _load(path: Path):
    data, source = parse_file(path)
    spec, broken = spec_from_data(data, source)
    return spec, resolve(spec, source, broken)


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        _load(path)
    assert str(path) in str(info.value)
    return info.value.problems


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir()), ids=str)
def test_every_torc_example_loads(example):
    spec, jobs = _load(EXAMPLES / example)
    assert spec.name and jobs
    names = [j.spec.name for j in jobs]
    assert len(names) == len(set(names))


def test_yaml_and_json5_forms_give_the_same_workflow():
    def shape(path):
        spec, jobs = _load(EXAMPLES / path)
        return ({j.spec.name: (j.command, tuple(j.input_files), tuple(j.output_files)) for j in jobs},
                {f.name: f.path for f in spec.files or []},
                {k: sorted(v) for k, v in edges(jobs).items()})

    assert shape("sample_workflow.yaml") == shape("sample_workflow.json5")


def test_file_substitution_infers_edges(tmp_path):
    spec = _write(tmp_path, """
name: s
jobs:
  - name: make
    command: "gen > ${files.output.data}"
  - name: use
    command: "wc -l ${files.input.data} > ${files.output.count} && echo '${user_data.input.cfg}'"
files:
  - {name: data, path: out/data.txt}
  - {name: count, path: out/count.txt}
user_data:
  - {name: cfg, data: {"k": 1}}
""")
    _, jobs = _load(spec)
    use = next(j for j in jobs if j.spec.name == "use")
    assert use.command == "wc -l out/data.txt > out/count.txt && echo '{\"k\": 1}'"
    assert (use.input_files, use.output_files, use.input_user_data) == (["data"], ["count"], ["cfg"])
    assert edges(jobs) == {"make": set(), "use": {"make"}}
    assert blockers_from_file(spec) == {"make": [], "use": ["make"]}


def test_regex_relationships(tmp_path):
    spec = _write(tmp_path, """
name: r
parameters: {i: "1:3"}
jobs:
  - {name: "work_{i}", command: "echo {i}", use_parameters: [i]}
  - {name: collect, command: "echo done", depends_on_regexes: ["^work_"]}
""")
    _, jobs = _load(spec)
    assert edges(jobs)["collect"] == {"work_1", "work_2", "work_3"}


def test_all_problems_are_reported_at_once(tmp_path):
    spec = _write(tmp_path, """
name: bad
jobs:
  - name: a
    comand: echo typo
  - name: b
    command: "cat ${files.input.nope}"
    depends_on: [c]
    resource_requirements: huge
  - name: b
    command: echo duplicate
  - name: "p_{x}"
    command: run
    parameters: {x: "1:10:0"}
resource_requirements:
  - {name: small, num_cpus: 1, memory: 1.5g}
files:
  - {name: f}
""")
    problems = _problems(spec)
    text = "\n".join(problems)
    for expected in (
        "job 'a' (jobs[0]): unknown key 'comand'; did you mean 'command'?",
        "job 'a' (jobs[0]): missing required field 'command'",
        "file 'f' (files[0]): missing required field 'path'",
        "job 'b': ${files.input.nope} refers to an undefined file",
        "job 'b': depends_on refers to undefined job 'c'",
        "job 'b': resource_requirements 'huge' is not defined",
        "job 'b': duplicate name",
        "step 0",
        "resource_requirements 'small' (resource_requirements[0]) field 'memory': Value error, invalid memory '1.5g'",
    ):
        assert expected in text, f"missing {expected!r} in:\n{text}"


def test_cycle_is_printed(tmp_path):
    spec = _write(tmp_path, """
name: loop
jobs:
  - {name: a, command: x, depends_on: [c]}
  - {name: b, command: x, depends_on: [a]}
  - {name: c, command: x, depends_on: [b]}
""")
    (problem,) = _problems(spec)
    assert problem.startswith("dependency cycle: ")
    chain = problem.removeprefix("dependency cycle: ").split(" -> ")
    assert chain[0] == chain[-1] and set(chain) == {"a", "b", "c"}


def test_yaml_base60_ranges_stay_ranges(tmp_path):
    spec = _write(tmp_path, "name: r\njobs:\n  - {name: 'j{i}', command: x, parameters: {i: 1:30}}\n")
    _, jobs = _load(spec)
    assert len(jobs) == 30


def test_bad_yaml_and_unknown_extension(tmp_path):
    assert "invalid YAML at line 3" in _problems(_write(tmp_path, "name: x\njobs: [\n"))[0]
    assert "unknown spec extension '.txt'" in _problems(_write(tmp_path, "name: x", "spec.txt"))[0]
    assert _problems(tmp_path / "missing.yaml") == ["file not found"]
    assert "expected a mapping" in _problems(_write(tmp_path, "- a\n- b\n"))[0]


def test_dry_run_summary(tmp_path):
    ok = dry_run_summary(EXAMPLES / "hundred_jobs_parameterized.yaml")
    assert ok["valid"] and ok["summary"]["job_count"] == 100
    assert ok["summary"]["job_count_before_expansion"] < 100
    bad = dry_run_summary(_write(tmp_path, "name: x\njobs:\n  - {name: a}\n"))
    assert bad == {"valid": False, "errors": ["job 'a' (jobs[0]): missing required field 'command'"],
                   "warnings": [], "summary": None}


def _shape(path: Path):
    spec, jobs = _load(path)
    return ({j.spec.name: (j.command, tuple(j.input_files), tuple(j.output_files)) for j in jobs},
            {f.name: f.path for f in spec.files or []},
            {k: sorted(v) for k, v in edges(jobs).items()})


def test_yaml_json_json5_kdl_give_identical_workflows(tmp_path):
    import json

    import yaml

    from torc.spec.kdl import dict_to_kdl

    source = EXAMPLES / "hyperparameter_sweep_shared_params.yaml"
    data = yaml.safe_load(source.read_text())
    (tmp_path / "w.json").write_text(json.dumps(data))
    (tmp_path / "w.json5").write_text("// comment\n" + json.dumps(data, indent=1).replace('"name"', "name"))
    (tmp_path / "w.kdl").write_text(dict_to_kdl(data))
    expected = _shape(source)
    assert len(expected[0]) == 21
    for name in ("w.json", "w.json5", "w.kdl"):
        assert _shape(tmp_path / name) == expected, name
    assert _shape(EXAMPLES / "diamond_workflow.kdl") == _shape(EXAMPLES / "diamond_workflow.yaml")


def test_kdl_depends_on_job_and_problems(tmp_path):
    ok = _write(tmp_path, 'name "k"\njob "a" { command "x"; }\njob "b" { command "y"; depends_on_job "a"; }\n',
                "k.kdl")
    assert edges(_load(ok)[1]) == {"a": set(), "b": {"a"}}
    bad = _write(tmp_path, 'name "k"\njob "a" { comand "x"; }\n', "bad.kdl")
    assert any("unknown node 'comand'; did you mean 'command'?" in p for p in _problems(bad))


def test_action_and_scheduler_checks(tmp_path):
    spec = _write(tmp_path, """
name: acts
jobs: [{name: a, command: x}]
slurm_schedulers: [{name: s, account: acc, walltime: banana}]
resource_requirements: [{name: r, memory: 1g}]
actions:
  - {trigger_type: on_jobs_complete, action_type: run_commands, jobs: [typo], commands: [echo]}
  - {trigger_type: on_jobs_ready, action_type: run_commands, commands: [echo]}
""")
    text = "\n".join(_problems(spec))
    assert "invalid walltime 'banana'" in text
    assert "resource_requirements 'r' (resource_requirements[0]): missing required field 'num_cpus'" in text
    assert "action 0 (on_jobs_complete): jobs refers to undefined job 'typo'" in text
    assert "action 1 (on_jobs_ready): a job trigger needs jobs" in text


def test_a_section_of_the_wrong_type_is_reported_once(tmp_path):
    assert _problems(_write(tmp_path, "name: x\njobs: 5\n")) == ["field 'jobs': expected a list, found int"]
