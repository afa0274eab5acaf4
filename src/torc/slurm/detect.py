"""An HPC profile built from the live Slurm cluster (`torc hpc generate`, `torc hpc detect`).

Reads ``sinfo`` (partitions, CPUs, memory, time limit, GRES per node group), ``scontrol show
partition`` (node limits, QOS, over-subscription, the default partition) and ``scontrol show node``
(each node's CPUs, memory, GPUs and features). Output that cannot be parsed is skipped field by field,
never guessed; a missing or failing command is a clear error (``scontrol`` problems only lose the
details it adds).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from torc.config import dump_toml
from torc.core.errors import TorcError
from torc.slurm.profiles import HpcDetection, HpcPartition, HpcProfile, this_host

__all__ = [
    "SlurmCommandError",
    "cluster_profile",
    "parse_gres",
    "parse_key_values",
    "parse_slurm_time",
    "profile_toml",
    "slurm_available",
]

Runner = Callable[[Sequence[str]], str]
SINFO_FORMAT = "%R|%c|%m|%l|%G|%D|%f|%h|%a"
TIMEOUT = 30


class SlurmCommandError(TorcError):
    """A Slurm command is missing, failed or printed something unusable."""

    status_code = 422


def slurm_available() -> bool:
    return shutil.which("sinfo") is not None


def run_slurm(args: Sequence[str]) -> str:
    """Run a Slurm command; its stdout, or a SlurmCommandError saying what went wrong."""
    if shutil.which(args[0]) is None:
        raise SlurmCommandError(f"`{args[0]}` was not found on PATH: run this on a Slurm login node "
                                "(or give an HPC profile with --profile)")
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SlurmCommandError(f"`{' '.join(args)}` did not answer within {TIMEOUT} s") from None
    except OSError as exc:
        raise SlurmCommandError(f"cannot run `{' '.join(args)}`: {exc}") from None
    if out.returncode != 0:
        detail = (out.stderr or out.stdout).strip() or f"exit status {out.returncode}"
        raise SlurmCommandError(f"`{' '.join(args)}` failed: {detail}")
    return out.stdout


# ---- parsing ----------------------------------------------------------------------------------

_UNLIMITED = {"infinite", "unlimited", "none", "n/a", ""}


def parse_slurm_time(text: str) -> int | None:
    """Slurm time limits in seconds: 'infinite' -> None; 'MM', 'MM:SS', 'HH:MM:SS', 'D-HH',
    'D-HH:MM', 'D-HH:MM:SS'. Raises ValueError for anything else."""
    value = text.strip().lower()
    if value in _UNLIMITED:
        return None
    days = 0
    if "-" in value:
        day_text, value = value.split("-", 1)
        if not day_text.isdigit():
            raise ValueError(f"invalid Slurm time {text!r}")
        days = int(day_text)
        parts = value.split(":")
        if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
            raise ValueError(f"invalid Slurm time {text!r}")
        nums = [int(p) for p in parts] + [0] * (3 - len(parts))
        return days * 86400 + nums[0] * 3600 + nums[1] * 60 + nums[2]
    parts = value.split(":")
    if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
        raise ValueError(f"invalid Slurm time {text!r}")
    nums = [int(p) for p in parts]
    if len(nums) == 1:
        return nums[0] * 60
    if len(nums) == 2:
        return nums[0] * 60 + nums[1]
    return nums[0] * 3600 + nums[1] * 60 + nums[2]


def _int(text: Any) -> int | None:
    """'4000' -> 4000, '48+' -> 48, 'UNLIMITED'/'(null)'/garbage -> None."""
    match = re.match(r"^\s*(\d+)", str(text))
    return int(match.group(1)) if match else None


_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_/:.\[\]-]*=")


def parse_key_values(line: str) -> dict[str, str]:
    """One record of `scontrol show ... -o`: Key=Value pairs; a value may contain spaces (OS=Linux 6.1 ...)."""
    out: dict[str, str] = {}
    key = None
    for token in line.split():
        if _KEY.match(token):
            key, _, value = token.partition("=")
            out[key] = value
        elif key is not None:
            out[key] += " " + token
    return out


def parse_gres(text: str) -> tuple[int, str | None]:
    """GPUs in a GRES string: 'gpu:a100:4(S:0-1),nvme:1' -> (4, 'a100'); 'gpu:2' -> (2, None)."""
    count, kind = 0, None
    for item in re.split(r",(?![^()]*\))", text or ""):
        item = re.sub(r"\(.*?\)", "", item).strip()
        if not item.startswith("gpu"):
            continue
        parts = item.split(":")
        if parts[0] != "gpu":
            continue
        number = _int(parts[-1]) if len(parts) > 1 else 1
        if number is None:
            continue
        count += number
        if len(parts) >= 3 and kind is None:
            kind = parts[1]
    return count, kind


def _records(text: str) -> list[dict[str, str]]:
    """`scontrol show X -o` output: one record per line (blank lines and messages without '=' skipped)."""
    return [parse_key_values(line) for line in text.splitlines() if "=" in line]


def _sinfo_groups(text: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 6 or not fields[0]:
            continue
        name = fields[0].rstrip("*")
        try:
            limit: int | None | str = parse_slurm_time(fields[3])
        except ValueError:
            limit = "unknown"
        gpus, gpu_type = parse_gres(fields[4])
        groups.setdefault(name, []).append({
            "cpus": _int(fields[1]), "memory_mb": _int(fields[2]), "time": limit, "gpus": gpus,
            "gpu_type": gpu_type, "nodes": _int(fields[5]) or 0,
            "features": [f for f in (fields[6] if len(fields) > 6 else "").split(",") if f and f != "(null)"],
            "oversubscribe": fields[7] if len(fields) > 7 else "",
        })
    return groups


# ---- building the profile ---------------------------------------------------------------------


def _try(run: Runner, args: Sequence[str], notes: list[str]) -> str:
    try:
        return run(args)
    except SlurmCommandError as exc:
        notes.append(f"{exc.message} (its details are left out)")
        return ""


def _hostname_pattern(hostname: str) -> str:
    parts = hostname.split(".")
    if len(parts) >= 3:
        return r".*\." + r"\.".join(re.escape(p) for p in parts[-2:]) + "$"
    stem = re.sub(r"\d+$", "", parts[0]) or parts[0]
    return "^" + re.escape(stem) + (r"\d*" if stem != parts[0] else "") + r"(\.|$)"


def _profile_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "cluster"


def cluster_profile(name: str | None = None, display_name: str | None = None, *, skip_stdby: bool = False,
                    run: Runner = run_slurm, hostname: str | None = None,
                    notes: list[str] | None = None) -> HpcProfile:
    """An HpcProfile describing the Slurm cluster this machine is part of.

    ``notes`` collects what could not be read (a failed ``scontrol`` for instance). Raises
    SlurmCommandError when ``sinfo`` is missing or fails, or when no partition could be read.
    """
    notes = [] if notes is None else notes
    groups = _sinfo_groups(run(["sinfo", "-h", "-a", "-o", SINFO_FORMAT]))
    if not groups:
        raise SlurmCommandError("`sinfo` listed no partitions that could be read")
    partitions_info = {r.get("PartitionName", ""): r for r in
                       _records(_try(run, ["scontrol", "show", "partition", "-o"], notes))}
    nodes_info = _records(_try(run, ["scontrol", "show", "node", "-o"], notes))
    if name is None:
        config = _try(run, ["scontrol", "show", "config"], notes)
        match = re.search(r"^ClusterName\s*=\s*(.+?)\s*$", config, re.M)
        name = _profile_name(match.group(1) if match else (hostname or this_host()).split(".")[0])
    host = hostname or this_host()

    partitions = []
    for pname, rows in groups.items():
        if skip_stdby and pname.endswith("-stdby"):
            continue
        try:
            partitions.append(_partition(pname, rows, partitions_info.get(pname, {}), nodes_info))
        except ValueError as exc:
            notes.append(f"partition {pname!r} left out: {exc}")
    if not partitions:
        raise SlurmCommandError("no usable partition found in the `sinfo` output: " + "; ".join(notes))
    default = next((p for p, info in partitions_info.items() if info.get("Default") == "YES"), None)
    metadata = {"generated_from": "sinfo/scontrol"}
    if default:
        metadata["default_partition"] = default
    return HpcProfile(
        name=name, display_name=display_name or name.replace("-", " ").replace("_", " ").title(),
        description=f"Generated from the Slurm cluster on {host}",
        detection=[HpcDetection(hostname=_hostname_pattern(host))],
        partitions=partitions, metadata=metadata, source="cluster",
    )


def _partition(name: str, rows: list[dict[str, Any]], info: dict[str, str],
               nodes_info: list[dict[str, str]]) -> HpcPartition:
    nodes = [n for n in nodes_info if name in (n.get("Partitions") or "").split(",")]
    cpus = [c for c in (_int(n.get("CPUEfctv") or n.get("CPUTot")) for n in nodes) if c] or \
        [r["cpus"] for r in rows if r["cpus"]]
    memory = [m for m in (_int(n.get("RealMemory")) for n in nodes) if m] or \
        [r["memory_mb"] for r in rows if r["memory_mb"]]
    if not cpus:
        raise ValueError("no CPU count per node")
    if not memory:
        raise ValueError("no memory per node")
    gres = [parse_gres(n.get("Gres", "")) for n in nodes] or [(r["gpus"], r["gpu_type"]) for r in rows]
    gpus = max((g for g, _ in gres), default=0)
    gpu_type = next((t for g, t in gres if g and t), None)

    walltime: int | None
    if "MaxTime" in info:
        try:
            walltime = parse_slurm_time(info["MaxTime"])
        except ValueError:
            walltime = None
    else:
        times = [r["time"] for r in rows if r["time"] != "unknown"]
        walltime = None if not times or None in times else max(times)  # type: ignore[type-var]

    features = sorted({f for n in nodes for f in (n.get("AvailableFeatures") or "").split(",")
                       if f and f != "(null)"} or {f for r in rows for f in r["features"]})
    oversubscribe = info.get("OverSubscribe") or (rows[0]["oversubscribe"] if rows else "")
    shared = oversubscribe.upper().startswith(("YES", "FORCE"))
    total_nodes = _int(info.get("TotalNodes")) or sum(r["nodes"] for r in rows) or None
    max_nodes = _int(info.get("MaxNodes"))
    min_nodes = _int(info.get("MinNodes"))
    qos = info.get("QoS")
    description = ""
    if len(set(cpus)) > 1 or len(set(memory)) > 1:
        description = (f"nodes differ: {min(cpus)}-{max(cpus)} CPUs, {min(memory)}-{max(memory)} MB; "
                       "the largest are listed")
    return HpcPartition(
        name=name, description=description, cpus_per_node=max(cpus), memory_mb=max(memory),
        max_walltime_secs=walltime or None, max_nodes=total_nodes if not max_nodes else min(max_nodes, total_nodes
                                                                                            or max_nodes),
        min_nodes=min_nodes if min_nodes and min_nodes > 1 else None,
        gpus_per_node=gpus or None, gpu_type=gpu_type, shared=shared,
        default_qos=qos if qos and qos not in ("N/A", "(null)") else None, features=features,
    )


def profile_toml(profile: HpcProfile) -> str:
    """The profile as a `[client.hpc.custom_profiles.<name>]` block for a torc config file."""
    table: dict[str, Any] = {"display_name": profile.display_name, "description": profile.description or None}
    for detection in profile.detection:
        if detection.env_var:
            table["detect_env_var"] = detection.env_var
        if detection.hostname:
            table["detect_hostname"] = detection.hostname
    if profile.default_account:
        table["default_account"] = profile.default_account
    if profile.metadata:
        table["metadata"] = dict(profile.metadata)
    fields = [f for f in HpcPartition.model_fields if f != "features"]
    table["partitions"] = [
        {**{f: getattr(p, f) for f in fields
            if getattr(p, f) not in (None, "") and not (f in ("shared", "requires_explicit_request")
                                                       and not getattr(p, f))},
         **({"features": p.features} if p.features else {})}
        for p in profile.partitions
    ]
    header = [
        f"# HPC profile {profile.name!r}, generated by `torc hpc generate` from sinfo/scontrol.",
        "# Add it to ~/.config/torc/config.toml (or ./torc.toml). Check it before use: set",
        "# requires_explicit_request = true on partitions that should not be picked automatically,",
        "# and describe the partitions. memory_mb is MB per node; max_walltime_secs is seconds",
        "# (left out where the partition has no time limit).",
        "",
    ]
    body = dump_toml({"client": {"hpc": {"custom_profiles": {profile.name: table}}}})
    return "\n".join(header) + body
