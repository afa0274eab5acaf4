"""HPC profiles: what a cluster's partitions offer, how to recognise the cluster, and the partition
choice used by `torc hpc match` and the Slurm planner (reference §6.4).

Built in: NREL Kestrel (detected by ``NREL_CLUSTER=kestrel``). The configuration adds profiles
(``[client.hpc.custom_profiles.<name>]`` with ``[[...partitions]]``) and changes built-in ones
(``[client.hpc.profile_overrides.<name>]``, e.g. ``default_account``).

Units: ``memory_mb`` is megabytes as Slurm counts them (MiB, Slurm's ``RealMemory``);
``max_walltime_secs`` is seconds, and unset means the partition has no time limit.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from torc.core.errors import InvalidInputError

__all__ = [
    "HpcDetection",
    "HpcPartition",
    "HpcProfile",
    "ProfileRegistry",
    "format_walltime",
    "kestrel_profile",
    "load_registry",
    "parse_walltime_text",
]

SMALL_JOB_CPUS = 26  # about a quarter of a standard Kestrel node: such jobs prefer shared partitions
SMALL_JOB_MEMORY_MB = 60_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HpcDetection(_Strict):
    """One way to recognise a cluster: an environment variable with a value, or a hostname regex."""

    env_var: str | None = None  # "NAME=value"
    hostname: str | None = None  # regex, searched in the hostname

    def matches(self, env: Mapping[str, str] | None = None, hostname: str | None = None) -> bool:
        env = os.environ if env is None else env
        if self.env_var:
            name, _, value = self.env_var.partition("=")
            if env.get(name.strip()) == value.strip():
                return True
        if self.hostname:
            host = this_host() if hostname is None else hostname
            try:
                if re.search(self.hostname, host):
                    return True
            except re.error:
                return False
        return False

    def describe(self) -> str:
        parts = []
        if self.env_var:
            parts.append(f"environment {self.env_var}")
        if self.hostname:
            parts.append(f"hostname matches {self.hostname!r}")
        return " or ".join(parts) or "never"


class HpcPartition(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    cpus_per_node: int = Field(ge=1)
    memory_mb: int = Field(ge=1)
    max_walltime_secs: int | None = Field(default=None, ge=1)  # None: no time limit
    max_nodes: int | None = Field(default=None, ge=1)
    max_nodes_per_user: int | None = Field(default=None, ge=1)
    min_nodes: int | None = Field(default=None, ge=0)
    gpus_per_node: int | None = Field(default=None, ge=0)
    gpu_type: str | None = None
    gpu_memory_gb: int | None = Field(default=None, ge=0)
    local_disk_gb: int | None = Field(default=None, ge=0)
    shared: bool = False
    requires_explicit_request: bool = False
    default_qos: str | None = None
    features: list[str] = Field(default_factory=list)

    @property
    def has_gpus(self) -> bool:
        return bool(self.gpus_per_node)

    @property
    def node_limit(self) -> int | None:
        """The most nodes one user may ask for."""
        limits = [n for n in (self.max_nodes, self.max_nodes_per_user) if n]
        return min(limits) if limits else None

    def walltime_str(self) -> str:
        return "unlimited" if self.max_walltime_secs is None else format_walltime(self.max_walltime_secs)

    def why_not(self, cpus: int, memory_mb: int, walltime_secs: float, gpus: int = 0, nodes: int = 1) -> str | None:
        """None when one job with these needs fits here, else the first reason it does not."""
        if cpus > self.cpus_per_node:
            return f"{cpus} CPUs > {self.cpus_per_node} per node"
        if memory_mb > self.memory_mb:
            return f"{memory_mb} MB memory > {self.memory_mb} MB per node"
        if self.max_walltime_secs is not None and walltime_secs > self.max_walltime_secs:
            return f"runtime {format_walltime(walltime_secs)} > max walltime {self.walltime_str()}"
        if gpus > 0 and (self.gpus_per_node or 0) < gpus:
            return f"{gpus} GPUs > {self.gpus_per_node or 0} per node"
        limit = self.node_limit
        if limit is not None and nodes > limit:
            return f"{nodes} nodes > limit of {limit}"
        if self.min_nodes and nodes < self.min_nodes:
            return f"needs at least {self.min_nodes} nodes per job"
        return None

    def can_satisfy(self, cpus: int, memory_mb: int, walltime_secs: float, gpus: int = 0, nodes: int = 1) -> bool:
        return self.why_not(cpus, memory_mb, walltime_secs, gpus, nodes) is None


class HpcProfile(_Strict):
    name: str
    display_name: str = ""
    description: str = ""
    detection: list[HpcDetection] = Field(default_factory=list)
    default_account: str | None = None
    charge_factor_cpu: float = 1.0
    charge_factor_gpu: float = 10.0
    metadata: dict[str, str] = Field(default_factory=dict)
    partitions: list[HpcPartition] = Field(default_factory=list)
    source: str = "built-in"  # built-in, config, cluster

    def detect(self, env: Mapping[str, str] | None = None, hostname: str | None = None) -> bool:
        return any(d.matches(env, hostname) for d in self.detection)

    def get_partition(self, name: str) -> HpcPartition:
        for partition in self.partitions:
            if partition.name == name:
                return partition
        known = [p.name for p in self.partitions]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidInputError(f"profile {self.name!r} has no partition {name!r} (partitions: "
                                f"{', '.join(known) or 'none'}){hint}")

    def gpu_partitions(self) -> list[HpcPartition]:
        return [p for p in self.partitions if p.has_gpus]

    def cpu_partitions(self) -> list[HpcPartition]:
        return [p for p in self.partitions if not p.has_gpus]

    def find_matching_partitions(self, cpus: int, memory_mb: int, walltime_secs: float, gpus: int = 0,
                                 nodes: int = 1) -> list[HpcPartition]:
        return [p for p in self.partitions if p.can_satisfy(cpus, memory_mb, walltime_secs, gpus, nodes)]

    def find_best_partition(self, cpus: int, memory_mb: int, walltime_secs: float, gpus: int = 0,
                            nodes: int = 1) -> HpcPartition | None:
        """The partition to use for jobs with these needs, or None when none fits.

        Debug partitions are used only when nothing else fits. GPU jobs prefer GPU partitions; small
        CPU jobs prefer shared CPU partitions; CPU jobs prefer CPU partitions; partitions that must be
        asked for by name come last. Within each preference the profile's order decides.
        """
        matching = self.find_matching_partitions(cpus, memory_mb, walltime_secs, gpus, nodes)
        if not matching:
            return None
        candidates = [p for p in matching if "debug" not in p.name.lower()] or matching
        auto = [p for p in candidates if not p.requires_explicit_request]
        if gpus > 0:
            for pool in (auto, candidates):
                for p in pool:
                    if p.has_gpus:
                        return p
        if cpus <= SMALL_JOB_CPUS and memory_mb <= SMALL_JOB_MEMORY_MB:
            for p in auto:
                if p.shared and not p.has_gpus:
                    return p
        if gpus == 0:
            for p in auto:
                if not p.has_gpus:
                    return p
        return auto[0] if auto else candidates[0]

    def no_fit_reasons(self, cpus: int, memory_mb: int, walltime_secs: float, gpus: int = 0,
                       nodes: int = 1) -> str:
        """Why no partition fits, one clause per partition (for error messages)."""
        return "; ".join(f"{p.name}: {p.why_not(cpus, memory_mb, walltime_secs, gpus, nodes)}" for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def this_host() -> str:
    """This machine's name: the fully qualified one when the resolver knows it, else the short one."""
    short = socket.gethostname()
    fqdn = socket.getfqdn()
    return fqdn if fqdn.startswith(short + ".") else short


# ---- units ------------------------------------------------------------------------------------


def format_walltime(seconds: float) -> str:
    """3600 -> '01:00:00'; a day or more -> 'D-HH:MM:SS' (Slurm's format)."""
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{text}" if days else text


_HUMAN_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs|hours?|d|days?)\s*$", re.I)
_HUMAN_FACTORS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_walltime_text(text: str) -> int:
    """A walltime as a person writes it: '2h', '30m', '90s', '1d', 'HH:MM:SS', 'D-HH:MM:SS' or 'PT2H'."""
    from torc.core.units import parse_duration_seconds, parse_walltime_seconds

    value = str(text).strip()
    match = _HUMAN_DURATION.match(value)
    if match:
        return int(round(float(match.group(1)) * _HUMAN_FACTORS[match.group(2)[0].lower()]))
    if value.upper().startswith("P"):
        return int(round(parse_duration_seconds(value)))
    try:
        return parse_walltime_seconds(value)
    except InvalidInputError:
        raise InvalidInputError(f"invalid walltime {text!r}: expected e.g. 2h, 30m, 04:00:00, 1-00:00:00 "
                                "or PT2H") from None


# ---- the built-in profile --------------------------------------------------------------------

_DAY = 86400


def _kestrel_partition(name: str, description: str, walltime: int, *, cpus: int = 104, memory_mb: int = 240_000,
                       **extra: Any) -> HpcPartition:
    return HpcPartition(name=name, description=description, cpus_per_node=cpus, memory_mb=memory_mb,
                        max_walltime_secs=walltime, **extra)


def kestrel_profile() -> HpcProfile:
    """NREL Kestrel: 104-core CPU nodes with 240 GB and GPU nodes with 4 H100s."""
    gpu = {"cpus": 128, "memory_mb": 360_000, "gpus_per_node": 4, "gpu_type": "h100", "gpu_memory_gb": 80,
           "local_disk_gb": 3400, "shared": True, "features": ["gpu", "h100"]}
    partitions = [
        _kestrel_partition("debug", "Nodes dedicated to developing and troubleshooting jobs", 3600,
                           max_nodes=2, max_nodes_per_user=2, gpus_per_node=2, gpu_type="h100", gpu_memory_gb=80,
                           shared=True, requires_explicit_request=True, features=["debug"]),
        _kestrel_partition("short", "Nodes that prefer jobs with walltimes <= 4 hours", 4 * 3600, max_nodes=2240),
        _kestrel_partition("standard", "Nodes that prefer jobs with walltimes <= 2 days", 2 * _DAY,
                           max_nodes=2240, max_nodes_per_user=1050),
        _kestrel_partition("long", "Nodes that prefer jobs with walltimes > 2 days (max 10 days)", 10 * _DAY,
                           max_nodes=430, max_nodes_per_user=215),
        _kestrel_partition("medmem", "Nodes with 1 TB of RAM", 10 * _DAY, memory_mb=1_000_000, max_nodes=64,
                           max_nodes_per_user=32, features=["highmem"]),
        _kestrel_partition("bigmem", "Nodes with 2 TB RAM and 5.6 TB NVMe local disk", 2 * _DAY,
                           memory_mb=2_000_000, max_nodes=10, max_nodes_per_user=4, local_disk_gb=5600,
                           features=["bigmem", "nvme"]),
        _kestrel_partition("bigmeml", "Bigmem nodes for jobs > 2 days (max 10 days)", 10 * _DAY,
                           memory_mb=2_000_000, max_nodes=4, max_nodes_per_user=2, local_disk_gb=5600,
                           features=["bigmem", "nvme"]),
        _kestrel_partition("hbw", "CPU nodes with dual network interface cards for multi-node jobs", 2 * _DAY,
                           max_nodes=512, max_nodes_per_user=256, min_nodes=2, requires_explicit_request=True,
                           features=["dual-nic"]),
        _kestrel_partition("hbwl", "HBW nodes for jobs > 2 days (max 10 days)", 10 * _DAY, max_nodes=128,
                           max_nodes_per_user=64, min_nodes=2, requires_explicit_request=True,
                           features=["dual-nic"]),
        _kestrel_partition("nvme", "CPU nodes with 1.7 TB NVMe local drives", 2 * _DAY, max_nodes=256,
                           max_nodes_per_user=128, local_disk_gb=1700, requires_explicit_request=True,
                           features=["nvme"]),
        _kestrel_partition("shared", "Nodes that can be shared by multiple users and jobs", 2 * _DAY,
                           max_nodes=128, max_nodes_per_user=64, shared=True, requires_explicit_request=True,
                           features=["shared"]),
        _kestrel_partition("sharedl", "Shared nodes for jobs > 2 days", 10 * _DAY, max_nodes=32,
                           max_nodes_per_user=16, shared=True, requires_explicit_request=True, features=["shared"]),
        _kestrel_partition("gpu-h100s", "GPU nodes preferring jobs <= 4 hours", 4 * 3600, max_nodes=156, **gpu),
        _kestrel_partition("gpu-h100", "GPU nodes with 4x NVIDIA H100 SXM 80GB", 2 * _DAY, max_nodes=156, **gpu),
        _kestrel_partition("gpu-h100l", "GPU nodes for jobs > 2 days", 10 * _DAY, max_nodes=39, **gpu),
    ]
    return HpcProfile(
        name="kestrel", display_name="NREL Kestrel",
        description="NREL's flagship HPC system with CPU and GPU nodes",
        detection=[HpcDetection(env_var="NREL_CLUSTER=kestrel")],
        charge_factor_cpu=10.0, charge_factor_gpu=100.0,
        metadata={"documentation": "https://nrel.github.io/HPC/Documentation/Systems/Kestrel/Running/",
                  "support_email": "HPC-Help@nrel.gov"},
        partitions=partitions,
    )


BUILTIN_PROFILES = {"kestrel": kestrel_profile}

# ---- profiles from the configuration ---------------------------------------------------------

_PROFILE_KEYS = ("display_name", "description", "detect_env_var", "detect_hostname", "default_account",
                 "charge_factor_cpu", "charge_factor_gpu", "metadata", "partitions")
_OVERRIDE_KEYS = tuple(k for k in _PROFILE_KEYS if k != "partitions")


def _config_error(where: str, problem: str) -> InvalidInputError:
    return InvalidInputError(f"configuration {where}: {problem}")


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(allowed)})"
            raise _config_error(where, f"unknown key {key!r}{hint}")


def _profile_fields(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    detection = []
    if table.get("detect_env_var") is not None:
        text = str(table["detect_env_var"])
        if "=" not in text:
            raise _config_error(f"{where}.detect_env_var", f"expected NAME=value, got {text!r}")
        detection.append(HpcDetection(env_var=text))
    if table.get("detect_hostname") is not None:
        try:
            re.compile(str(table["detect_hostname"]))
        except re.error as exc:
            raise _config_error(f"{where}.detect_hostname", f"invalid regular expression: {exc}") from None
        detection.append(HpcDetection(hostname=str(table["detect_hostname"])))
    if detection:
        fields["detection"] = detection
    for key in ("display_name", "description", "default_account", "charge_factor_cpu", "charge_factor_gpu",
                "metadata"):
        if key in table:
            fields[key] = table[key]
    return fields


def _validation_message(exc: ValidationError, where: str) -> InvalidInputError:
    problems = []
    for err in exc.errors(include_url=False):
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        problems.append(f"{where}{loc}: {err['msg']}")
    return InvalidInputError("invalid HPC profile in the configuration: " + "; ".join(problems))


def check_profile_table(name: str, table: Any, *, override: bool = False) -> None:
    """Check the keys of one config table, as far as one config layer can be checked alone (another
    layer may add the required values). Raises InvalidInputError naming the key."""
    kind = "profile_overrides" if override else "custom_profiles"
    where = f"client.hpc.{kind}.{name}"
    if not isinstance(table, Mapping):
        raise _config_error(where, "expected a table")
    _check_keys(table, _OVERRIDE_KEYS if override else _PROFILE_KEYS, where)
    _profile_fields(table, where)
    partitions = table.get("partitions", [])
    if not isinstance(partitions, list):
        raise _config_error(f"{where}.partitions", "expected a list of [[partitions]] tables")
    allowed = tuple(HpcPartition.model_fields)
    for index, item in enumerate(partitions):
        if not isinstance(item, Mapping):
            raise _config_error(f"{where}.partitions[{index}]", "expected a table")
        _check_keys(item, allowed, f"{where}.partitions[{index}]")


def profile_from_config(name: str, table: Mapping[str, Any]) -> HpcProfile:
    """A custom profile from its ``[client.hpc.custom_profiles.<name>]`` table."""
    where = f"client.hpc.custom_profiles.{name}"
    if not isinstance(table, Mapping):
        raise _config_error(where, "expected a table")
    _check_keys(table, _PROFILE_KEYS, where)
    partitions = table.get("partitions")
    if not isinstance(partitions, list) or not partitions:
        raise _config_error(f"{where}.partitions", "a custom profile needs at least one [[partitions]] table")
    fields = _profile_fields(table, where)
    fields.setdefault("display_name", name)
    try:
        return HpcProfile(name=name, partitions=partitions, source="config", **fields)
    except ValidationError as exc:
        raise _validation_message(exc, where) from None


def apply_override(profile: HpcProfile, table: Mapping[str, Any]) -> HpcProfile:
    where = f"client.hpc.profile_overrides.{profile.name}"
    if not isinstance(table, Mapping):
        raise _config_error(where, "expected a table")
    _check_keys(table, _OVERRIDE_KEYS, where)
    fields = _profile_fields(table, where)
    try:
        return HpcProfile.model_validate({**profile.model_dump(), **fields})
    except ValidationError as exc:
        raise _validation_message(exc, where) from None


class ProfileRegistry:
    """The known profiles: built-in ones (with overrides applied) and the configuration's own."""

    def __init__(self, profiles: list[HpcProfile], default_account: str | None = None,
                 warnings: list[str] | None = None):
        self.profiles = profiles
        self.default_account = default_account
        self.warnings = warnings or []

    def names(self) -> list[str]:
        return [p.name for p in self.profiles]

    def get(self, name: str) -> HpcProfile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidInputError(f"unknown HPC profile {name!r} (known: {', '.join(self.names()) or 'none'}){hint}")

    def detect(self, env: Mapping[str, str] | None = None, hostname: str | None = None) -> HpcProfile | None:
        """The first profile whose detection matches here; configured profiles are tried first."""
        ordered = [p for p in self.profiles if p.source != "built-in"] + \
                  [p for p in self.profiles if p.source == "built-in"]
        for profile in ordered:
            if profile.detect(env, hostname):
                return profile
        return None

    def account_for(self, profile: HpcProfile) -> str | None:
        return profile.default_account or self.default_account


def load_registry(config: Any = None) -> ProfileRegistry:
    """Built-in profiles plus the configuration's overrides and custom profiles.

    ``config`` is a TorcConfig (its ``client.hpc`` section is read), an HpcSection, or None
    (built-in profiles only). A custom profile with a built-in's name replaces it.
    """
    hpc = getattr(getattr(config, "client", None), "hpc", None) or config
    overrides = dict(getattr(hpc, "profile_overrides", None) or {})
    customs = dict(getattr(hpc, "custom_profiles", None) or {})
    profiles: dict[str, HpcProfile] = {}
    for name, factory in BUILTIN_PROFILES.items():
        profile = factory()
        if name in overrides:
            profile = apply_override(profile, overrides.pop(name))
        profiles[name] = profile
    for name, table in customs.items():
        profile = profile_from_config(name, table)
        if name in overrides:
            profile = apply_override(profile, overrides.pop(name))
        profiles[name] = profile
    warnings = [f"client.hpc.profile_overrides.{name}: no HPC profile named {name!r} (known: "
                f"{', '.join(profiles)}); ignored" for name in sorted(overrides)]
    return ProfileRegistry(list(profiles.values()), getattr(hpc, "default_account", None), warnings)
