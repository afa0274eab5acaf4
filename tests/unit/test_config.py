"""Layered configuration (torc.config) and `torc config` (torc.cli.config_cmds).

Every test passes explicit paths and environments: nothing reads the real /etc or home directory.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from torc.cli import config_cmds
from torc.config import (
    ConfigError,
    ConfigPaths,
    TorcConfig,
    config_paths,
    config_sources,
    default_toml,
    dump_toml,
    load_config,
    resolve_config,
    validate_config,
)


@pytest.fixture
def layout(tmp_path: Path) -> ConfigPaths:
    return ConfigPaths(system=tmp_path / "etc" / "torc" / "config.toml",
                       user=tmp_path / "home" / ".config" / "torc" / "config.toml",
                       local=tmp_path / "project" / "torc.toml")


def write(path: Path | None, text: str) -> Path:
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


NO_FILES = ConfigPaths(system=None, user=None, local=None)


# ------------------------------------------------------------------------------------------------
# Defaults and discovery


def test_defaults():
    cfg = load_config(env={}, paths=NO_FILES)
    assert cfg == TorcConfig()
    assert cfg.client.api_url is None
    assert cfg.client.format == "table"
    assert cfg.client.run.poll_interval == 5.0
    assert cfg.client.run.output_dir == Path("torc_output")
    assert cfg.client.run.num_cpus is None
    assert cfg.client.slurm.poll_interval == 30
    assert cfg.client.slurm.keep_submission_scripts is False
    assert cfg.client.hpc.profile_overrides == {}
    assert (cfg.server.database, cfg.server.host, cfg.server.port) == ("torc.db", "localhost", 8080)
    assert cfg.server.completion_check_interval_secs == 30
    assert cfg.server.log_level == "info"
    assert cfg.server.logging.json_logs is False
    assert (cfg.dash.host, cfg.dash.port, cfg.dash.completion_check_interval_secs) == ("127.0.0.1", 8090, 5)
    assert set(config_sources(env={}, paths=NO_FILES).values()) == {"default"}


def test_discover_honours_xdg_config_home(tmp_path):
    paths = ConfigPaths.discover(cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": "/nowhere"})
    assert paths.system == Path("/etc/torc/config.toml")
    assert paths.user == tmp_path / "xdg" / "torc" / "config.toml"
    assert paths.local == tmp_path / "torc.toml"


def test_discover_falls_back_to_home(tmp_path):
    # A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
    paths = ConfigPaths.discover(cwd=tmp_path, env={"XDG_CONFIG_HOME": "relative", "HOME": str(tmp_path)})
    assert paths.user == tmp_path / ".config" / "torc" / "config.toml"


def test_config_paths_reports_existence(layout):
    write(layout.user, "")
    assert [(lay.name, lay.path, lay.exists) for lay in config_paths(paths=layout)] == [
        ("system", layout.system, False), ("user", layout.user, True), ("local", layout.local, False)]


# ------------------------------------------------------------------------------------------------
# Layering


def test_each_layer_overrides_the_previous(layout):
    write(layout.system, '[client]\nformat = "json"\napi_url = "http://system:1/torc-service/v1"\n'
                         "[client.run]\nnum_cpus = 1\nmemory_gb = 1\nnum_gpus = 1\nmax_parallel_jobs = 1\n")
    write(layout.user, '[client]\napi_url = "http://user:2/torc-service/v1"\n'
                       "[client.run]\nnum_cpus = 2\nmemory_gb = 2\nnum_gpus = 2\n")
    write(layout.local, "[client.run]\nnum_cpus = 3\nmemory_gb = 3\n")
    env = {"TORC_CLIENT__RUN__NUM_CPUS": "4"}
    overrides = {"client.run.max_parallel_jobs": None, "client": {"run": {"num_cpus": 5}}}

    resolved = resolve_config(env=env, overrides=overrides, paths=layout)
    run = resolved.config.client.run
    assert (run.num_cpus, run.memory_gb, run.num_gpus, run.max_parallel_jobs) == (5, 3.0, 2, 1)
    assert resolved.config.client.format == "json"
    assert resolved.config.client.api_url == "http://user:2/torc-service/v1"
    sources = resolved.sources
    assert sources["client.run.num_cpus"] == "cli"
    assert sources["client.run.memory_gb"] == "local"
    assert sources["client.run.num_gpus"] == "user"
    assert sources["client.run.max_parallel_jobs"] == "system"  # a None override is "flag not given"
    assert sources["client.format"] == "system"
    assert sources["client.run.poll_interval"] == "default"

    # Without the cli layer, the env var wins; without env, the local file.
    assert load_config(env=env, paths=layout).client.run.num_cpus == 4
    assert load_config(env={}, paths=layout).client.run.num_cpus == 3


def test_tables_merge_key_by_key(layout):
    write(layout.system, "[client.hpc.profile_overrides.kestrel]\ndefault_account = \"sys\"\n"
                         "[client.hpc.profile_overrides.other]\ndefault_account = \"o\"\n")
    write(layout.user, "[client.hpc.profile_overrides.kestrel]\ndefault_account = \"mine\"\n")
    cfg = load_config(env={}, paths=layout)
    assert cfg.client.hpc.profile_overrides == {"kestrel": {"default_account": "mine"},
                                               "other": {"default_account": "o"}}
    sources = config_sources(env={}, paths=layout)
    assert sources["client.hpc.profile_overrides.kestrel.default_account"] == "user"
    assert sources["client.hpc.profile_overrides.other.default_account"] == "system"
    assert "client.hpc.profile_overrides" not in sources


def test_missing_files_are_skipped_and_empty_files_are_fine(layout):
    write(layout.local, "")
    assert load_config(env={}, paths=layout) == TorcConfig()


def test_local_file_found_from_cwd(tmp_path):
    write(tmp_path / "torc.toml", "[server]\nport = 9000\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert load_config(cwd=tmp_path, env=env).server.port == 9000


# ------------------------------------------------------------------------------------------------
# Environment variables


@pytest.mark.parametrize(("name", "raw", "path", "expected"), [
    ("TORC_CLIENT__RUN__NUM_CPUS", "4", ("client", "run", "num_cpus"), 4),
    ("TORC_CLIENT__RUN__MEMORY_GB", "1.5", ("client", "run", "memory_gb"), 1.5),
    ("TORC_CLIENT__SLURM__KEEP_SUBMISSION_SCRIPTS", "true", ("client", "slurm", "keep_submission_scripts"), True),
    ("TORC_CLIENT__FORMAT", "json", ("client", "format"), "json"),
    ("TORC_CLIENT__FORMAT", '"json"', ("client", "format"), "json"),
    ("TORC_CLIENT__LOG_LEVEL", "DEBUG", ("client", "log_level"), "debug"),
    ("TORC_SERVER__DATABASE", "2024", ("server", "database"), "2024"),  # text fields keep the text
    ("TORC_SERVER__HOST", "0.0.0.0", ("server", "host"), "0.0.0.0"),
    ("TORC_SERVER__ADMIN_USERS", '["ann", "bob"]', ("server", "admin_users"), ["ann", "bob"]),
    ("TORC_SERVER__LOGGING__JSON_LOGS", "true", ("server", "logging", "json_logs"), True),
    ("torc_dash__port", "9999", ("dash", "port"), 9999),
    ("TORC_DASH__TORC_BIN", "true", ("dash", "torc_bin"), "true"),
    ("TORC_DASH__HOST", "1\nport = 2", ("dash", "host"), "1\nport = 2"),
    ("TORC_CLIENT__HPC__PROFILE_OVERRIDES__KESTREL__DEFAULT_ACCOUNT", "acct",
     ("client", "hpc", "profile_overrides"), {"kestrel": {"default_account": "acct"}}),
])
def test_env_nesting_and_value_parsing(name, raw, path, expected):
    resolved = resolve_config(env={name: raw}, paths=NO_FILES)
    value = resolved.config.model_dump()
    for key in path:
        value = value[key]
    assert value == expected
    assert type(value) is type(expected)
    assert "env" in resolved.sources.values()


def test_env_without_double_underscore_is_not_config():
    env = {"TORC_API_URL": "nonsense", "TORC_PASSWORD": "x", "TORC_SERVER_PORT": "1", "OTHER__X": "1"}
    assert load_config(env=env, paths=NO_FILES) == TorcConfig()


def test_env_unknown_key_suggests_the_variable_name():
    with pytest.raises(ConfigError) as info:
        load_config(env={"TORC_CLIENT__RUN__NUM_CPU": "4"}, paths=NO_FILES)
    message = str(info.value)
    assert "environment variable TORC_CLIENT__RUN__NUM_CPU" in message
    assert "did you mean TORC_CLIENT__RUN__NUM_CPUS?" in message
    assert info.value.key == "client.run.num_cpu"


def test_env_bad_value_names_the_variable():
    with pytest.raises(ConfigError, match=r"environment variable TORC_SERVER__PORT: server.port: .*integer"):
        load_config(env={"TORC_SERVER__PORT": "eighty"}, paths=NO_FILES)


def test_env_empty_segment_is_an_error():
    with pytest.raises(ConfigError, match="empty key"):
        load_config(env={"TORC_CLIENT____FORMAT": "json"}, paths=NO_FILES)


# ------------------------------------------------------------------------------------------------
# Errors


def test_unknown_key_names_file_and_suggests(layout):
    path = write(layout.user, "[client.run]\nnum_cpu = 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(env={}, paths=layout)
    err = info.value
    assert str(err) == f"{path}: client.run.num_cpu: unknown key; did you mean 'num_cpus'?"
    assert (err.source, err.key) == (str(path), "client.run.num_cpu")
    assert isinstance(err, ValueError)


def test_unknown_key_in_the_wrong_section_points_to_the_right_one(layout):
    write(layout.local, "[client]\nnum_gpus = 1\n")
    with pytest.raises(ConfigError, match=re.escape("did you mean 'num_gpus' in [client.run]?")):
        load_config(env={}, paths=layout)


def test_unknown_section_and_unrelated_key(layout):
    write(layout.local, "[clinet]\nformat = 'json'\n[server]\nzzz = 1\n")
    errors = validate_config(env={}, paths=layout)
    assert [e.key for e in errors] == ["clinet", "server.zzz"]
    assert "did you mean 'client'?" in str(errors[0])
    assert "known keys in [server]:" in str(errors[1])


def test_bad_type_names_file_and_key(layout):
    path = write(layout.system, '[client.run]\nnum_cpus = "four"\n[server]\nport = 70000\n'
                                '[client]\nformat = "xml"\napi_url = "localhost:8080"\n')
    errors = validate_config(env={}, paths=layout)
    by_key = {e.key: str(e) for e in errors}
    assert set(by_key) == {"client.run.num_cpus", "server.port", "client.format", "client.api_url"}
    assert by_key["client.run.num_cpus"].startswith(f"{path}: client.run.num_cpus: ")
    assert "'four'" in by_key["client.run.num_cpus"]
    assert "65535" in by_key["server.port"]
    assert "'table' or 'json'" in by_key["client.format"]
    assert "http://" in by_key["client.api_url"]
    with pytest.raises(ConfigError) as info:
        load_config(env={}, paths=layout)
    assert len(info.value.errors) == 4
    assert str(info.value).startswith("4 configuration errors:")


@pytest.mark.parametrize("text", [
    "[client.run]\npoll_interval = 0\n",
    "[client.slurm]\npoll_interval = -1\n",
    "[server]\nthreads = 0\n",
    "[server]\ncompletion_check_interval_secs = 0\n",
    "[dash]\nport = -1\n",
    "[client]\nlog_level = 'loud'\n",
    "[client]\nrun = 5\n",
    "[client.hpc]\nprofile_overrides = 'kestrel'\n",
])
def test_value_checks(layout, text):
    write(layout.local, text)
    assert len(validate_config(env={}, paths=layout)) == 1


def test_invalid_toml_names_the_file(layout):
    path = write(layout.local, "[client\nformat = 1\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid TOML")):
        load_config(env={}, paths=layout)


def test_errors_in_several_layers_are_all_reported(layout):
    write(layout.system, "[client]\nfromat = 'json'\n")
    write(layout.user, "[server]\nprot = 1\n")
    errors = validate_config(env={"TORC_DASH__PORTT": "1"}, overrides={"client.run.num_cpus": 0}, paths=layout)
    assert [e.source for e in errors] == [str(layout.system), str(layout.user),
                                         "environment variable TORC_DASH__PORTT", "command-line option"]


def test_bad_override_is_reported_as_a_command_line_option():
    with pytest.raises(ConfigError, match=r"command-line option: client.run.nmu_cpus: .*'client.run.num_cpus'"):
        load_config(env={}, overrides={"client.run.nmu_cpus": 3}, paths=NO_FILES)


# ------------------------------------------------------------------------------------------------
# The default file and TOML output


def test_default_toml_is_all_comments_and_loads_as_the_defaults(layout):
    text = default_toml()
    assert TorcConfig.model_validate(tomllib.loads(text)) == TorcConfig()
    write(layout.user, text)
    assert load_config(env={}, paths=layout) == TorcConfig()
    assert set(config_sources(env={}, paths=layout).values()) == {"default"}


def test_default_toml_documents_every_key_with_a_valid_value(layout):
    text = default_toml()
    uncommented = re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE)
    data = tomllib.loads(uncommented)
    cfg = TorcConfig.model_validate(data)
    assert cfg.client.run.num_cpus == 8  # an example value for a key that is unset by default
    documented = {key for key in json.loads(json.dumps(_flatten(data)))}
    assert documented == set(config_sources(env={}, paths=NO_FILES)) - {
        "client.hpc.profile_overrides", "client.hpc.custom_profiles"}
    assert "[client.hpc.profile_overrides.kestrel]" in text


def _flatten(data, prefix=""):
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_dump_toml_round_trips():
    data = {
        "client": {
            "format": "json", "api_url": None,
            "run": {"num_cpus": 4, "memory_gb": 1.5, "output_dir": "out dir"},
            "hpc": {"custom_profiles": {"my.cluster": {
                "display_name": 'My "cluster"\n', "partitions": [
                    {"name": "a", "cpus_per_node": 64, "features": ["x", "y"]}, {"name": "b", "shared": True}]}}},
        },
        "server": {"admin_users": [], "logging": {"json_logs": True}},
    }
    text = dump_toml(data)
    expected = json.loads(json.dumps(data))
    del expected["client"]["api_url"]
    assert tomllib.loads(text) == expected
    assert tomllib.loads(dump_toml(TorcConfig().model_dump(), show_unset=True)) == \
        json.loads(TorcConfig().model_dump_json(exclude_none=True))


# ------------------------------------------------------------------------------------------------
# `torc config ...`


def invoke(args, obj, env=None):
    return CliRunner().invoke(config_cmds.config, args, obj=obj, env=env or {})


def test_cli_paths(layout):
    write(layout.local, "")
    result = invoke(["paths"], layout, env={"TORC_CLIENT__FORMAT": "json"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["system", str(layout.system), "not", "found"]
    assert lines[1].split() == ["user", str(layout.user), "not", "found"]
    assert lines[2].split() == ["local", str(layout.local), "exists"]
    assert "TORC_CLIENT__FORMAT" in lines[3]


def test_cli_paths_json(layout):
    obj = SimpleNamespace(fmt="json", config_paths=layout)
    result = invoke(["paths"], obj)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [f["layer"] for f in data["files"]] == ["system", "user", "local"]
    assert data["files"][0] == {"layer": "system", "path": str(layout.system), "exists": False}


@pytest.mark.parametrize("layer", ["system", "user", "local"])
def test_cli_init_writes_each_layer_and_refuses_to_overwrite(layout, layer):
    path = layout.path(layer)
    result = invoke(["init", f"--{layer}"], layout)
    assert result.exit_code == 0, result.output
    assert path.read_text() == default_toml()
    assert str(path) in result.output

    path.write_text("[client]\nformat = 'json'\n")
    result = invoke(["init", f"--{layer}"], layout)
    assert result.exit_code == 1
    assert "already exists" in result.output and "--force" in result.output
    assert "json" in path.read_text()

    result = invoke(["init", f"--{layer}", "--force"], layout)
    assert result.exit_code == 0, result.output
    assert path.read_text() == default_toml()


@pytest.mark.parametrize("args", [[], ["--user", "--local"]])
def test_cli_init_needs_exactly_one_layer(layout, args):
    result = invoke(["init", *args], layout)
    assert result.exit_code == 2
    assert "exactly one of --system, --user or --local" in result.output


def test_cli_init_reports_unwritable_path(layout):
    write(layout.system.parent.parent, "a file where a directory belongs")  # …/etc is a file
    result = invoke(["init", "--system"], layout)
    assert result.exit_code == 1
    assert f"cannot write {layout.system}" in result.output


def test_cli_show_toml_and_json(layout):
    write(layout.user, "[client.run]\nnum_cpus = 6\n")
    result = invoke(["show"], layout, env={"TORC_SERVER__PORT": "9001"})
    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.output)
    assert data["client"]["run"]["num_cpus"] == 6
    assert data["server"]["port"] == 9001
    assert "# api_url is not set" in result.output

    result = invoke(["show", "-f", "json", "--sources"], layout, env={"TORC_SERVER__PORT": "9001"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["config"]["client"]["run"]["num_cpus"] == 6
    assert data["config"]["client"]["run"]["output_dir"] == "torc_output"
    assert data["sources"]["client.run.num_cpus"] == "user"
    assert data["sources"]["server.port"] == "env"
    assert data["sources"]["server.host"] == "default"


def test_cli_show_sources_annotates_toml(layout):
    write(layout.local, "[dash]\nport = 8091\n")
    result = invoke(["show", "--sources"], layout)
    assert result.exit_code == 0, result.output
    assert f"port = 8091  # local ({layout.local})" in result.output
    assert 'host = "127.0.0.1"  # default' in result.output
    tomllib.loads(result.output)


def test_cli_show_uses_global_json_format_and_overrides(layout):
    obj = SimpleNamespace(fmt="json", config_paths=layout, config_overrides={"client.format": "json"})
    result = invoke(["show"], obj)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["client"]["format"] == "json"


def test_cli_show_fails_cleanly_on_bad_config(layout):
    write(layout.local, "[client]\nfromat = 'json'\n")
    result = invoke(["show"], layout)
    assert result.exit_code == 1
    assert f"{layout.local}: client.fromat: unknown key; did you mean 'format'?" in result.output
    assert "Traceback" not in result.output


def test_cli_validate_valid(layout):
    write(layout.user, "[client]\nformat = 'json'\n")
    result = invoke(["validate"], layout)
    assert result.exit_code == 0, result.output
    assert "configuration is valid" in result.output
    assert str(layout.user) in result.output


def test_cli_validate_lists_every_error(layout):
    write(layout.user, "[client]\nfromat = 'json'\n[server]\nport = 'x'\n")
    result = invoke(["validate"], layout, env={"TORC_CLIENT__RUN__NUM_CPU": "2"})
    assert result.exit_code == 1
    assert result.output.count("error: ") == 3
    assert "client.fromat" in result.output and "server.port" in result.output
    assert "TORC_CLIENT__RUN__NUM_CPU" in result.output
    assert "configuration is invalid: 3 errors" in result.output


def test_cli_validate_json(layout):
    write(layout.local, "[dash]\nport = 'x'\n")
    result = invoke(["validate"], SimpleNamespace(fmt="json", config_paths=layout))
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["valid"] is False
    assert data["errors"][0]["key"] == "dash.port"
    assert data["errors"][0]["source"] == str(layout.local)
