"""HPC profiles and the Slurm scheduler planner (reference §6.1, §6.4), without a cluster."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from torc.config import TorcConfig
from torc.core.errors import InvalidInputError
from torc.slurm import add_slurm_schedulers, plan_schedulers
from torc.slurm.detect import (
    SlurmCommandError,
    cluster_profile,
    parse_gres,
    parse_key_values,
    parse_slurm_time,
    profile_toml,
)
from torc.slurm.profiles import kestrel_profile, load_registry, parse_walltime_text, profile_from_config
from torc.spec.load import parse_file, spec_from_data

EXAMPLES = Path("/work/shared/examples/torc")
HERE_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SMALL = {
    "display_name": "Small cluster",
    "detect_env_var": "MY_CLUSTER=small",
    "partitions": [
        {"name": "debug", "cpus_per_node": 8, "memory_mb": 16000, "max_walltime_secs": 3600},
        {"name": "short", "cpus_per_node": 4, "memory_mb": 8000, "max_walltime_secs": 3600, "max_nodes": 4},
        {"name": "long", "cpus_per_node": 4, "memory_mb": 8000, "max_walltime_secs": 86400},
        {"name": "gpu", "cpus_per_node": 8, "memory_mb": 32000, "max_walltime_secs": 86400, "gpus_per_node": 2,
         "gpu_type": "a100", "requires_explicit_request": True},
    ],
}


@pytest.fixture
def small():
    return profile_from_config("small", SMALL)


def rr(name, cpus=1, memory="1g", runtime="PT10M", gpus=0, nodes=1):
    return {"name": name, "num_cpus": cpus, "memory": memory, "runtime": runtime, "num_gpus": gpus, "num_nodes": nodes}


def job(name, rr_name=None, deps=None, **extra):
    out = {"name": name, "command": "true", **extra}
    if rr_name:
        out["resource_requirements"] = rr_name
    if deps:
        out["depends_on"] = deps
    return out


def spec(jobs, rrs, **extra):
    return {"name": "wf", "jobs": jobs, "resource_requirements": rrs, **extra}


def loads(data):
    """The planned spec must load like any spec (references, actions, schedulers)."""
    from torc.spec.resolve import resolve

    validated, _ = spec_from_data(json.loads(json.dumps(data)), "planned")
    resolve(validated, "planned")
    return validated


def by_name(items):
    return {i["name"]: i for i in items}


# ---- profiles ---------------------------------------------------------------------------------


def test_kestrel_profile_partitions_and_detection():
    k = kestrel_profile()
    assert [p.name for p in k.partitions] == [
        "debug", "short", "standard", "long", "medmem", "bigmem", "bigmeml", "hbw", "hbwl", "nvme", "shared",
        "sharedl", "gpu-h100s", "gpu-h100", "gpu-h100l"]
    assert k.detect(env={"NREL_CLUSTER": "kestrel"})
    assert not k.detect(env={"NREL_CLUSTER": "eagle"}, hostname="login1.example.org")
    assert k.get_partition("standard").max_walltime_secs == 2 * 86400
    assert k.get_partition("hbw").min_nodes == 2
    with pytest.raises(InvalidInputError, match="did you mean 'standard'"):
        k.get_partition("standart")


def test_find_best_partition_on_kestrel():
    k = kestrel_profile()
    assert k.find_best_partition(4, 8000, 3600).name == "short"  # small job, shared partitions need a request
    assert k.find_best_partition(104, 200_000, 24 * 3600).name == "standard"
    assert k.find_best_partition(104, 200_000, 5 * 86400).name == "long"
    assert k.find_best_partition(64, 900_000, 3600).name == "medmem"
    assert k.find_best_partition(16, 64_000, 3600, gpus=2).name == "gpu-h100s"
    assert k.find_best_partition(16, 64_000, 3 * 86400, gpus=4).name == "gpu-h100l"
    assert k.find_best_partition(16, 64_000, 3600, gpus=8) is None
    assert k.find_best_partition(200, 1000, 60) is None
    assert k.find_best_partition(104, 200_000, 3600, nodes=2).name == "short"


def test_debug_partitions_only_as_last_resort(small):
    assert small.find_best_partition(2, 1000, 600).name == "short"
    assert small.find_best_partition(8, 12000, 600).name == "gpu"  # only debug and gpu have 8 CPUs
    assert small.find_best_partition(8, 12000, 600, gpus=0).name != "debug"
    only_debug = profile_from_config("d", {"partitions": [SMALL["partitions"][0]]})
    assert only_debug.find_best_partition(2, 1000, 600).name == "debug"


def test_registry_overrides_and_custom_profiles():
    config = TorcConfig.model_validate({"client": {"hpc": {
        "default_account": "fallback",
        "profile_overrides": {"kestrel": {"default_account": "my_project"}},
        "custom_profiles": {"small": SMALL},
    }}})
    reg = load_registry(config)
    assert reg.names() == ["kestrel", "small"]
    assert reg.get("kestrel").default_account == "my_project"
    assert reg.account_for(reg.get("small")) == "fallback"
    assert reg.detect(env={"MY_CLUSTER": "small", "NREL_CLUSTER": "kestrel"}, hostname="x").name == "small"
    assert reg.detect(env={}, hostname="x") is None
    with pytest.raises(InvalidInputError, match="unknown HPC profile 'kestrl'.*did you mean 'kestrel'"):
        reg.get("kestrl")


@pytest.mark.parametrize(("table", "message"), [
    ({"partitions": []}, "at least one"),
    ({"partitions": [{"name": "p", "cpus_per_node": 4}]}, r"partitions\[0\]\.memory_mb"),
    ({"partitions": [{"name": "p", "cpus_per_node": 4, "memory_mb": 1, "cpu": 1}]}, "cpu"),
    ({"detect_env": "X=1", "partitions": SMALL["partitions"]}, "did you mean 'detect_env_var'"),
    ({"detect_env_var": "X", "partitions": SMALL["partitions"]}, "NAME=value"),
])
def test_bad_custom_profiles_are_clear_errors(table, message):
    with pytest.raises(InvalidInputError, match=message):
        profile_from_config("bad", table)


def test_override_of_unknown_profile_is_a_warning():
    config = TorcConfig.model_validate({"client": {"hpc": {"profile_overrides": {"nope": {"default_account": "a"}}}}})
    reg = load_registry(config)
    assert reg.names() == ["kestrel"]
    assert reg.warnings == ["client.hpc.profile_overrides.nope: no HPC profile named 'nope' (known: kestrel); ignored"]


def test_config_validation_checks_profile_keys():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="did you mean 'detect_env_var'"):
        TorcConfig.model_validate({"client": {"hpc": {"custom_profiles": {"x": {"detect_env": "A=1"}}}}})
    with pytest.raises(ValidationError, match=r"partitions\[0\]: unknown key 'cpu'"):
        TorcConfig.model_validate({"client": {"hpc": {"custom_profiles": {"x": {"partitions": [{"cpu": 1}]}}}}})
    with pytest.raises(ValidationError, match="unknown key 'partitions'"):
        TorcConfig.model_validate({"client": {"hpc": {"profile_overrides": {"kestrel": {"partitions": []}}}}})
    # one layer may leave required values to another
    TorcConfig.model_validate({"client": {"hpc": {"custom_profiles": {"x": {"default_account": "a"}}}}})


def test_parse_walltime_text():
    assert parse_walltime_text("2h") == 7200
    assert parse_walltime_text("30m") == 1800
    assert parse_walltime_text("04:00:00") == 14400
    assert parse_walltime_text("1-00:00:00") == 86400
    assert parse_walltime_text("PT90M") == 5400
    with pytest.raises(InvalidInputError):
        parse_walltime_text("soon")


# ---- planning ---------------------------------------------------------------------------------


def test_simple_slurm_example_on_kestrel():
    data, _ = parse_file(EXAMPLES / "workflow_actions_simple_slurm.yaml")
    out = add_slurm_schedulers(data, kestrel_profile(), account="acct", overwrite=True)
    assert data["slurm_schedulers"][0]["name"] == "setup_scheduler"  # input untouched
    schedulers = by_name(out["slurm_schedulers"])
    assert list(schedulers) == ["small_scheduler", "medium_deferred_scheduler", "small_deferred_scheduler"]
    assert all(s["account"] == "acct" and "partition" not in s for s in schedulers.values())
    assert schedulers["small_scheduler"]["walltime"] == "00:45:00"  # PT30M x 1.5
    assert schedulers["medium_deferred_scheduler"]["walltime"] == "03:00:00"
    actions = out["actions"]
    assert [(a["trigger_type"], a["scheduler"], a.get("jobs")) for a in actions] == [
        ("on_workflow_start", "small_scheduler", None),
        ("on_jobs_ready", "medium_deferred_scheduler", ["process1", "process2", "process3"]),
        ("on_jobs_ready", "small_deferred_scheduler", ["finalize"]),
    ]
    assert all(a["action_type"] == "schedule_nodes" and a["scheduler_type"] == "slurm" for a in actions)
    assert {j["name"]: j["scheduler"] for j in out["jobs"]} == {
        "setup": "small_scheduler", "process1": "medium_deferred_scheduler", "process2": "medium_deferred_scheduler",
        "process3": "medium_deferred_scheduler", "finalize": "small_deferred_scheduler"}
    loads(out)


def test_allocation_counts_and_walltime_strategies(small):
    data = spec([job(f"j{i}", "one") for i in range(10)], [rr("one", cpus=1, memory="1g", runtime="PT10M")])
    plan = plan_schedulers(data, small, account="a")
    (s,) = plan.schedulers
    assert s.partition == "short" and s.jobs_per_node == 4  # 4 CPUs, 7 x 1 GiB
    assert s.spec["walltime"] == "00:15:00" and s.num_allocations == 3  # one 10-minute slot per allocation
    assert s.spec["mem"] == "4g" and s.spec["extra"] == "--cpus-per-task=4"
    plan = plan_schedulers(data, small, account="a", walltime_strategy="max-partition-time")
    (s,) = plan.schedulers
    assert s.spec["walltime"] == "01:00:00" and s.num_allocations == 1  # 6 slots x 4 jobs
    plan = plan_schedulers(data, small, account="a", walltime_multiplier=2.0)
    assert plan.schedulers[0].spec["walltime"] == "00:20:00"
    with pytest.raises(InvalidInputError, match="at least 1"):
        plan_schedulers(data, small, account="a", walltime_multiplier=0.5)


def test_walltime_is_capped_at_the_partition_maximum(small):
    data = spec([job("j", "r")], [rr("r", runtime="PT50M")])
    (s,) = plan_schedulers(data, small, account="a").schedulers
    assert s.partition == "short" and s.spec["walltime"] == "01:00:00"


def test_jobs_without_requirements_use_the_default(small):
    (s,) = plan_schedulers({"name": "wf", "jobs": [job("a"), job("b")]}, small, account="a").schedulers
    assert s.name == "default_scheduler" and s.jobs == ["a", "b"] and s.num_allocations == 1


def test_single_allocation(small):
    data = spec([job(f"j{i}", "one") for i in range(10)], [rr("one")])
    plan = plan_schedulers(data, small, account="a", single_allocation=True)
    (s,) = plan.schedulers
    assert s.spec["nodes"] == 3 and s.num_allocations == 1
    assert s.actions == [{"trigger_type": "on_workflow_start", "action_type": "schedule_nodes",
                          "scheduler": s.name, "scheduler_type": "slurm", "num_allocations": 1,
                          "start_one_worker_per_node": True}]
    data = spec([job(f"j{i}", "one") for i in range(40)], [rr("one")])
    plan = plan_schedulers(data, small, account="a", single_allocation=True)
    assert plan.schedulers[0].spec["nodes"] == 4  # short allows 4 nodes
    assert "allows 4" in plan.warnings[0]


def test_deferred_jobs_get_on_jobs_ready_per_depth(small):
    data = spec([job("a", "r"), job("b", "r", ["a"]), job("c", "r", ["b"]), job("d", "r", ["b"])], [rr("r")])
    plan = plan_schedulers(data, small, account="a")
    first, deferred = plan.schedulers
    assert (first.name, first.jobs) == ("r_scheduler", ["a"])
    assert (deferred.name, deferred.jobs) == ("r_deferred_scheduler", ["b", "c", "d"])
    assert [(a["trigger_type"], a["jobs"]) for a in deferred.actions] == [
        ("on_jobs_ready", ["b"]), ("on_jobs_ready", ["c", "d"])]
    loads(plan.spec)


def test_implicit_file_dependencies_count(small):
    data = spec([job("make", "r", output_files=["f"]), job("use", "r", input_files=["f"])], [rr("r")],
                files=[{"name": "f", "path": "f.txt"}])
    plan = plan_schedulers(data, small, account="a")
    assert [s.jobs for s in plan.schedulers] == [["make"], ["use"]]


def test_group_by_partition_merges_requirements(small):
    jobs = [job("s0", "small"), job("m0", "medium"), job("post", "small", ["s0"]), job("g", "gpu")]
    rrs = [rr("small", cpus=1, memory="1g"), rr("medium", cpus=2, memory="3g", runtime="PT20M"),
           rr("gpu", cpus=4, memory="8g", gpus=1)]
    by_rr = plan_schedulers(spec(jobs, rrs), small, account="a")
    assert [s.name for s in by_rr.schedulers] == ["small_scheduler", "medium_scheduler", "gpu_scheduler",
                                                  "small_deferred_scheduler"]
    plan = plan_schedulers(spec(jobs, rrs), small, account="a", group_by="partition")
    schedulers = {s.name: s for s in plan.schedulers}
    assert set(schedulers) == {"short_scheduler", "gpu_scheduler"}  # the deferred half merged back (<= 2)
    short = schedulers["short_scheduler"]
    assert short.resource_requirements == ["small", "medium"]
    assert short.spec["walltime"] == "00:30:00"  # longest runtime (PT20M) x 1.5
    assert "post" in short.jobs and short.actions[0]["trigger_type"] == "on_workflow_start"
    gpu = schedulers["gpu_scheduler"]
    assert gpu.spec["partition"] == "gpu" and gpu.spec["gres"] == "gpu:1"
    loads(plan.spec)


def test_group_by_partition_keeps_large_deferred_halves_apart(small):
    jobs = [job(f"s{i}", "r") for i in range(8)] + [job(f"d{i}", "r", ["s0"]) for i in range(8)]
    plan = plan_schedulers(spec(jobs, [rr("r")]), small, account="a", group_by="partition")
    assert [s.name for s in plan.schedulers] == ["short_scheduler", "short_deferred_scheduler"]


def test_gpu_jobs_get_gres_and_explicit_partition(small):
    data = spec([job("a", "g"), job("b", "g")], [rr("g", cpus=2, memory="4g", gpus=1)])
    (s,) = plan_schedulers(data, small, account="a").schedulers
    assert s.spec["partition"] == "gpu" and s.spec["gres"] == "gpu:2" and s.spec["mem"] == "8g"
    assert s.num_allocations == 1


def test_multi_node_jobs_get_multi_node_allocations(small):
    data = spec([job("mpi", "big")], [rr("big", cpus=4, memory="2g", nodes=2)])
    (s,) = plan_schedulers(data, small, account="a").schedulers
    assert s.spec["nodes"] == 2 and "start_one_worker_per_node" not in s.actions[0]
    loads(plan_schedulers(data, small, account="a").spec)


def test_no_fitting_partition_names_the_job_and_requirement(small):
    data = spec([job("ok", "r"), job("huge_job", "huge")], [rr("r"), rr("huge", cpus=64, memory="1g")])
    with pytest.raises(InvalidInputError, match=r"job 'huge_job' \(resource requirements 'huge'\) fits no "
                                                r"partition of HPC profile 'small'.*64 CPUs > 4 per node"):
        add_slurm_schedulers(data, small, account="a")
    with pytest.raises(InvalidInputError, match="fits no partition"):
        add_slurm_schedulers(spec([job("long", "r")], [rr("r", runtime="P3D")]), small, account="a")
    with pytest.raises(InvalidInputError, match="fits no partition"):
        add_slurm_schedulers(spec([job("g", "r")], [rr("r", gpus=4)]), small, account="a")


def test_existing_schedulers_need_overwrite(small):
    data = spec([job("a", "r", scheduler="old")], [rr("r")],
                slurm_schedulers=[{"name": "old", "account": "x"}],
                actions=[{"trigger_type": "on_workflow_start", "action_type": "schedule_nodes", "scheduler": "old",
                          "scheduler_type": "slurm"},
                         {"trigger_type": "on_workflow_complete", "action_type": "run_commands",
                          "commands": ["echo done"]}])
    with pytest.raises(InvalidInputError, match=r"already has slurm_schedulers \(old\); pass --overwrite"):
        add_slurm_schedulers(data, small, account="a")
    out = add_slurm_schedulers(data, small, account="a", overwrite=True)
    assert [s["name"] for s in out["slurm_schedulers"]] == ["r_scheduler"]
    assert [a["action_type"] for a in out["actions"]] == ["run_commands", "schedule_nodes"]
    assert out["jobs"][0]["scheduler"] == "r_scheduler"
    loads(out)


def test_account_fallbacks(small):
    data = spec([job("a", "r")], [rr("r")])
    with pytest.raises(InvalidInputError, match="no Slurm account"):
        add_slurm_schedulers(data, small, account=None)
    with_defaults = {**copy.deepcopy(data), "slurm_defaults": {"account": "from_spec"}}
    assert add_slurm_schedulers(with_defaults, small, account=None)["slurm_schedulers"][0]["account"] == "from_spec"
    profile = small.model_copy(update={"default_account": "from_profile"})
    assert add_slurm_schedulers(data, profile, account=None)["slurm_schedulers"][0]["account"] == "from_profile"


def test_parameterized_jobs_stay_templates(small):
    data = spec([{"name": "work_{i}", "command": "echo {i}", "resource_requirements": "r",
                  "parameters": {"i": "1:5"}},
                 {"name": "collect", "command": "true", "resource_requirements": "r",
                  "depends_on_regexes": ["^work_"]}], [rr("r")])
    out = add_slurm_schedulers(data, small, account="a")
    assert out["jobs"][0]["name"] == "work_{i}" and out["jobs"][0]["scheduler"] == "r_scheduler"
    assert out["jobs"][1]["scheduler"] == "r_deferred_scheduler"
    assert loads(out).jobs[0].name == "work_1"


def test_parameterized_jobs_split_across_schedulers_are_expanded(small):
    # t_1 reads a file another job writes (deferred); t_2 reads one nobody writes (starts at once)
    data = spec([job("maker", "r", output_files=["f_1"]),
                 {"name": "t_{i}", "command": "true", "resource_requirements": "r", "input_files": ["f_{i}"],
                  "parameters": {"i": "1:2"}}], [rr("r")],
                files=[{"name": "f_{i}", "path": "f{i}.txt", "parameters": {"i": "1:2"}}])
    out = add_slurm_schedulers(data, small, account="a")
    assert [(j["name"], j["scheduler"]) for j in out["jobs"]] == [
        ("maker", "r_scheduler"), ("t_1", "r_deferred_scheduler"), ("t_2", "r_scheduler")]
    assert "parameters" not in out["jobs"][1]
    loads(out)


def test_invalid_options_and_specs(small):
    data = spec([job("a", "r")], [rr("r")])
    with pytest.raises(InvalidInputError, match="group-by"):
        add_slurm_schedulers(data, small, account="a", group_by="node")
    with pytest.raises(InvalidInputError, match="walltime strategy"):
        add_slurm_schedulers(data, small, account="a", walltime_strategy="longest")
    with pytest.raises(InvalidInputError, match="undefined job"):
        add_slurm_schedulers(spec([job("a", "r", ["nope"])], [rr("r")]), small, account="a")


def test_staged_pipeline_example_by_partition_on_kestrel():
    data, _ = parse_file(EXAMPLES / "slurm_staged_pipeline.yaml")
    plan = plan_schedulers(data, kestrel_profile(), account="a", group_by="partition", overwrite=True)
    schedulers = {s.name: s for s in plan.schedulers}
    assert set(schedulers) == {"short_scheduler", "medmem_deferred_scheduler"}
    work = schedulers["medmem_deferred_scheduler"]
    assert work.jobs_per_node == 3 and work.num_allocations == 4 and work.spec["mem"] == "900g"
    loads(plan.spec)


# ---- reading a cluster (fake commands) ----------------------------------------------------------

SINFO = "debug|2|4000|infinite|(null)|1|(null)|NO|up\ngpu|64+|256000|2-00:00:00|gpu:a100:4(S:0-1)|8|a100,ib|YES:4|up\n"
PARTITIONS = (
    "PartitionName=debug AllowGroups=ALL Default=YES MaxNodes=UNLIMITED MaxTime=UNLIMITED MinNodes=0 "
    "Nodes=n1 OverSubscribe=NO TotalCPUs=2 TotalNodes=1 QoS=N/A\n"
    "PartitionName=gpu Default=NO MaxNodes=4 MaxTime=2-00:00:00 MinNodes=1 Nodes=g[1-8] OverSubscribe=FORCE:4 "
    "TotalNodes=8 QoS=gpuqos\n"
)
NODES = (
    "NodeName=n1 CPUTot=2 RealMemory=4000 Gres=(null) Partitions=debug AvailableFeatures=(null) OS=Linux 6.1 #1 SMP\n"
    "NodeName=g1 CPUTot=64 RealMemory=256000 Gres=gpu:a100:4(S:0-1) Partitions=gpu AvailableFeatures=a100,ib\n"
    "NodeName=g2 CPUTot=96 RealMemory=256000 Gres=gpu:a100:4 Partitions=gpu AvailableFeatures=a100\n"
)


def fake_runner(fail: set[str] = frozenset()):
    outputs = {"sinfo": SINFO, "partition": PARTITIONS, "node": NODES, "config": "ClusterName = Big Iron\n"}

    def run(args):
        key = args[0] if args[0] == "sinfo" else args[2]
        if key in fail:
            raise SlurmCommandError(f"`{' '.join(args)}` failed: boom")
        return outputs[key]

    return run


def test_parse_helpers():
    assert parse_slurm_time("infinite") is None and parse_slurm_time("UNLIMITED") is None
    assert parse_slurm_time("30") == 1800 and parse_slurm_time("30:15") == 1815
    assert parse_slurm_time("4:00:00") == 14400 and parse_slurm_time("2-00:00:00") == 172800
    assert parse_slurm_time("1-12") == 129600
    with pytest.raises(ValueError):
        parse_slurm_time("soon")
    assert parse_gres("gpu:a100:4(S:0-1),nvme:1") == (4, "a100")
    assert parse_gres("gpu:2") == (2, None) and parse_gres("(null)") == (0, None)
    kv = parse_key_values("NodeName=n1 OS=Linux 6.1 #1 SMP RealMemory=4000")
    assert kv == {"NodeName": "n1", "OS": "Linux 6.1 #1 SMP", "RealMemory": "4000"}


def test_cluster_profile_from_fake_commands():
    profile = cluster_profile(run=fake_runner(), hostname="login1.hpc.example.org")
    assert profile.name == "big-iron" and profile.source == "cluster"
    debug, gpu = profile.partitions
    assert (debug.cpus_per_node, debug.memory_mb, debug.max_walltime_secs, debug.shared) == (2, 4000, None, False)
    assert (gpu.cpus_per_node, gpu.gpus_per_node, gpu.gpu_type, gpu.max_walltime_secs) == (96, 4, "a100", 172800)
    assert gpu.shared and gpu.max_nodes == 4 and gpu.default_qos == "gpuqos" and gpu.features == ["a100", "ib"]
    assert "nodes differ" in gpu.description
    assert profile.metadata["default_partition"] == "debug"
    assert profile.detect(env={}, hostname="login7.hpc.example.org")
    # the TOML block loads back as a custom profile with the same partitions
    import tomllib

    table = tomllib.loads(profile_toml(profile))["client"]["hpc"]["custom_profiles"]["big-iron"]
    again = profile_from_config("big-iron", table)
    assert again.partitions == profile.partitions


def test_cluster_profile_survives_scontrol_failures():
    notes: list[str] = []
    profile = cluster_profile("c", run=fake_runner({"partition", "node", "config"}), hostname="h", notes=notes)
    gpu = profile.partitions[1]
    assert (gpu.cpus_per_node, gpu.memory_mb, gpu.gpus_per_node, gpu.max_walltime_secs) == (64, 256000, 4, 172800)
    assert len(notes) == 2 and "boom" in notes[0]
    with pytest.raises(SlurmCommandError, match="boom"):
        cluster_profile(run=fake_runner({"sinfo"}))


def test_missing_sinfo_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SlurmCommandError, match="`sinfo` was not found on PATH"):
        cluster_profile()


# ---- regenerate: the plan input built from a workflow's records ---------------------------------


def test_spec_from_records_keeps_unfinished_jobs_and_their_dependencies_among_them():
    from torc.slurm.plan import spec_from_records

    workflow = {"id": 5, "name": "wf", "slurm_defaults": json.dumps({"account": "acct", "qos": "high"})}
    rrs = [{"id": 1, "name": "small", "num_cpus": 1, "memory": "1g", "runtime": "PT10M", "num_gpus": 0,
            "num_nodes": 1},
           {"id": 2, "name": "big", "num_cpus": 8, "memory": "64g", "runtime": "PT2H", "num_gpus": 0, "num_nodes": 1},
           {"id": 3, "name": "unused", "num_cpus": 2, "memory": "2g", "runtime": "PT1H"}]
    jobs = [
        {"id": 10, "name": "prep", "command": "p", "status": "completed", "resource_requirements_id": 1},
        {"id": 11, "name": "work1", "command": "w1", "status": "ready", "resource_requirements_id": 1,
         "depends_on_job_ids": [10]},
        {"id": 12, "name": "work2", "command": "w2", "status": "terminated", "resource_requirements_id": 3},
        {"id": 13, "name": "merge", "command": "m", "status": "blocked", "resource_requirements_id": 2,
         "depends_on_job_ids": [11, 12]},
        {"id": 14, "name": "later", "command": "l", "status": "uninitialized", "resource_requirements_id": None},
    ]
    spec = spec_from_records(workflow, jobs, rrs)
    assert spec["name"] == "wf"
    assert spec["slurm_defaults"] == {"account": "acct", "qos": "high"}
    assert spec["jobs"] == [
        {"name": "work1", "command": "w1", "resource_requirements": "small"},  # its blocker is done
        {"name": "merge", "command": "m", "resource_requirements": "big", "depends_on": ["work1"]},
        {"name": "later", "command": "l"},
    ]
    assert [r["name"] for r in spec["resource_requirements"]] == ["small", "big"]
    assert spec["resource_requirements"][1] == {"name": "big", "num_cpus": 8, "memory": "64g", "runtime": "PT2H",
                                                "num_gpus": 0, "num_nodes": 1}
    # what plan_schedulers makes of it: work1 and later start, merge waits for work1
    plan = plan_schedulers(spec, kestrel_profile(), account=None)
    assert plan.account == "acct"
    triggers = {a["trigger_type"]: a for s in plan.schedulers for a in s.actions}
    assert triggers["on_jobs_ready"]["jobs"] == ["merge"]
    started = {j for s in plan.schedulers if not s.deferred for j in s.jobs}
    assert started == {"work1", "later"}
