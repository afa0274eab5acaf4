"""`torc hpc`: HPC profiles (the partitions of a cluster) used to plan Slurm allocations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from torc.cli.common import note, pass_session
from torc.cli.output import emit
from torc.cli.session import Session
from torc.core.errors import InvalidInputError
from torc.core.units import parse_memory_bytes
from torc.slurm.profiles import HpcPartition, HpcProfile, ProfileRegistry, load_registry, parse_walltime_text

PROFILE_COLUMNS = ["name", "display_name", "partitions", "detected", "source"]
PARTITION_COLUMNS = ["name", "cpus_per_node", "memory", "max_walltime", "gpus", "shared", "notes"]


def registry(session: Session) -> ProfileRegistry:
    """The known profiles (configuration problems that do not stop the command are noted on stderr)."""
    reg = load_registry(session.config())
    for warning in reg.warnings:
        note(f"Warning: {warning}")
    return reg


def resolve_profile(session: Session, name: str | None, *, live_fallback: bool = True,
                    reg: ProfileRegistry | None = None) -> HpcProfile:
    """The profile NAME, else the one detected here, else (with live_fallback) one built from the live
    Slurm cluster; InvalidInputError when there is none."""
    reg = reg or registry(session)
    if name:
        return reg.get(name)
    detected = reg.detect()
    if detected is not None:
        return detected
    if live_fallback:
        from torc.slurm.detect import cluster_profile, slurm_available

        if slurm_available():
            notes: list[str] = []
            profile = cluster_profile(notes=notes)
            for text in notes:
                note(f"Note: {text}")
            return profile
    raise InvalidInputError("no HPC profile matches this machine and no Slurm cluster was found: pass --profile "
                            f"(known: {', '.join(reg.names())}) or define one in client.hpc.custom_profiles")


def _memory_text(mb: int) -> str:
    return f"{mb / 1000:g} GB" if mb >= 1000 else f"{mb} MB"


def partition_row(p: HpcPartition) -> dict[str, Any]:
    notes = []
    if p.requires_explicit_request:
        notes.append("explicit request")
    if p.min_nodes:
        notes.append(f"min {p.min_nodes} nodes")
    if p.node_limit:
        notes.append(f"max {p.node_limit} nodes")
    return {"name": p.name, "cpus_per_node": p.cpus_per_node, "memory": _memory_text(p.memory_mb),
            "max_walltime": p.walltime_str(),
            "gpus": f"{p.gpus_per_node}" + (f" ({p.gpu_type})" if p.gpu_type else "") if p.gpus_per_node else "-",
            "shared": "yes" if p.shared else "no", "notes": ", ".join(notes)}


@click.group()
def hpc() -> None:
    """HPC profiles: the partitions of a cluster, used to plan Slurm allocations."""


@hpc.command("list")
@pass_session
def hpc_list(session: Session) -> None:
    """List the known HPC profiles (built-in and from the configuration)."""
    reg = registry(session)
    detected = reg.detect()
    rows = [{"name": p.name, "display_name": p.display_name, "partitions": len(p.partitions),
             "detected": detected is not None and p.name == detected.name, "source": p.source} for p in reg.profiles]
    if session.fmt == "json":
        emit("json", rows)
    else:
        emit("table", [{**r, "detected": "yes" if r["detected"] else ""} for r in rows], PROFILE_COLUMNS,
             "HPC profiles")


@hpc.command("show")
@click.argument("name")
@pass_session
def hpc_show(session: Session, name: str) -> None:
    """Show one profile and its partitions."""
    reg = registry(session)
    profile = reg.get(name)
    if session.fmt == "json":
        emit("json", profile.to_dict())
        return
    detection = " or ".join(d.describe() for d in profile.detection) or "never (select it with --profile)"
    rows = [{"field": "name", "value": profile.name}, {"field": "display_name", "value": profile.display_name},
            {"field": "description", "value": profile.description}, {"field": "detected by", "value": detection},
            {"field": "detected here", "value": "yes" if profile.detect() else "no"},
            {"field": "default_account", "value": reg.account_for(profile) or ""},
            {"field": "charge factors", "value": f"CPU {profile.charge_factor_cpu:g}, GPU {profile.charge_factor_gpu:g} "
                                                 "per node-hour"},
            {"field": "source", "value": profile.source},
            *({"field": k, "value": v} for k, v in profile.metadata.items())]
    emit("table", rows, ["field", "value"], f"HPC profile {profile.name}")
    emit("table", [partition_row(p) for p in profile.partitions], PARTITION_COLUMNS, "partitions")


@hpc.command("detect")
@click.option("--no-live", is_flag=True, help="Only the known profiles; do not read the live Slurm cluster.")
@pass_session
def hpc_detect(session: Session, no_live: bool) -> None:
    """Which HPC profile applies here: a known profile whose detection matches, else one built from
    the live Slurm cluster (sinfo/scontrol)."""
    reg = registry(session)
    profile = reg.detect()
    how = None
    if profile is not None:
        how = " or ".join(d.describe() for d in profile.detection)
    elif not no_live:
        try:
            profile = resolve_profile(session, None, reg=reg)
            how = "built from the live Slurm cluster (sinfo/scontrol); save it with `torc hpc generate`"
        except InvalidInputError:
            profile = None
    if session.fmt == "json":
        emit("json", {"detected": profile is not None, "profile": profile.to_dict() if profile else None,
                      "how": how})
        return
    if profile is None:
        click.echo(f"No HPC profile detected (known: {', '.join(reg.names())}). Pass --profile NAME to commands "
                   "that need one, or add a custom profile (`torc hpc generate` writes one on a Slurm cluster).")
        return
    click.echo(f"Detected HPC profile: {profile.name} ({profile.display_name}), {how}.")
    emit("table", [partition_row(p) for p in profile.partitions], PARTITION_COLUMNS, "partitions")


@hpc.command("partitions")
@click.argument("name", required=False)
@click.option("--gpu", "kind", flag_value="gpu", help="Only partitions with GPUs.")
@click.option("--cpu", "kind", flag_value="cpu", help="Only partitions without GPUs.")
@click.option("--shared", is_flag=True, help="Only partitions whose nodes can be shared.")
@pass_session
def hpc_partitions(session: Session, name: str | None, kind: str | None, shared: bool) -> None:
    """List the partitions of profile NAME (default: the one detected here)."""
    profile = resolve_profile(session, name)
    parts = profile.gpu_partitions() if kind == "gpu" else profile.cpu_partitions() if kind == "cpu" \
        else list(profile.partitions)
    if shared:
        parts = [p for p in parts if p.shared]
    if session.fmt == "json":
        emit("json", [p.model_dump(mode="json") for p in parts])
    else:
        emit("table", [partition_row(p) for p in parts], PARTITION_COLUMNS, f"partitions of {profile.name}")


def _memory_mb(text: str) -> int:
    value = text.strip()
    if value.isdigit():
        raise click.BadParameter(f"{text!r} has no unit: write e.g. 512m or 64g")
    try:
        return -(-parse_memory_bytes(value) // (1024 * 1024))
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message) from None


@hpc.command("match")
@click.argument("name", required=False)
@click.option("--profile", "profile_name", help="Profile to match against (default: the one detected here).")
@click.option("--cpus", type=click.IntRange(min=0), default=1, show_default=True, help="CPUs per job.")
@click.option("--memory", default="1g", show_default=True, help="Memory per job, e.g. 512m, 64g.")
@click.option("--walltime", default="1h", show_default=True, help="Runtime, e.g. 30m, 2h, 04:00:00, 1-00:00:00.")
@click.option("--gpus", type=click.IntRange(min=0), default=0, show_default=True, help="GPUs per job.")
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True, help="Nodes per job.")
@pass_session
def hpc_match(session: Session, name: str | None, profile_name: str | None, cpus: int, memory: str, walltime: str,
              gpus: int, nodes: int) -> None:
    """Partitions that can run a job with these needs; the one the planner would pick is marked best."""
    if name and profile_name and name != profile_name:
        raise click.UsageError(f"profile given twice: {name!r} and --profile {profile_name!r}")
    profile = resolve_profile(session, name or profile_name)
    memory_mb = _memory_mb(memory)
    try:
        seconds = parse_walltime_text(walltime)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message, param_hint="--walltime") from None
    matching = profile.find_matching_partitions(cpus, memory_mb, seconds, gpus, nodes)
    best = profile.find_best_partition(cpus, memory_mb, seconds, gpus, nodes)
    if session.fmt == "json":
        emit("json", {"profile": profile.name, "best": best.name if best else None,
                      "request": {"cpus": cpus, "memory_mb": memory_mb, "walltime_secs": seconds, "gpus": gpus,
                                  "nodes": nodes},
                      "partitions": [p.model_dump(mode="json") for p in matching]})
        return
    if not matching:
        click.echo(f"No partition of {profile.name} fits {cpus} CPUs, {memory_mb} MB, {gpus} GPUs, "
                   f"{nodes} node(s) for {walltime}:")
        for p in profile.partitions:
            click.echo(f"  {p.name}: {p.why_not(cpus, memory_mb, seconds, gpus, nodes)}")
        raise SystemExit(1)
    rows = [{**partition_row(p), "best": "yes" if best and p.name == best.name else ""} for p in matching]
    emit("table", rows, ["best", *PARTITION_COLUMNS], f"partitions of {profile.name} that fit")


@hpc.command("generate")
@click.option("--name", help="Profile name (default: the Slurm cluster name).")
@click.option("--display-name", help="Human-readable name.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the TOML here instead of stdout.")
@click.option("--skip-stdby", is_flag=True, help="Leave out standby partitions (names ending in -stdby).")
@pass_session
def hpc_generate(session: Session, name: str | None, display_name: str | None, output: Path | None,
                 skip_stdby: bool) -> None:
    """Write a custom HPC profile (TOML for the torc config file) describing the live Slurm cluster."""
    from torc.slurm.detect import cluster_profile, profile_toml

    notes: list[str] = []
    profile = cluster_profile(name, display_name, skip_stdby=skip_stdby, notes=notes)
    for text in notes:
        note(f"Note: {text}")
    if session.fmt == "json":
        emit("json", profile.to_dict())
        return
    text = profile_toml(profile)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        note(f"Wrote HPC profile {profile.name!r} ({len(profile.partitions)} partitions) to {output}.")
