"""Layered configuration for the torc CLI, server and dashboard.

Layers, lowest to highest priority:

1. built-in defaults (the pydantic models below);
2. the system file, ``/etc/torc/config.toml``;
3. the user file, ``$XDG_CONFIG_HOME/torc/config.toml`` (``~/.config/torc/config.toml``);
4. the local file, ``./torc.toml``;
5. environment variables ``TORC_<SECTION>__<KEY>``, where a double underscore nests
   (``TORC_CLIENT__RUN__NUM_CPUS=4`` sets ``client.run.num_cpus``);
6. command-line flags, passed by the caller as ``overrides``.

Each layer is checked on its own, so an error names the file (or environment variable) and the key
that is wrong. Unknown keys are errors, with a did-you-mean. Files are merged key by key: a later
layer replaces single values and merges tables, so a user file that sets only ``client.format``
leaves every other value of the system file in place. Relative paths in a file (``output_dir``,
``database``) are used as written, i.e. relative to the directory torc runs in.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

__all__ = [
    "ConfigError",
    "ConfigLayer",
    "ConfigPaths",
    "ENV_PREFIX",
    "LAYER_NAMES",
    "ResolvedConfig",
    "TorcConfig",
    "config_paths",
    "config_sources",
    "default_toml",
    "dump_toml",
    "load_config",
    "resolve_config",
    "validate_config",
]

ENV_PREFIX = "TORC_"
ENV_SEPARATOR = "__"
LOCAL_FILE_NAME = "torc.toml"
DEFAULT_API_URL = "http://localhost:8080/torc-service/v1"  # same as torc.client.DEFAULT_URL

#: Layer names, lowest priority first; ``config_sources`` reports one of these for every key.
LAYER_NAMES = ("default", "system", "user", "local", "env", "cli")
FILE_LAYERS = ("system", "user", "local")


# --------------------------------------------------------------------------------------------------
# Errors


class ConfigError(ValueError):
    """A configuration problem, naming where it came from (file, environment variable, flag) and the key.

    When several problems are found at once (``load_config`` reports all of them), ``errors`` lists
    each one and the message has one line per problem.
    """

    def __init__(self, problem: str, *, source: str | None = None, key: str | None = None) -> None:
        self.problem = problem
        self.source = source
        self.key = key
        self.errors: list[ConfigError] = [self]
        super().__init__(self._one_line())

    def _one_line(self) -> str:
        return ": ".join(part for part in (self.source, self.key, self.problem) if part)

    @classmethod
    def combine(cls, errors: list[ConfigError]) -> ConfigError:
        if len(errors) == 1:
            return errors[0]
        combined = cls(f"{len(errors)} configuration errors:\n" + "\n".join(f"  {e}" for e in errors))
        combined.errors = list(errors)
        return combined


# --------------------------------------------------------------------------------------------------
# The schema. Every field has a default, so any partial table validates on its own.


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


LogLevel = Annotated[
    Literal["off", "error", "warn", "warning", "info", "debug", "trace"], BeforeValidator(_lower)
]
OutputFormat = Annotated[Literal["table", "json"], BeforeValidator(_lower)]
Port = Annotated[int, Field(ge=0, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0)]
FreeTable = dict[str, dict[str, Any]]


def _check_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"must be an http:// or https:// URL such as {DEFAULT_API_URL}")
    return value


ApiUrl = Annotated[str, AfterValidator(_check_url)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSection(_Section):
    """Local job runner (`torc run`, `torc workflows run`, `torc remote run`)."""

    poll_interval: PositiveSeconds = Field(5.0, description="Seconds between checks while no job of this runner is active.")
    output_dir: Path = Field(Path("torc_output"), description="Job logs, runner files and (embedded server) the database.")
    max_parallel_jobs: int | None = Field(
        None, ge=1, examples=[4],
        description="Run at most this many jobs at once and ignore resource requirements (queue mode).")
    num_cpus: int | None = Field(None, ge=1, examples=[8], description="CPUs to offer (unset: all of this machine's).")
    memory_gb: float | None = Field(None, ge=0, examples=[32.0], description="Memory to offer, GB (unset: all).")
    num_gpus: int | None = Field(None, ge=0, examples=[0], description="GPUs to offer (unset: detected).")


class SlurmSection(_Section):
    """Slurm allocations and the job runner inside them."""

    poll_interval: int = Field(30, ge=1, description="Seconds between checks in a Slurm job runner.")
    keep_submission_scripts: bool = Field(False, description="Keep the generated sbatch scripts in the output directory.")
    strict_scheduler_match: bool = Field(
        False, description="Runners claim only jobs pinned to their own scheduler (no fallback to unpinned jobs).")


class HpcSection(_Section):
    """HPC profiles (`torc hpc ...`, `torc submit-slurm`)."""

    default_account: str | None = Field(None, examples=["my_project"], description="Slurm account used when none is given.")
    profile_overrides: FreeTable = Field(
        default_factory=dict,
        description="Per-profile settings that replace the built-in ones, one table per profile name.",
        json_schema_extra={"toml_example": '[client.hpc.profile_overrides.kestrel]\ndefault_account = "my_project"'},
    )
    custom_profiles: FreeTable = Field(
        default_factory=dict,
        description="Additional HPC profiles, one table per profile name (see the HPC profile docs).",
        json_schema_extra={"toml_example": (
            '[client.hpc.custom_profiles.mycluster]\ndisplay_name = "My cluster"\n'
            '[[client.hpc.custom_profiles.mycluster.partitions]]\nname = "standard"\n'
            'cpus_per_node = 64\nmemory_mb = 256000\nmax_walltime_secs = 172800'
        )},
    )

    @field_validator("profile_overrides", "custom_profiles")
    @classmethod
    def _check_profiles(cls, value: dict[str, dict[str, Any]], info: ValidationInfo) -> dict[str, dict[str, Any]]:
        """Key names and value types of the profile tables (required keys are checked when the
        profiles are used: another layer may supply them)."""
        from torc.core.errors import InvalidInputError
        from torc.slurm.profiles import check_profile_table

        for name, table in value.items():
            try:
                check_profile_table(name, table, override=info.field_name == "profile_overrides")
            except InvalidInputError as exc:
                raise ValueError(exc.message.removeprefix("configuration ")) from None
        return value


class WatchSection(_Section):
    """`torc watch` (accepted for compatibility with torc's config files)."""

    poll_interval: PositiveSeconds | None = Field(None, examples=[60.0], description="Seconds between status checks.")
    max_retries: int | None = Field(None, ge=0, examples=[3], description="Recovery attempts per job.")
    retry_cooldown: float | None = Field(None, ge=0, examples=[60.0], description="Seconds to wait before a retry.")
    model: str | None = Field(None, examples=["claude-sonnet-4"], description="AI model used by --ai-recovery.")
    cache_path: Path | None = Field(None, examples=["watch_cache.db"], description="Cache file for AI recovery.")
    rate_limit_per_minute: int | None = Field(None, ge=1, examples=[10], description="AI requests per minute.")
    audit_log_path: Path | None = Field(None, examples=["watch_audit.log"], description="Audit log of recovery actions.")
    api_key: str | None = Field(None, examples=["..."], description="API key for the AI recovery agent.")


class ClientSection(_Section):
    """The `torc` command and the job runners it starts."""

    api_url: ApiUrl | None = Field(
        None, examples=[DEFAULT_API_URL],
        description=f"torc-server API URL (unset: {DEFAULT_API_URL}; `torc run` starts its own server when none answers).")
    format: OutputFormat = Field("table", description="Output format: table or json.")
    log_level: LogLevel = Field("info", description="error, warn, info, debug or trace.")
    run: RunSection = Field(default_factory=RunSection)
    slurm: SlurmSection = Field(default_factory=SlurmSection)
    hpc: HpcSection = Field(default_factory=HpcSection)
    watch: WatchSection = Field(default_factory=WatchSection)


class LoggingSection(_Section):
    """Server log files."""

    log_dir: Path | None = Field(None, examples=["/var/log/torc"], description="Write size-rotated log files here.")
    json_logs: bool = Field(False, description="Write the log files as JSON lines.")


class ServerSection(_Section):
    """`torc-server run`."""

    database: str = Field("torc.db", description="SQLite database file (created if missing).")
    host: str = Field("localhost", description="Address to bind.")
    port: Port = Field(8080, description="Port to listen on; 0 picks a free port.")
    completion_check_interval_secs: PositiveSeconds = Field(
        30.0, description="Safety-net pass that releases dependents of unprocessed completions.")
    log_level: LogLevel = Field("info", description="error, warn, info, debug or trace.")
    threads: int | None = Field(None, ge=1, examples=[4], description="Worker threads for requests (unset: server default).")
    https: bool = Field(False, description="Serve HTTPS.")
    auth_file: Path | None = Field(None, examples=["/etc/torc/htpasswd"], description="htpasswd file for basic auth.")
    require_auth: bool = Field(False, description="Reject requests without valid credentials.")
    credential_cache_ttl_secs: int = Field(60, ge=0, description="Seconds a verified password stays cached.")
    enforce_access_control: bool = Field(False, description="Users see only their own and their groups' workflows.")
    admin_users: list[str] = Field(default_factory=list, description="Users with admin rights.")
    logging: LoggingSection = Field(default_factory=LoggingSection)


class DashSection(_Section):
    """`torc-dash`, the web dashboard."""

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: Port = Field(8090, description="Port to listen on.")
    api_url: ApiUrl | None = Field(
        None, examples=[DEFAULT_API_URL], description="torc-server API URL (unset: client.api_url).")
    torc_bin: str | None = Field(None, examples=["torc"], description="The torc executable to run.")
    torc_server_bin: str | None = Field(None, examples=["torc-server"], description="The torc-server executable to run.")
    standalone: bool = Field(False, description="Start a torc-server of its own.")
    server_port: Port = Field(0, description="Port of that server in standalone mode; 0 picks a free one.")
    database: str | None = Field(None, examples=["torc.db"], description="Database of that server in standalone mode.")
    completion_check_interval_secs: PositiveSeconds = Field(
        5.0, description="Completion interval of that server in standalone mode.")


class TorcConfig(_Section):
    """The effective configuration: ``config.client.run.num_cpus`` and so on."""

    client: ClientSection = Field(default_factory=ClientSection)
    server: ServerSection = Field(default_factory=ServerSection)
    dash: DashSection = Field(default_factory=DashSection)


# Keys that torc users may reach for, pointing at the name used here.
_HINTS: dict[tuple[str, ...], dict[str, str]] = {
    ("server",): {"url": "host"},
    ("client",): {"url": "api_url", "username": "(no such key: torc always uses $USER)"},
}


# --------------------------------------------------------------------------------------------------
# Where the files are


@dataclass(frozen=True)
class ConfigPaths:
    """The three file layers. ``None`` leaves a layer out (tests use this, and explicit paths)."""

    system: Path | None
    user: Path | None
    local: Path | None

    @classmethod
    def discover(cls, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> ConfigPaths:
        env = os.environ if env is None else env
        cwd = Path.cwd() if cwd is None else Path(cwd)
        if os.name == "nt":  # pragma: no cover - exercised on Windows only
            system = Path(env.get("PROGRAMDATA", r"C:\ProgramData")) / "torc" / "config.toml"
            user_dir = Path(env["APPDATA"]) if env.get("APPDATA") else Path.home() / "AppData" / "Roaming"
        else:
            system = Path("/etc/torc/config.toml")
            xdg = env.get("XDG_CONFIG_HOME", "")
            if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore relative values
                user_dir = Path(xdg)
            else:
                user_dir = (Path(env["HOME"]) if env.get("HOME") else Path.home()) / ".config"
        return cls(system=system, user=user_dir / "torc" / "config.toml", local=cwd / LOCAL_FILE_NAME)

    def path(self, layer: str) -> Path | None:
        if layer not in FILE_LAYERS:
            raise ValueError(f"no file for layer {layer!r}; file layers are {', '.join(FILE_LAYERS)}")
        return getattr(self, layer)


class ConfigLayer(NamedTuple):
    name: str
    path: Path | None
    exists: bool


def config_paths(cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 paths: ConfigPaths | None = None) -> list[ConfigLayer]:
    """The file layers, lowest priority first, as ``(name, path, exists)``."""
    paths = paths or ConfigPaths.discover(cwd, env)
    out = []
    for name in FILE_LAYERS:
        path = paths.path(name)
        out.append(ConfigLayer(name, path, path is not None and path.is_file()))
    return out


# --------------------------------------------------------------------------------------------------
# Schema walking


def _section_type(annotation: Any) -> type[_Section] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, _Section) else None


def _is_free_table(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict


def _type_atoms(annotation: Any) -> Iterator[Any]:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        yield from _type_atoms(typing.get_args(annotation)[0])
    elif origin in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _type_atoms(arg)
    elif origin is Literal:
        yield from (type(arg) for arg in typing.get_args(annotation))
    else:
        yield annotation


def _is_stringy(annotation: Any) -> bool:
    return any(atom in (str, Path) for atom in _type_atoms(annotation))


def _leaf_paths(model: type[_Section], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, info in model.model_fields.items():
        sub = _section_type(info.annotation)
        if sub is not None:
            yield from _leaf_paths(sub, (*prefix, name))
        else:
            yield (*prefix, name)


# How a layer spells a suggested key: (suggested path, path of the table holding the bad key) -> text.
Suggest = Callable[[tuple[str, ...], tuple[str, ...]], str]


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + ENV_SEPARATOR.join(p.upper() for p in path)


def _spell_file(path: tuple[str, ...], table: tuple[str, ...]) -> str:
    if path[:-1] == table:
        return f"'{path[-1]}'"
    return f"'{path[-1]}' in [{_dotted(path[:-1])}]" if len(path) > 1 else f"top-level '{path[0]}'"


def _spell_env(path: tuple[str, ...], _table: tuple[str, ...]) -> str:
    return _env_name(path)


def _spell_dotted(path: tuple[str, ...], _table: tuple[str, ...]) -> str:
    return f"'{_dotted(path)}'"


_SPELLERS: dict[str, Suggest] = {"env": _spell_env, "cli": _spell_dotted}


def _unknown_key_problem(model: type[_Section], prefix: tuple[str, ...], key: str, spell: Suggest) -> str:
    hint = _HINTS.get(prefix, {}).get(key)
    if hint is not None and hint.startswith("("):
        return f"unknown key {hint}"
    close = [hint] if hint else difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {spell((*prefix, close[0]), prefix)}?"
    elsewhere = [p for p in (*_section_paths(TorcConfig), *_leaf_paths(TorcConfig)) if p[-1] == key]
    if elsewhere:
        return "unknown key here; did you mean " + " or ".join(spell(p, prefix) for p in elsewhere) + "?"
    known = ", ".join(model.model_fields)
    where = f"[{_dotted(prefix)}]" if prefix else "the top level"
    return f"unknown key (known keys in {where}: {known})"


def _section_paths(model: type[_Section], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, info in model.model_fields.items():
        sub = _section_type(info.annotation)
        if sub is not None:
            yield (*prefix, name)
            yield from _section_paths(sub, (*prefix, name))


def _check_keys(model: type[_Section], raw: Mapping[str, Any], prefix: tuple[str, ...], spell: Suggest,
                problem: Callable[[tuple[str, ...], str], None]) -> dict[str, Any]:
    """Drop (and report) unknown keys and scalars where a section belongs; return what is left."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = (*prefix, key)
        info = model.model_fields.get(key)
        if info is None:
            problem(path, _unknown_key_problem(model, prefix, key, spell))
            continue
        sub = _section_type(info.annotation)
        if sub is None:
            out[key] = value
        elif isinstance(value, Mapping):
            out[key] = _check_keys(sub, value, path, spell, problem)
        else:
            problem(path, f"is a section; expected a table such as [{_dotted(path)}], got {value!r}")
    return out


def _field_annotation(path: tuple[str, ...]) -> tuple[str, Any]:
    """('section'|'value'|'free'|'unknown', annotation) for a dotted path."""
    model: type[_Section] = TorcConfig
    for i, key in enumerate(path):
        info = model.model_fields.get(key)
        if info is None:
            return "unknown", None
        sub = _section_type(info.annotation)
        if sub is None:
            if _is_free_table(info.annotation):
                return "free", info.annotation
            return ("value" if i == len(path) - 1 else "unknown"), info.annotation
        model = sub
    return "section", model


# --------------------------------------------------------------------------------------------------
# Reading the layers


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a TOML file", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(path)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from None


def _parse_env_value(raw: str, path: tuple[str, ...]) -> Any:
    """A TOML scalar (int, float, bool, quoted string, array) where it parses as one, else the raw text.

    Fields that hold text (URLs, paths, names, choices) take the raw text unless it is a quoted string,
    so ``TORC_SERVER__DATABASE=2024`` stays the string ``"2024"``.
    """
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        return raw
    if list(parsed) != ["v"]:  # a newline in the value made more keys: not one scalar
        return raw
    value = parsed["v"]
    if isinstance(value, str):
        return value
    kind, annotation = _field_annotation(path)
    if kind == "value" and _is_stringy(annotation):
        return raw
    if isinstance(value, dict | date | time | datetime):
        return raw
    return value


def _set_path(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = target
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def _env_layer(env: Mapping[str, str], problem: Callable[[str, tuple[str, ...], str], None]) -> dict[str, Any]:
    """``TORC_A__B__C`` → ``{"a": {"b": {"c": value}}}``. Only names with ``__`` are config (so
    ``TORC_API_URL``, ``TORC_PASSWORD`` and the server's own variables are left alone)."""
    out: dict[str, Any] = {}
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX) or ENV_SEPARATOR not in name[len(ENV_PREFIX):]:
            continue
        parts = name[len(ENV_PREFIX):].split(ENV_SEPARATOR)
        path = tuple(p.lower() for p in parts)
        if not all(path):
            problem(name, path, "empty key in the name (three or more underscores in a row?)")
            continue
        _set_path(out, path, _parse_env_value(env[name], path))
    return out


def _override_layer(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys (``"client.run.num_cpus"``) and/or nested dicts; ``None`` means "flag not given"."""
    out: dict[str, Any] = {}

    def add(prefix: tuple[str, ...], mapping: Mapping[str, Any]) -> None:
        for key, value in mapping.items():
            path = (*prefix, *key.split("."))
            if value is None:
                continue
            kind, _ = _field_annotation(path)
            if isinstance(value, Mapping) and kind in ("section", "unknown"):
                add(path, value)
            else:
                _set_path(out, path, value)

    add((), overrides)
    return out


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged


def _leaves(data: Mapping[str, Any], prefix: tuple[str, ...] = (), *,
            empty_tables: bool = True) -> Iterator[tuple[str, ...]]:
    """Paths of the non-table values; empty tables count as values only with ``empty_tables``."""
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, (*prefix, key), empty_tables=empty_tables)
        elif empty_tables or not isinstance(value, Mapping):
            yield (*prefix, key)


def _describe_input(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _validation_problems(exc: ValidationError) -> Iterator[tuple[tuple[str, ...], str]]:
    for err in exc.errors(include_url=False):
        path = tuple(str(p) for p in err["loc"])
        msg = err["msg"]
        msg = msg[:1].lower() + msg[1:]
        msg = msg.removeprefix("value error, ")
        if err["type"] != "missing":
            msg += f" (got {_describe_input(err['input'])})"
        yield path, msg


# --------------------------------------------------------------------------------------------------
# Resolution


@dataclass(frozen=True)
class ResolvedConfig:
    config: TorcConfig
    sources: dict[str, str]  # dotted key -> layer name (see LAYER_NAMES)
    layers: list[ConfigLayer]  # file layers, as config_paths() returns them
    errors: list[ConfigError]  # empty unless resolve_config(..., strict=False) found problems


def resolve_config(cwd: Path | None = None, env: Mapping[str, str] | None = None,
                   overrides: Mapping[str, Any] | None = None, paths: ConfigPaths | None = None,
                   *, strict: bool = True) -> ResolvedConfig:
    """Load every layer; return the effective config, where each key came from, and the file layers.

    With ``strict`` (the default) any problem raises a ``ConfigError`` listing all of them. Without
    it, problems are returned in ``errors`` and the layers (or keys) at fault are left out.
    """
    env = os.environ if env is None else env
    paths = paths or ConfigPaths.discover(cwd, env)
    layers = config_paths(paths=paths)
    errors: list[ConfigError] = []
    raw_layers: list[tuple[str, dict[str, Any], Callable[[tuple[str, ...]], str]]] = []

    def file_source(path: Path) -> Callable[[tuple[str, ...]], str]:
        return lambda _key: str(path)

    for layer in layers:
        if not layer.exists or layer.path is None:
            continue
        try:
            raw_layers.append((layer.name, _read_file(layer.path), file_source(layer.path)))
        except ConfigError as exc:
            errors.append(exc)

    env_names: dict[tuple[str, ...], str] = {}

    def env_problem(name: str, path: tuple[str, ...], problem: str) -> None:
        errors.append(ConfigError(problem, source=f"environment variable {name}", key=_dotted(path)))

    env_raw = _env_layer(env, env_problem)
    for name in env:
        if name.upper().startswith(ENV_PREFIX) and ENV_SEPARATOR in name[len(ENV_PREFIX):]:
            env_names[tuple(p.lower() for p in name[len(ENV_PREFIX):].split(ENV_SEPARATOR))] = name

    def env_source(key: tuple[str, ...]) -> str:
        for n in range(len(key), 0, -1):
            if key[:n] in env_names:
                return f"environment variable {env_names[key[:n]]}"
        return "environment"

    raw_layers.append(("env", env_raw, env_source))
    raw_layers.append(("cli", _override_layer(overrides or {}), lambda _key: "command-line option"))

    merged: dict[str, Any] = {}
    sources = {_dotted(p): "default" for p in _leaves(TorcConfig().model_dump())}
    for layer_name, raw, source_of in raw_layers:
        spell = _SPELLERS.get(layer_name, _spell_file)
        layer_errors: list[ConfigError] = []

        def problem(path: tuple[str, ...], text: str, _errs=layer_errors, _src=source_of) -> None:
            _errs.append(ConfigError(text, source=_src(path), key=_dotted(path)))

        checked = _check_keys(TorcConfig, raw, (), spell, problem)
        try:
            TorcConfig.model_validate(checked)
        except ValidationError as exc:
            bad = set()
            for path, text in _validation_problems(exc):
                problem(path, text)
                bad.add(path)
            checked = _drop_paths(checked, bad)
        errors.extend(layer_errors)
        for leaf in _leaves(checked, empty_tables=False):  # an empty table changes nothing when merged
            key = _dotted(leaf)
            for existing in [k for k in sources if k.startswith(key + ".") or key.startswith(k + ".")]:
                del sources[existing]
            sources[key] = layer_name
        merged = _deep_merge(merged, checked)

    if errors and strict:
        raise ConfigError.combine(errors)
    try:
        config = TorcConfig.model_validate(merged)
    except ValidationError as exc:  # only if layers interact badly; report against the merged result
        merged_errors = [ConfigError(text, source="merged configuration", key=_dotted(path))
                         for path, text in _validation_problems(exc)]
        if strict:
            raise ConfigError.combine(merged_errors) from None
        errors.extend(merged_errors)
        config = TorcConfig()
    return ResolvedConfig(config=config, sources=dict(sorted(sources.items())), layers=layers, errors=errors)


def _drop_paths(data: dict[str, Any], bad: set[tuple[str, ...]]) -> dict[str, Any]:
    """Remove the keys pydantic rejected (the top-most existing key of each error path)."""
    out = _copy(data)
    for path in bad:
        node: Any = out
        for i, key in enumerate(path):
            if not isinstance(node, dict) or key not in node:
                break
            if i == len(path) - 1 or not isinstance(node[key], dict):
                del node[key]
                break
            node = node[key]
    return out


def _copy(data: Any) -> Any:
    return {k: _copy(v) for k, v in data.items()} if isinstance(data, dict) else data


def load_config(cwd: Path | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None, paths: ConfigPaths | None = None) -> TorcConfig:
    """The effective configuration; raises ``ConfigError`` (naming every file/variable and key at fault).

    ``cwd`` locates ``./torc.toml`` (default: the current directory); ``env`` defaults to
    ``os.environ``; ``overrides`` are command-line values, as dotted keys or nested dicts, where
    ``None`` means "not given"; ``paths`` replaces the discovered file locations.
    """
    return resolve_config(cwd, env, overrides, paths).config


def config_sources(cwd: Path | None = None, env: Mapping[str, str] | None = None,
                   overrides: Mapping[str, Any] | None = None, paths: ConfigPaths | None = None) -> dict[str, str]:
    """Dotted key → the layer its effective value came from: default, system, user, local, env or cli."""
    return resolve_config(cwd, env, overrides, paths).sources


def validate_config(cwd: Path | None = None, env: Mapping[str, str] | None = None,
                    overrides: Mapping[str, Any] | None = None, paths: ConfigPaths | None = None) -> list[ConfigError]:
    """Every problem in every layer (empty when the configuration is valid)."""
    return resolve_config(cwd, env, overrides, paths, strict=False).errors


# --------------------------------------------------------------------------------------------------
# TOML output (stdlib has a reader only)

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    return out.replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Path):
        return _toml_string(str(value))
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        items = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def dump_toml(data: Mapping[str, Any], *, show_unset: bool = False,
              annotate: Callable[[str], str | None] | None = None) -> str:
    """Write a mapping as TOML. ``None`` values are left out (TOML has no null), or with ``show_unset``
    written as a comment. ``annotate(dotted_key)`` may return a comment for the end of a key's line."""
    lines: list[str] = []

    def note(path: tuple[str, ...]) -> str | None:
        return annotate(_dotted(path)) if annotate else None

    def table(mapping: Mapping[str, Any], prefix: tuple[str, ...], header: str | None) -> None:
        def is_nested(v: Any) -> bool:
            return (isinstance(v, Mapping) and bool(v)) or _is_table_array(v)

        simple = [(k, v) for k, v in mapping.items() if not is_nested(v)]
        nested = [(k, v) for k, v in mapping.items() if is_nested(v)]
        if header is not None and (simple or not nested):
            if lines:
                lines.append("")
            lines.append(header)
        for key, value in simple:
            path = (*prefix, key)
            if value is None:
                if show_unset:
                    text = note(path)
                    lines.append(f"# {_toml_key(key)} is not set" + (f" ({text})" if text else ""))
                continue
            text = note(path)
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}" + (f"  # {text}" if text else ""))
        for key, value in nested:
            path = (*prefix, key)
            name = ".".join(_toml_key(p) for p in path)
            if isinstance(value, Mapping):
                table(value, path, f"[{name}]")
            else:
                for item in value:
                    if lines:
                        lines.append("")
                    lines.append(f"[[{name}]]")
                    table(item, path, None)

    table(data, (), None)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# The commented default file


def _example(info: Any) -> Any:
    if info.default_factory is not None:
        return info.default_factory()
    if info.default is not None:
        return info.default
    return info.examples[0] if info.examples else None


def default_toml() -> str:
    """A config file that documents every key with its default, all commented out.

    Commented out on purpose: a file written by ``torc config init --user`` must not pin every value
    and so hide what the system file sets. Uncomment only the keys you want to change.
    """
    lines = [
        "# torc configuration.",
        "#",
        "# Layers, lowest priority first: built-in defaults < /etc/torc/config.toml",
        "# < ~/.config/torc/config.toml ($XDG_CONFIG_HOME) < ./torc.toml",
        f"# < environment variables {ENV_PREFIX}<SECTION>__<KEY> (e.g. {ENV_PREFIX}CLIENT__RUN__NUM_CPUS=4)",
        "# < command-line flags.",
        "#",
        "# Every key below shows its default (or, for keys that are unset by default, an example).",
        "# Uncomment only what you want to change; `torc config validate` checks the result.",
    ]

    def section(model: type[_Section], prefix: tuple[str, ...]) -> None:
        if prefix:
            lines.append("")
            doc = (model.__doc__ or "").strip().splitlines()
            if doc:
                lines.append(f"# {doc[0]}")
            lines.append(f"[{_dotted(prefix)}]")
        subsections = []
        free = []
        for name, info in model.model_fields.items():
            sub = _section_type(info.annotation)
            if sub is not None:
                subsections.append((name, sub))
                continue
            if _is_free_table(info.annotation):
                free.append((name, info))
                continue
            unset = info.default is None and info.default_factory is None
            note = " Unset by default." if unset and "unset" not in info.description.lower() else ""
            lines.append(f"# {info.description}{note}")
            value = _example(info)
            lines.append(f"# {name} = {_toml_value(value)}")
        for _name, info in free:
            lines.append(f"# {info.description} For example:")
            example = (info.json_schema_extra or {}).get("toml_example", "")
            lines.extend(f"#   {line}" for line in example.splitlines())
        for name, sub in subsections:
            section(sub, (*prefix, name))

    section(TorcConfig, ())
    return "\n".join(lines) + "\n"
