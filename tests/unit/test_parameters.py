"""Parameter expansion (reference §1.5): value forms, combinations, templating, spec items."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from torc.spec.parameters import (
    FILE_FIELDS,
    JOB_FIELDS,
    MAX_COMBINATIONS,
    ParameterError,
    combinations,
    expand_items,
    format_value,
    parse_values,
    render,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


# ---------------------------------------------------------------------------- value forms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:5", [1, 2, 3, 4, 5]),
        (" 1 : 3 ", [1, 2, 3]),
        ("0:100:25", [0, 25, 50, 75, 100]),
        ("1:100:25", [1, 26, 51, 76]),  # the end is a bound, not a value that must appear
        ("10:0:-5", [10, 5, 0]),
        ("-2:2", [-2, -1, 0, 1, 2]),
        ("5:5", [5]),
        ("{1:5}", [1, 2, 3, 4, 5]),
        ("{ 1:3 }", [1, 2, 3]),
        ("[1,5,10]", [1, 5, 10]),
        ("[0.1, 0.5]", [0.1, 0.5]),
        ("['a','b']", ["a", "b"]),
        ('["a", "b"]', ["a", "b"]),
        ("[a, b]", ["a", "b"]),
        ("[1, 2.5, x, '3']", [1, 2.5, "x", "3"]),
        ("['']", [""]),
        ("[nan, inf]", ["nan", "inf"]),  # only decimal literals are numbers
        ("7", [7]),
        ("-7", [-7]),
        ("2.5", [2.5]),
        ("1e3", [1000.0]),
        ("x", ["x"]),
        ("'quoted'", ["quoted"]),
        ("{a, b}", ["{a, b}"]),  # braces with a comma are not stripped
    ],
)
def test_parse_value_strings(text, expected):
    values = parse_values("p", text)
    assert values == expected
    assert [type(v) for v in values] == [type(v) for v in expected]


def test_float_ranges_are_exact_and_include_the_end():
    assert parse_values("x", "0.0:1.0:0.25") == [0.0, 0.25, 0.5, 0.75, 1.0]
    # Decimal arithmetic: no 0.30000000000000004, and 1.0 is not lost to drift.
    tenths = parse_values("x", "0.0:1.0:0.1")
    assert tenths == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert all(isinstance(v, float) for v in tenths)
    assert parse_values("x", "1:0:-0.25") == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert parse_values("x", "1e-3:5e-3:1e-3") == [0.001, 0.002, 0.003, 0.004, 0.005]
    assert parse_values("x", "0:1:0.4") == [0.0, 0.4, 0.8]  # 1.2 is past the end
    assert parse_values("x", "0:2:0.5") == [0.0, 0.5, 1.0, 1.5, 2.0]  # a float step makes floats
    assert parse_values("x", "1.0:3") == [1.0, 2.0, 3.0]


def test_yaml_lists_and_bare_numbers():
    assert parse_values("lr", [0.1, 0.01]) == [0.1, 0.01]
    assert parse_values("n", [1, "two", 3.5]) == [1, "two", 3.5]
    assert parse_values("s", ["007"]) == ["007"]  # YAML already typed it: kept as written
    assert parse_values("flag", [True, False]) == ["true", "false"]
    assert parse_values("n", 4) == [4]
    assert parse_values("x", 0.5) == [0.5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1:10:0", "parameter 'p': step 0 in range '1:10:0'; the step must not be zero"),
        ("0.0:1.0:0.0", "step 0 in range"),
        ("10:1", "range '10:1' is empty"),
        ("0.0:1.0:-0.5", "is empty"),
        ("1:2:3:4", "expected a range 'start:end' or 'start:end:step'; found '1:2:3:4'"),
        ("http://host", "write it as a list"),
        ("a:b", "expected numbers in range 'a:b'; found 'a'"),
        ("1:5:x", "found 'x'"),
        ("[]", "'[]' gives no values"),
        ("[1,,2]", "item 2 of list '[1,,2]' is empty"),
        ("[1,2,]", "item 3"),
        ("", "the value is empty"),
        ("   ", "the value is empty"),
        ("0:10000000", f"at most {MAX_COMBINATIONS}"),
        ("0:1:0.0000001", "gives 10000001 values"),
    ],
)
def test_parse_value_errors_name_parameter_and_text(text, message):
    with pytest.raises(ParameterError) as info:
        parse_values("p", text)
    assert message in str(info.value)
    assert "parameter 'p'" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert info.value.problems == [str(info.value)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "gives no values"),
        ({"a": 1}, "found dict"),
        (None, "found NoneType"),
        ([[1, 2]], "found list [1, 2]"),
        ([None], "found NoneType"),
        (float("inf"), "expected a finite number"),
    ],
)
def test_parse_value_errors_for_native_values(value, message):
    with pytest.raises(ParameterError, match="parameter 'p'") as info:
        parse_values("p", value)
    assert message in str(info.value)


# ---------------------------------------------------------------------------- combinations


def test_product_follows_written_order_last_fastest():
    combos = combinations({"a": "1:2", "b": "[x, y]", "c": 9})
    assert combos == [
        {"a": 1, "b": "x", "c": 9},
        {"a": 1, "b": "y", "c": 9},
        {"a": 2, "b": "x", "c": 9},
        {"a": 2, "b": "y", "c": 9},
    ]
    assert list(combos[0]) == ["a", "b", "c"]
    reordered = combinations({"b": "[x, y]", "a": "1:2"})
    assert [(c["a"], c["b"]) for c in reordered] == [(1, "x"), (2, "x"), (1, "y"), (2, "y")]


def test_zip_pairs_by_position():
    combos = combinations({"d": "['cifar', 'mnist']", "m": ["resnet", "cnn"]}, mode="zip")
    assert combos == [{"d": "cifar", "m": "resnet"}, {"d": "mnist", "m": "cnn"}]


def test_zip_length_mismatch_names_lengths():
    with pytest.raises(ParameterError) as info:
        combinations({"d": "[a,b,c]", "m": "[x,y]"}, mode="zip")
    assert "same number of values" in str(info.value)
    assert "d has 3, m has 2" in str(info.value)


def test_no_parameters_gives_one_empty_combination():
    assert combinations({}) == [{}]
    assert combinations({}, mode="zip") == [{}]


def test_unknown_mode_is_rejected_naming_allowed_values():
    with pytest.raises(ParameterError, match="parameter_mode 'cartesian' is not known; use one of: product, zip"):
        combinations({"a": "1:2"}, mode="cartesian")


def test_combinations_reports_every_bad_parameter():
    with pytest.raises(ParameterError) as info:
        combinations({"a": "1:10:0", "b": "[]", "ok": "1:2", "c{": "1"}, mode="nope")
    problems = info.value.problems
    assert len(problems) == 4
    assert "parameter_mode 'nope'" in problems[0]
    assert any("parameter 'a'" in p for p in problems)
    assert any("parameter 'b'" in p for p in problems)
    assert any("parameter name 'c{'" in p for p in problems)
    assert str(info.value).startswith("4 problems with parameters:\n  - ")


def test_product_size_is_bounded():
    with pytest.raises(ParameterError, match="combinations; at most"):
        combinations({"a": "1:1000", "b": "1:1000", "c": "1:2"})


# ---------------------------------------------------------------------------- templating


def test_render_plain_and_formatted():
    values = {"i": 5, "lr": 0.001, "opt": "adam"}
    assert render("job_{i}", values) == "job_5"
    assert render("job_{i:03d}", values) == "job_005"
    assert render("lr{lr:.4f}_{opt}", values) == "lr0.0010_adam"
    assert render("{i:>4}|{opt:<6}|", values) == "   5|adam  |"
    assert render("{lr:e}", values) == "1.000000e-03"
    assert render("{i:x}{i:.2f}", {"i": 255}) == "ff255.00"


def test_render_replaces_mixed_formats_of_one_parameter():
    # torc replaces only the formatted one and leaves "{i}" in the text.
    assert render("job_{i:03d} runs {i} then {i:02d}", {"i": 7}) == "job_007 runs 7 then 07"


def test_render_leaves_other_braces_untouched():
    values = {"i": 3, "files": "F", "print": "P"}
    text = "awk '{print $1}' ${files.input.x} ${user_data.output.y} {j} {} {{i}} a{b}c {i} {i:{w}}"
    assert render(text, values) == (
        "awk '{print $1}' ${files.input.x} ${user_data.output.y} {j} {} {3} a{b}c 3 {i:{w}}"
    )
    assert render("no braces", values) == "no braces"
    assert render("{i}", {}) == "{i}"


def test_render_substitutes_inside_shell_style_braces_like_torc():
    # "{i}" is replaced wherever it appears, "${i}" included; pick names accordingly.
    assert render("echo ${i}", {"i": 3}) == "echo $3"


def test_render_names_with_regex_characters():
    assert render("{a.b}-{a+b:02d}", {"a.b": "x", "a+b": 4}) == "x-04"
    assert render("{axb}", {"a.b": "x"}) == "{axb}"


def test_render_prefers_exact_names_over_prefixes():
    assert render("{i}{id}{i_d}", {"i": 1, "id": 2, "i_d": 3}) == "123"


def test_floats_render_like_torc():
    assert format_value(1.0) == "1"
    assert format_value(250.0) == "250"
    assert format_value(0.1) == "0.1"
    assert format_value(0.0001) == "0.0001"
    assert format_value(1e-7) == "0.0000001"
    assert format_value(1e20) == "100000000000000000000"
    assert format_value(0.1 + 0.2) == "0.30000000000000004"
    assert format_value(-2.5) == "-2.5"
    assert render("T{t}", {"t": 300.0}) == "T300"
    assert render("x{x:.2f}", {"x": 1.0}) == "x1.00"


def test_integral_floats_take_integer_formats():
    assert render("{x:03d}", {"x": 5.0}) == "005"
    with pytest.raises(ParameterError, match="format '03d' does not apply to float value 2.5"):
        render("{x:03d}", {"x": 2.5})


def test_render_format_errors_name_the_placeholder():
    with pytest.raises(ParameterError) as info:
        render("data_{d:03d}", {"d": "mnist"})
    assert str(info.value) == "{d:03d}: format '03d' does not apply to str value 'mnist'"


# ---------------------------------------------------------------------------- spec items


def test_items_without_parameters_pass_through_unchanged():
    items = [{"name": "a", "command": "echo {i}"}, {"name": "b", "command": "x", "parameter_mode": "zip"}]
    out = expand_items(items, {"i": "1:3"}, JOB_FIELDS)
    assert out == items
    assert out[0] is items[0]


def test_expansion_replaces_templates_in_place():
    items = [
        {"name": "first", "command": "true"},
        {
            "name": "work_{i}",
            "command": "run {i} > out_{i:02d}",
            "invocation_script": "wrap {i}",
            "resource_requirements": "rr_{size}",
            "scheduler": "sched_{size}",
            "failure_handler": "fh_{i}",
            "depends_on": ["first", "prep_{i}"],
            "depends_on_regexes": ["^pre_{i}_.*"],
            "input_files": ["in_{i}"],
            "output_files": ["out_{i}"],
            "input_user_data": ["ud_{i}"],
            "output_user_data_regexes": ["res_{i}"],
            "supports_termination": True,
            "parameters": {"i": "1:2", "size": "[small]"},
        },
        {"name": "last", "command": "true"},
    ]
    out = expand_items(items, None, JOB_FIELDS, kind="jobs")
    assert [j["name"] for j in out] == ["first", "work_1", "work_2", "last"]
    second = out[2]
    assert second == {
        "name": "work_2",
        "command": "run 2 > out_02",
        "invocation_script": "wrap 2",
        "resource_requirements": "rr_small",
        "scheduler": "sched_small",
        "failure_handler": "fh_{i}",  # not templated, as in torc
        "depends_on": ["first", "prep_2"],
        "depends_on_regexes": ["^pre_2_.*"],
        "input_files": ["in_2"],
        "output_files": ["out_2"],
        "input_user_data": ["ud_2"],
        "output_user_data_regexes": ["res_2"],
        "supports_termination": True,
    }
    assert "parameters" not in out[1] and items[1]["name"] == "work_{i}"  # input not modified


def test_copies_do_not_share_mutable_values():
    items = [{"name": "f_{i}", "path": "p", "extra": {"k": [1]}, "parameters": {"i": "1:2"}}]
    out = expand_items(items, None, FILE_FIELDS)
    out[0]["extra"]["k"].append(2)
    assert out[1]["extra"] == {"k": [1]} and items[0]["extra"] == {"k": [1]}


def test_file_fields():
    items = [{"name": "raw_{d}", "path": "/data/{d}.csv", "parameters": {"d": "[a, b]"}}]
    assert expand_items(items, None, FILE_FIELDS, kind="files") == [
        {"name": "raw_a", "path": "/data/a.csv"},
        {"name": "raw_b", "path": "/data/b.csv"},
    ]


def test_use_parameters_picks_shared_ones_in_listed_order():
    shared = {"a": "1:2", "b": "[x, y]", "unused": "1:100"}
    items = [{"name": "j_{a}_{b}", "command": "c", "use_parameters": ["b", "a"]}]
    out = expand_items(items, shared, JOB_FIELDS)
    assert [j["name"] for j in out] == ["j_1_x", "j_2_x", "j_1_y", "j_2_y"]
    assert all("use_parameters" not in j for j in out)


def test_local_parameters_replace_shared_ones_entirely():
    shared = {"a": "1:3", "b": "[x, y]"}
    items = [{"name": "j_{a}_{b}", "command": "c", "parameters": {"a": "[9]"}, "use_parameters": ["b"]}]
    assert [j["name"] for j in expand_items(items, shared, JOB_FIELDS)] == ["j_9_{b}"]


def test_shared_parameters_are_not_used_without_use_parameters():
    items = [{"name": "j_{a}", "command": "c"}]
    assert expand_items(items, {"a": "1:3"}, JOB_FIELDS) == items


def test_empty_use_parameters_gives_one_plain_copy():
    out = expand_items([{"name": "j", "command": "c", "use_parameters": []}], {"a": "1:2"}, JOB_FIELDS)
    assert out == [{"name": "j", "command": "c"}]


def test_unknown_use_parameters_name_is_an_error():
    items = [{"name": "j_{a}", "command": "c", "use_parameters": ["a", "nope"]}]
    with pytest.raises(ParameterError) as info:
        expand_items(items, {"a": "1:2"}, JOB_FIELDS, kind="jobs")
    assert str(info.value) == (
        "jobs[0] 'j_{a}': use_parameters names 'nope', not among the workflow-level parameters (known: a)"
    )
    with pytest.raises(ParameterError, match="known: none are defined"):
        expand_items(items, None, JOB_FIELDS)


def test_zip_mode_on_items():
    items = [{
        "name": "t_{d}_{m}", "command": "c",
        "parameters": {"d": "[a, b]", "m": "[x, y]"}, "parameter_mode": "zip",
    }]
    out = expand_items(items, None, JOB_FIELDS)
    assert [j["name"] for j in out] == ["t_a_x", "t_b_y"]
    assert all("parameter_mode" not in j for j in out)


def test_copies_with_the_same_name_merge_into_a_fan_in():
    items = [{
        "name": "aggregate",
        "command": "python agg.py",
        "depends_on": ["prep", "train_{i}"],
        "input_files": ["metrics_{i}"],
        "parameters": {"i": "1:3"},
    }]
    assert expand_items(items, None, JOB_FIELDS) == [{
        "name": "aggregate",
        "command": "python agg.py",
        "depends_on": ["prep", "train_1", "train_2", "train_3"],
        "input_files": ["metrics_1", "metrics_2", "metrics_3"],
    }]


def test_merge_keeps_the_position_of_the_first_copy():
    items = [{"name": "r_{d}", "command": "c", "depends_on": ["a_{d}_{t}"],
              "parameters": {"d": "[x, y]", "t": "[1, 2]"}}]
    assert expand_items(items, None, JOB_FIELDS) == [
        {"name": "r_x", "command": "c", "depends_on": ["a_x_1", "a_x_2"]},
        {"name": "r_y", "command": "c", "depends_on": ["a_y_1", "a_y_2"]},
    ]


def test_merge_conflict_is_an_error():
    items = [{"name": "same", "command": "run {i}", "parameters": {"i": "1:2"}}]
    with pytest.raises(ParameterError) as info:
        expand_items(items, None, JOB_FIELDS, kind="jobs")
    message = str(info.value)
    assert message.startswith("jobs[0] 'same': combinations {i=1} and {i=2} both give the name 'same'")
    assert "different 'command' ('run 1' vs 'run 2')" in message
    assert "use every parameter in the name" in message


def test_all_problems_of_all_items_are_collected():
    items = [
        {"name": "ok_{i}", "command": "c", "parameters": {"i": "1:2"}},
        {"name": "a_{i}", "command": "c", "parameters": {"i": "1:10:0", "j": "[]"}},
        {"name": "b_{x}", "command": "c", "use_parameters": ["x"]},
        {"command": "c", "parameters": {"i": "1:2"}, "parameter_mode": "diagonal"},
        {"name": "d_{s:03d}", "command": "c", "parameters": {"s": "[a]"}},
        {"name": "e", "command": "c", "parameters": ["i"]},
        {"name": "f", "command": "c", "use_parameters": "i"},
    ]
    with pytest.raises(ParameterError) as info:
        expand_items(items, {"i": "1:3"}, JOB_FIELDS, kind="jobs")
    assert info.value.problems == [
        "jobs[1] 'a_{i}': parameter 'i': step 0 in range '1:10:0'; the step must not be zero",
        "jobs[1] 'a_{i}': parameter 'j': '[]' gives no values; give at least one",
        "jobs[2] 'b_{x}': use_parameters names 'x', not among the workflow-level parameters (known: i)",
        "jobs[3]: parameter_mode 'diagonal' is not known; use one of: product, zip",
        "jobs[4] 'd_{s:03d}': {s:03d}: format '03d' does not apply to str value 'a'",
        "jobs[5] 'e': parameters: expected a mapping of name to values; found ['i']",
        "jobs[6] 'f': use_parameters: expected a list of parameter names; found 'i'",
    ]
    assert str(info.value).startswith("7 problems with parameters:")


def test_bad_shared_parameters_mapping():
    with pytest.raises(ParameterError, match="workflow parameters: expected a mapping"):
        expand_items([], ["i"], JOB_FIELDS)


def test_non_dict_items_pass_through_for_the_validator():
    assert expand_items(["oops", None], None, JOB_FIELDS) == ["oops", None]


# ---------------------------------------------------------------------------- torc examples


def _expand_example(filename: str) -> tuple[list[dict], list[dict]]:
    data = yaml.safe_load((EXAMPLES / filename).read_text())
    shared = data.get("parameters")
    jobs = expand_items(data["jobs"], shared, JOB_FIELDS, kind="jobs")
    files = expand_items(data.get("files") or [], shared, FILE_FIELDS, kind="files")
    for kind, entries in (("job", jobs), ("file", files)):
        names = [e["name"] for e in entries]
        assert len(set(names)) == len(names), f"duplicate {kind} names"
    # Every templated reference now names something that exists.
    job_names = {j["name"] for j in jobs}
    file_names = {f["name"] for f in files}
    for job in jobs:
        assert "{" not in job["name"]
        assert set(job.get("depends_on") or []) <= job_names
        assert set(job.get("input_files") or []) | set(job.get("output_files") or []) <= file_names
    return jobs, files


def _count(entries: list[dict], prefix: str) -> int:
    return sum(e["name"].startswith(prefix) for e in entries)


def test_example_hundred_jobs():
    jobs, files = _expand_example("hundred_jobs_parameterized.yaml")
    assert len(jobs) == 100 and files == []
    assert [j["name"] for j in jobs[:2]] == ["job_001", "job_002"] and jobs[-1]["name"] == "job_100"
    assert jobs[41]["command"] == "echo hello 42"


@pytest.mark.parametrize("filename", ["hyperparameter_sweep.yaml", "hyperparameter_sweep_shared_params.yaml"])
def test_example_hyperparameter_sweep(filename):
    jobs, files = _expand_example(filename)
    assert _count(jobs, "train_") == 18  # 3 * 3 * 2
    assert len(jobs) == 2 + 18 + 1
    assert len(files) == 2 + 18 + 18
    first = next(j for j in jobs if j["name"].startswith("train_"))
    assert first["name"] == "train_lr0.0001_bs16_optadam"
    assert "--learning-rate=0.0001 \\" in first["command"]  # "{lr}" beside "{lr:.4f}" is replaced
    assert "--model-output=/models/model_lr0.0001_bs16_optadam.pt" in first["command"]
    assert first["output_files"] == ["model_lr0.0001_bs16_optadam", "metrics_lr0.0001_bs16_optadam"]
    aggregate = jobs[-1]
    assert aggregate["name"] == "aggregate_results"
    assert len(aggregate["depends_on"]) == 18 and len(aggregate["input_files"]) == 18
    assert files[2] == {"name": "model_lr0.0001_bs16_optadam", "path": "/models/model_lr0.0001_bs16_optadam.pt"}


def test_shared_parameters_give_the_same_result_as_local_ones():
    assert _expand_example("hyperparameter_sweep.yaml") == _expand_example(
        "hyperparameter_sweep_shared_params.yaml"
    )


def test_example_zip_mode():
    jobs, files = _expand_example("zip_parameter_mode.yaml")
    assert [j["name"] for j in jobs] == [
        "setup_environment",
        "train_cifar10_resnet", "train_mnist_cnn", "train_imagenet_transformer",
        "evaluate_cifar10_resnet", "evaluate_mnist_cnn", "evaluate_imagenet_transformer",
        "aggregate_results",
    ]
    assert jobs[-1]["depends_on_regexes"] == ["evaluate_.*"]
    assert len(files) == 6
    assert files[1] == {"name": "model_mnist_cnn", "path": "/models/mnist_cnn.pt"}


def test_example_simulation_sweep():
    jobs, files = _expand_example("simulation_sweep.yaml")
    # The file's comment says 4 * 5 = 20, but "1:100:25" is 1, 26, 51, 76 (101 is past the
    # end), in torc as here: 4 * 4 = 16.
    assert _count(jobs, "simulate_") == 16 and _count(jobs, "analyze_") == 16
    assert len(jobs) == 1 + 16 + 16 + 1
    assert len(files) == 1 + 3 * 16
    simulate = jobs[1]
    assert simulate["name"] == "simulate_T250_P001"
    assert "--temperature=250 \\" in simulate["command"] and "--pressure=1 \\" in simulate["command"]
    phase = jobs[-1]
    assert phase["name"] == "generate_phase_diagram" and len(phase["depends_on"]) == 16


def test_example_data_pipeline():
    jobs, files = _expand_example("data_pipeline_parameterized.yaml")
    counts = {p: _count(jobs, p) for p in ("download_", "preprocess_", "analyze_", "report_", "executive")}
    assert counts == {"download_": 4, "preprocess_": 4, "analyze_": 12, "report_": 4, "executive": 1}
    assert len(jobs) == 25 and len(files) == 4 + 4 + 12
    report = next(j for j in jobs if j["name"] == "report_sales")
    assert report["depends_on"] == ["analyze_sales_summary", "analyze_sales_trends", "analyze_sales_anomalies"]
    assert "--dataset=sales" in report["command"]
    assert jobs[-1]["depends_on"] == ["report_sales", "report_inventory", "report_customers", "report_products"]


def test_example_multi_stage_barrier():
    jobs, _ = _expand_example("multi_stage_barrier_pattern.yaml")
    assert _count(jobs, "stage1_process_") == 1000
    assert _count(jobs, "stage2_analyze_") == 1000
    assert _count(jobs, "stage3_aggregate_") == 100
    assert len(jobs) == 1000 + 1000 + 100 + 4
    assert jobs[0]["command"] == "python process_input.py --id 0 --output output/stage1_000.dat"
    assert jobs[1000]["name"] == "barrier_stage1_complete"
    assert jobs[1000]["depends_on_regexes"] == ["^stage1_process_.*"]


def test_expansion_is_deterministic():
    data = yaml.safe_load((EXAMPLES / "data_pipeline_parameterized.yaml").read_text())
    first = expand_items(data["jobs"], None, JOB_FIELDS)
    second = expand_items(data["jobs"], None, JOB_FIELDS)
    assert first == second
    assert [j["name"] for j in first] == [j["name"] for j in second]
