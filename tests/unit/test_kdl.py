"""KDL specs (reference §1.7): KDL text -> the same plain dict YAML gives, and back."""

from __future__ import annotations

import math
from pathlib import Path

import json5
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torc.spec.kdl import KdlError, dict_to_kdl, kdl_to_dict
from torc.spec.model import WorkflowSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
YAML_EXAMPLES = sorted(EXAMPLES.glob("*.yaml"))


def problems(text: str) -> list[str]:
    with pytest.raises(KdlError) as info:
        kdl_to_dict(text, "spec.kdl")
    assert isinstance(info.value, ValueError)
    assert "spec.kdl" in str(info.value)
    return info.value.problems


def roundtrip(spec: dict) -> dict:
    return kdl_to_dict(dict_to_kdl(spec), "roundtrip.kdl")


# ---------------------------------------------------------------------------------------------
# Reading


def test_diamond_kdl_equals_diamond_yaml():
    from_kdl = kdl_to_dict((EXAMPLES / "diamond_workflow.kdl").read_text(), "diamond_workflow.kdl")
    from_yaml = yaml.safe_load((EXAMPLES / "diamond_workflow.yaml").read_text())
    assert from_kdl == from_yaml
    WorkflowSpec.model_validate(from_kdl)


V2_DOC = """
name "flags"
use_pending_failed #true
compute_node_ignore_workflow_completion #false
description #null
job "a" {
    command "echo a"
    supports_termination #true
    cancel_on_blocking_job_failure #false
    invocation_script #null
}
"""

V1_DOC = """
name "flags"
use_pending_failed true
compute_node_ignore_workflow_completion false
description null
job "a" {
    command "echo a"
    supports_termination true
    cancel_on_blocking_job_failure false
    invocation_script null
}
"""


def test_v1_and_v2_booleans_and_null_read_the_same():
    expected = {
        "name": "flags",
        "use_pending_failed": True,
        "compute_node_ignore_workflow_completion": False,
        "description": None,
        "jobs": [{"name": "a", "command": "echo a", "supports_termination": True,
                  "cancel_on_blocking_job_failure": False, "invocation_script": None}],
    }
    assert kdl_to_dict(V2_DOC, "v2.kdl") == expected
    assert kdl_to_dict(V1_DOC, "v1.kdl") == expected


def test_v2_bare_identifier_strings_and_raw_and_multiline_strings():
    doc = 'name demo\njob "a" {\n    command #"echo "quoted" \\n"#\n    invocation_script """\n' \
          '        set -e\n          export X=1\n        """\n}\n'
    spec = kdl_to_dict(doc, "x.kdl")
    assert spec["name"] == "demo"
    assert spec["jobs"][0]["command"] == 'echo "quoted" \\n'
    assert spec["jobs"][0]["invocation_script"] == "set -e\n  export X=1"


def test_depends_on_job_is_an_alias_of_depends_on_and_lists_accumulate():
    spec = kdl_to_dict("""
name "deps"
job "c" {
    command "echo c"
    depends_on "a"
    depends_on_job "b"
    depends_on "x" "y"
}
""", "d.kdl")
    assert spec["jobs"][0]["depends_on"] == ["a", "b", "x", "y"]


def test_list_fields_singular_plural_and_properties():
    spec = kdl_to_dict("""
name "lists"
job "j" command="run" resource_requirements="small" {
    input_file "f1"
    input_file "f2"
    input_files "f3" "f4"
    output_file "g"
    input_user_data "u"
    output_user_data "v" "w"
    use_parameters "a" "b"
    use_parameter "c"
}
""", "l.kdl")
    assert spec["jobs"] == [{
        "name": "j", "command": "run", "resource_requirements": "small",
        "input_files": ["f1", "f2", "f3", "f4"], "output_files": ["g"],
        "input_user_data": ["u"], "output_user_data": ["v", "w"], "use_parameters": ["a", "b", "c"],
    }]


def test_every_regex_field_is_writable():
    spec = kdl_to_dict(r"""
name "regexes"
job "sink" {
    command "echo"
    depends_on_regexes "^work_\\d+$"
    depends_on_regex #"prep_\w*"#
    input_file_regexes "in_.*"
    output_file_regexes "out_.*"
    input_user_data_regexes "meta_.*"
    output_user_data_regexes "res_.*" "extra_.*"
}
action {
    trigger_type "on_jobs_ready"
    action_type "run_commands"
    job_name_regexes "^sink$"
    command "echo ready"
}
""", "r.kdl")
    job = spec["jobs"][0]
    assert job["depends_on_regexes"] == [r"^work_\d+$", r"prep_\w*"]
    assert job["input_file_regexes"] == ["in_.*"]
    assert job["output_file_regexes"] == ["out_.*"]
    assert job["input_user_data_regexes"] == ["meta_.*"]
    assert job["output_user_data_regexes"] == ["res_.*", "extra_.*"]
    assert spec["actions"][0]["job_name_regexes"] == ["^sink$"]
    WorkflowSpec.model_validate(spec)


ALL_KINDS = r"""
name "everything"
user "alice"
description "every node kind"
project "proj"
metadata "free text"
jobs_sort_method "gpus_runtime_memory"
use_pending_failed #true
compute_node_expiration_buffer_seconds 60
compute_node_wait_for_new_jobs_seconds 90
compute_node_ignore_workflow_completion #false
compute_node_wait_for_healthy_database_minutes 20

parameters {
    lr "[0.1,0.01]"
    seed "1:3"
}

slurm_defaults {
    qos "high"
    exclusive #true
    mail-type "END,FAIL"
}

resource_monitor {
    enabled #true
    granularity "time_series"
    sample_interval_seconds 2
    generate_plots #false
}

resource_requirements "small" {
    num_cpus 4
    num_gpus 0
    num_nodes 1
    memory "8g"
    runtime "PT1H"
}

failure_handler "retry" {
    rule {
        exit_codes 10 11
        match_all_exit_codes #false
        recovery_script "s.sh"
        max_retries 2
    }
    rule {
        match_all_exit_codes #true
        max_retries 1
    }
}

slurm_scheduler "cpu" {
    account "acct"
    partition "short"
    nodes 2
    walltime "04:00:00"
    mem "180G"
    gres "gpu:2"
    qos "normal"
    ntasks_per_node 4
    tmp "100G"
    extra "--constraint=lbw"
}

file "data" path="/data/{i}.csv" {
    parameters {
        i "1:2"
    }
}
file "model" {
    path "/m.pt"
}

user_data "cfg" {
    is_ephemeral #true
    data "{\"a\": [1, 2], \"b\": null}"
}
user_data "scalar" {
    data 5
}

job "train_{lr}" {
    command "python train.py --lr {lr} -o ${files.output.model}"
    resource_requirements "small"
    failure_handler "retry"
    scheduler "cpu"
    invocation_script "srun"
    cancel_on_blocking_job_failure #false
    supports_termination #true
    parameter_mode "zip"
    use_parameters "lr"
    input_file "data"
    input_user_data "cfg"
    parameters {
        lr "[0.1,0.01]"
    }
}

action {
    trigger_type "on_workflow_start"
    action_type "schedule_nodes"
    scheduler "cpu"
    scheduler_type "slurm"
    num_allocations 2
    start_one_worker_per_node #true
    max_parallel_jobs 8
    persistent #false
}
action {
    trigger_type "on_jobs_complete"
    action_type "run_commands"
    job "train_0.1"
    jobs "a" "b"
    command "echo one"
    command "echo two"
    persistent #true
}
"""

ALL_KINDS_DICT = {
    "name": "everything",
    "user": "alice",
    "description": "every node kind",
    "project": "proj",
    "metadata": "free text",
    "jobs_sort_method": "gpus_runtime_memory",
    "use_pending_failed": True,
    "compute_node_expiration_buffer_seconds": 60,
    "compute_node_wait_for_new_jobs_seconds": 90,
    "compute_node_ignore_workflow_completion": False,
    "compute_node_wait_for_healthy_database_minutes": 20,
    "parameters": {"lr": "[0.1,0.01]", "seed": "1:3"},
    "slurm_defaults": {"qos": "high", "exclusive": True, "mail-type": "END,FAIL"},
    "resource_monitor": {"enabled": True, "granularity": "time_series", "sample_interval_seconds": 2,
                         "generate_plots": False},
    "resource_requirements": [{"name": "small", "num_cpus": 4, "num_gpus": 0, "num_nodes": 1,
                               "memory": "8g", "runtime": "PT1H"}],
    "failure_handlers": [{"name": "retry", "rules": [
        {"exit_codes": [10, 11], "match_all_exit_codes": False, "recovery_script": "s.sh", "max_retries": 2},
        {"match_all_exit_codes": True, "max_retries": 1},
    ]}],
    "slurm_schedulers": [{"name": "cpu", "account": "acct", "partition": "short", "nodes": 2,
                          "walltime": "04:00:00", "mem": "180G", "gres": "gpu:2", "qos": "normal",
                          "ntasks_per_node": 4, "tmp": "100G", "extra": "--constraint=lbw"}],
    "files": [{"name": "data", "path": "/data/{i}.csv", "parameters": {"i": "1:2"}},
              {"name": "model", "path": "/m.pt"}],
    "user_data": [{"name": "cfg", "is_ephemeral": True, "data": {"a": [1, 2], "b": None}},
                  {"name": "scalar", "data": 5}],
    "jobs": [{
        "name": "train_{lr}",
        "command": "python train.py --lr {lr} -o ${files.output.model}",
        "resource_requirements": "small", "failure_handler": "retry", "scheduler": "cpu",
        "invocation_script": "srun", "cancel_on_blocking_job_failure": False, "supports_termination": True,
        "parameter_mode": "zip", "use_parameters": ["lr"], "input_files": ["data"],
        "input_user_data": ["cfg"], "parameters": {"lr": "[0.1,0.01]"},
    }],
    "actions": [
        {"trigger_type": "on_workflow_start", "action_type": "schedule_nodes", "scheduler": "cpu",
         "scheduler_type": "slurm", "num_allocations": 2, "start_one_worker_per_node": True,
         "max_parallel_jobs": 8, "persistent": False},
        {"trigger_type": "on_jobs_complete", "action_type": "run_commands", "jobs": ["train_0.1", "a", "b"],
         "commands": ["echo one", "echo two"], "persistent": True},
    ],
}


def test_every_node_kind_maps_to_the_spec_dict():
    spec = kdl_to_dict(ALL_KINDS, "all.kdl")
    assert spec == ALL_KINDS_DICT
    WorkflowSpec.model_validate(spec)


def test_failure_handler_without_rules_has_an_empty_rule_list():
    assert kdl_to_dict('name "x"\nfailure_handler "h"\n')["failure_handlers"] == [{"name": "h", "rules": []}]


def test_empty_and_null_lists():
    spec = kdl_to_dict("""
name "x"
jobs
files #null
user_data
job "a" {
    command "echo"
    depends_on
    input_files #null
}
""")
    assert spec == {"name": "x", "jobs": [{"name": "a", "command": "echo", "depends_on": [], "input_files": None}],
                    "files": None, "user_data": []}


def test_free_form_values_in_maps_and_metadata():
    spec = kdl_to_dict("""
name "x"
metadata {
    owner "me"
    tags "a" "b"
    one {
        - "only"
    }
    nested {
        k 1
    }
    empty
    (object)none
}
slurm_defaults exclusive=#true
resource_monitor {
    enabled #true
    metrics "cpu_percent" "memory_bytes"
}
""")
    assert spec["metadata"] == {"owner": "me", "tags": ["a", "b"], "one": ["only"], "nested": {"k": 1},
                                "empty": [], "none": {}}
    assert spec["slurm_defaults"] == {"exclusive": True}
    assert spec["resource_monitor"] == {"enabled": True, "metrics": ["cpu_percent", "memory_bytes"]}


def test_type_annotations_on_values_are_ignored():
    spec = kdl_to_dict('name "x"\nresource_requirements "r" { num_cpus (u8)4; memory "1g" }\n')
    assert spec["resource_requirements"] == [{"name": "r", "num_cpus": 4, "memory": "1g"}]


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(("text", "line", "column", "hint"), [
    ('name "x"\njob "a" {\n    command "echo"\n    depends_on 1g\n}\n', 4, 17, "quotes"),
    ('name "x"\njob "a" {\n    command "echo hi\n}\njob "b" {\n    command "x"\n}\n', 3, 21, "string is not closed"),
    ('name "x"\njob "a" {\n    command "echo"\n}}\n', 4, 2, ""),
    ('name "x"\njob "a" {\n    command "echo"\n    depends_on_regexes "a\\d+"\n}\n', 4, None, "raw string"),
    ('name "x"\nuse_pending_failed #true\njob "a" {\n    supports_termination true\n}\n', 4, None, "#true"),
    ('name "x"\nuse_pending_failed true\njob "a" {\n    supports_termination #true\n}\n', 4, None, "#true"),
])
def test_parse_errors_give_line_and_column(text, line, column, hint):
    [problem] = problems(text)
    assert f"line {line}, column {column if column else ''}" in problem
    assert problem.startswith("invalid KDL")
    assert hint in problem


def test_parse_error_at_end_of_input():
    [problem] = problems('name "x"\njob "a" {\n    command "echo"\n')
    assert "end of input" in problem and "missing its '}'" in problem
    [problem] = problems('name "x"\n/* not closed\njob "a"\n')
    assert "end of input" in problem and "comment is not closed" in problem


def test_unknown_nodes_are_reported_with_line_and_suggestion():
    found = problems("""name "x"
// a comment mentioning comand "y" does not confuse line numbers
job "a" {
    comand "echo"
    depends_on_jbo "b"
}
jbo "c"
file "f" pth="x"
failure_handler "h" {
    rule {
        exit_code 1
        max_retry 2
    }
}
action {
    trigger_type "on_workflow_start"
    action_type "run_commands"
    comands "x"
}
""")
    assert found == [
        "line 4: job 'a': unknown node 'comand'; did you mean 'command'?",
        "line 5: job 'a': unknown node 'depends_on_jbo'; did you mean 'depends_on_job'?",
        "line 7: top level: unknown node 'jbo'; did you mean 'job'?",
        "line 8: file 'f': unknown node 'pth'; did you mean 'path'?",
        "line 12: failure_handler 'h' rule #1: unknown node 'max_retry'; did you mean 'max_retries'?",
        "line 18: action #1: unknown node 'comands'; did you mean 'commands'?",
    ]


def test_unknown_node_without_reliable_line_is_still_reported():
    # The slashdash-commented copy makes the text position ambiguous, so no line is claimed.
    found = problems('name "x"\n/- job "a" { bogus 1 }\njob "a" { command "x"; bogus 1 }\n')
    assert found == ["job 'a': unknown node 'bogus'"]


def test_shape_problems_are_all_reported():
    found = problems("""name
name "y"
job "a" "b" { command "a" "b"; parameters 1 }
user_data "u" { data "{bad" }
jobs { job "x" }
files #null
file "f" path="p"
""")
    assert found[0] == "line 1: top level: 'name' takes exactly one value, e.g. name \"...\""
    assert found[1] == "line 2: top level: 'name' is given twice"
    assert "job 'a': job takes one argument, its name; found 2" in found[2]
    assert "'command' takes exactly one value" in found[3]
    assert "'parameters' takes its entries as children" in found[4]
    assert found[5].startswith("line 4: user_data 'u': data is not valid JSON text")
    assert "write each of the jobs as its own 'job' node" in found[6]
    assert "'files' is marked null but has items" in found[7]
    assert len(found) == 8


def test_mapped_dict_is_validated_by_the_model():
    from pydantic import ValidationError

    spec = kdl_to_dict('name "x"\nresource_requirements "r" { num_cpus "four"; memory "1g" }\n')
    with pytest.raises(ValidationError):
        WorkflowSpec.model_validate(spec)


# ---------------------------------------------------------------------------------------------
# Writing and round trips


@pytest.mark.parametrize("spec", [
    {"name": "minimal", "jobs": []},
    {"name": "one", "jobs": [{"name": "a", "command": "echo 'hi' \"there\" \\ $HOME\ttab"}]},
    ALL_KINDS_DICT,
    {"name": "nulls", "description": None, "files": None, "user_data": [], "parameters": None,
     "slurm_defaults": {}, "jobs": [{"name": "a", "command": "x", "depends_on": None, "input_files": [],
                                     "parameters": {}}],
     "failure_handlers": [{"name": "h", "rules": []}, {"name": "n", "rules": None}]},
    {"name": "values", "metadata": {"list": [1, 2.5, "x", None, True], "one": ["a"], "empty": {},
                                    "nested": [{"a": 1}, [1, 2]], "dashes": {"-": 1}},
     "jobs": [], "user_data": [{"name": "s", "data": "text"}, {"name": "n", "data": None},
                               {"data": [1, {"k": "v"}]}, {"name": "f", "data": 1.5}]},
    {"name": "strings", "description": "multi\nline\n\n  indented\n", "user": "uni ✓ — ß",
     "project": "tricky: \"\"\" and \\ and \r and \u2028 and \x00", "jobs": [
         {"name": "weird name {i:03d}", "command": "line1\n   \nline3", "invocation_script": "\n"}]},
    {"name": "numbers", "compute_node_wait_for_new_jobs_seconds": 0, "metadata": [1e300, -0.0, 12345678901234,
                                                                                 -7, 1e-07]},
    {"name": "keys", "slurm_defaults": {"mail-user": "a@b", "true": 1, "has space": "x", "9lives": 2}},
])
def test_dict_to_kdl_round_trips(spec):
    assert roundtrip(spec) == spec


@pytest.mark.parametrize("path", YAML_EXAMPLES, ids=lambda p: p.name)
def test_yaml_examples_round_trip(path):
    spec = yaml.safe_load(path.read_text())
    text = dict_to_kdl(spec)
    assert kdl_to_dict(text, path.name) == spec


def test_json5_example_round_trips_and_matches_yaml():
    spec = json5.loads((EXAMPLES / "sample_workflow.json5").read_text())
    assert roundtrip(spec) == spec
    assert spec == yaml.safe_load((EXAMPLES / "sample_workflow.yaml").read_text())


def test_written_kdl_is_v2_and_readable():
    text = dict_to_kdl(yaml.safe_load((EXAMPLES / "sample_workflow.yaml").read_text()))
    assert "cancel_on_blocking_job_failure #false" in text
    assert 'file "raw_data" path="/data/input/raw_data.csv"' in text
    assert 'invocation_script """\n        #!/bin/bash\n' in text
    assert "depends_on #null" in text
    import ckdl

    ckdl.parse(text, version=2)


def test_dumped_model_round_trips():
    model = WorkflowSpec.model_validate(ALL_KINDS_DICT)
    dumped = model.model_dump(mode="json")
    assert roundtrip(dumped) == dumped


def test_unknown_dict_keys_are_written_and_then_reported():
    text = dict_to_kdl({"name": "x", "jobz": [1], "jobs": [{"name": "a", "command": "c", "comand": "d"}]})
    found = problems(text)
    assert any("unknown node 'jobz'; did you mean 'job'" in p for p in found)
    assert any("job 'a': unknown node 'comand'" in p for p in found)


def test_dict_to_kdl_rejects_what_kdl_cannot_hold():
    with pytest.raises(ValueError):
        dict_to_kdl({"name": "x", "jobs": [{"name": "a", "command": "c", "depends_on": [{"x": 1}]}]})
    with pytest.raises(ValueError):
        dict_to_kdl({"name": "x", "jobs": {"a": 1}})


def test_keys_ending_in_a_newline_are_quoted():
    """Found by the property test below: `re.match`'s `$` also matches before a final newline."""
    spec = {"name": "x", "metadata": {"A\n": None, "B": 1}}
    assert '"A\\n" #null' in dict_to_kdl(spec)
    assert roundtrip(spec) == spec


def test_special_floats_round_trip():
    back = roundtrip({"name": "f", "metadata": [math.inf, -math.inf]})
    assert back["metadata"] == [math.inf, -math.inf]
    nan = roundtrip({"name": "f", "metadata": math.nan})["metadata"]
    assert math.isnan(nan)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                     st.floats(allow_nan=False, allow_infinity=False), _text)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_text, command=_text, deps=st.lists(_text, max_size=4), params=st.dictionaries(_text, _text, max_size=3),
       metadata=_values, data=_values)
def test_round_trip_property(name, command, deps, params, metadata, data):
    spec = {"name": name, "metadata": metadata, "jobs": [{"name": name, "command": command, "depends_on": deps,
                                                          "parameters": params}],
            "user_data": [{"name": "u", "data": data}]}
    assert roundtrip(spec) == spec
