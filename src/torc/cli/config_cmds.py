"""`torc config`: show the effective configuration, where its files are, create one, check them all."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from torc.config import (
    ENV_PREFIX,
    ENV_SEPARATOR,
    ConfigError,
    ConfigPaths,
    config_paths,
    default_toml,
    dump_toml,
    resolve_config,
    validate_config,
)


def _paths(ctx: click.Context) -> ConfigPaths:
    """Explicit paths when ctx.obj is a ConfigPaths or carries one as `config_paths` (tests, or a Session
    that was given them), else the standard locations."""
    found = ctx.find_object(ConfigPaths) or getattr(ctx.find_root().obj, "config_paths", None)
    return found if isinstance(found, ConfigPaths) else ConfigPaths.discover()


def _global_format(ctx: click.Context) -> str | None:
    """The `torc -f` format, when the main group put a Session (or anything with .fmt) in ctx.obj."""
    return getattr(ctx.find_root().obj, "fmt", None)


def _overrides(ctx: click.Context) -> dict[str, Any] | None:
    """Command-line overrides, if the main group recorded them on its Session as `config_overrides`."""
    return getattr(ctx.find_root().obj, "config_overrides", None)


def _env_names() -> list[str]:
    return sorted(n for n in os.environ
                  if n.upper().startswith(ENV_PREFIX) and ENV_SEPARATOR in n[len(ENV_PREFIX):])


@click.group()
def config() -> None:
    """Show, locate, create and check configuration files.

    \b
    Layers, lowest priority first:
      built-in defaults < /etc/torc/config.toml < ~/.config/torc/config.toml
      < ./torc.toml < TORC_<SECTION>__<KEY> environment variables < command-line flags
    """


@config.command()
@click.option("-f", "--format", "fmt", type=click.Choice(["toml", "json"]), default=None,
              help="Output format [default: toml, or json with `torc -f json`].")
@click.option("--sources", is_flag=True, help="Say which layer each value comes from.")
@click.pass_context
def show(ctx: click.Context, fmt: str | None, sources: bool) -> None:
    """Print the effective configuration (all layers merged)."""
    fmt = fmt or ("json" if _global_format(ctx) == "json" else "toml")
    try:
        resolved = resolve_config(env=os.environ, overrides=_overrides(ctx), paths=_paths(ctx))
    except ConfigError as exc:
        raise click.ClickException(f"{exc}\n(`torc config validate` lists every problem)") from None
    if fmt == "json":
        data: dict[str, Any] = resolved.config.model_dump(mode="json")
        if sources:
            data = {"config": data, "sources": resolved.sources}
        click.echo(json.dumps(data, indent=2))
        return
    files = {layer.name: layer.path for layer in resolved.layers}

    def annotate(key: str) -> str | None:
        layer = resolved.sources.get(key)
        if layer is None:
            return None
        return f"{layer} ({files[layer]})" if files.get(layer) else layer

    click.echo(dump_toml(resolved.config.model_dump(), show_unset=True, annotate=annotate if sources else None),
               nl=False)


@config.command()
@click.pass_context
def paths(ctx: click.Context) -> None:
    """List the config files and whether each exists.

    Lowest priority first; environment variables and command-line flags come after them.
    """
    layers = config_paths(paths=_paths(ctx))
    env_names = _env_names()
    if _global_format(ctx) == "json":
        click.echo(json.dumps({
            "files": [{"layer": lay.name, "path": str(lay.path) if lay.path else None, "exists": lay.exists}
                      for lay in layers],
            "environment": env_names,
        }, indent=2))
        return
    rows = [(lay.name, str(lay.path) if lay.path else "(none)", "exists" if lay.exists else "not found")
            for lay in layers]
    width = max(len(r[1]) for r in rows)
    for name, path, state in rows:
        click.echo(f"{name:<7} {path:<{width}}  {state}")
    env_state = f"{len(env_names)} set: {', '.join(env_names)}" if env_names else "none set"
    click.echo(f"{'env':<7} {ENV_PREFIX}<SECTION>__<KEY> variables ({env_state})")
    click.echo(f"{'cli':<7} command-line flags")


@config.command()
@click.option("--system", "system", is_flag=True, help="Write /etc/torc/config.toml (usually needs root).")
@click.option("--user", "user", is_flag=True, help="Write ~/.config/torc/config.toml.")
@click.option("--local", "local", is_flag=True, help="Write ./torc.toml.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.pass_context
def init(ctx: click.Context, system: bool, user: bool, local: bool, force: bool) -> None:
    """Write a commented default config file.

    The file documents every key with its default, all commented out, so it changes nothing until
    you uncomment a key. Choose one layer: --system, --user or --local.
    """
    chosen = [name for name, flag in (("system", system), ("user", user), ("local", local)) if flag]
    if len(chosen) != 1:
        raise click.UsageError("choose exactly one of --system, --user or --local")
    layer = chosen[0]
    path = _paths(ctx).path(layer)
    if path is None:
        raise click.ClickException(f"there is no {layer} configuration file on this system")
    if path.exists() and not force:
        raise click.ClickException(f"{path} already exists; pass --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(default_toml(), encoding="utf-8")
    except PermissionError:
        hint = " (the system file usually needs root; try --user or --local)" if layer == "system" else ""
        raise click.ClickException(f"cannot write {path}: permission denied{hint}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    click.echo(f"Wrote the default {layer} configuration to {path}")
    click.echo("Every key is commented out; uncomment the ones you want to change.")


@config.command()
@click.pass_context
def validate(ctx: click.Context) -> None:
    """Check every layer and list every problem.

    Reads every config file and TORC_<SECTION>__<KEY> environment variable, prints each problem
    (file or variable, key, what is wrong) and exits 1 if there is any.
    """
    config_files = _paths(ctx)
    layers = config_paths(paths=config_files)
    errors = validate_config(env=os.environ, overrides=_overrides(ctx), paths=config_files)
    checked = [str(lay.path) for lay in layers if lay.exists]
    env_names = _env_names()
    if _global_format(ctx) == "json":
        click.echo(json.dumps({
            "valid": not errors,
            "files": checked,
            "environment": env_names,
            "errors": [{"source": e.source, "key": e.key, "problem": e.problem, "message": str(e)} for e in errors],
        }, indent=2))
    else:
        for err in errors:
            click.secho(f"error: {err}", fg="red", err=True)
        what = ", ".join(checked) if checked else "no configuration files"
        if env_names:
            what += f"; {len(env_names)} environment variable{'s' if len(env_names) != 1 else ''}"
        if errors:
            click.secho(f"configuration is invalid: {len(errors)} error{'s' if len(errors) != 1 else ''} "
                        f"(checked {what})", fg="red", err=True)
        else:
            click.echo(f"configuration is valid (checked {what})")
    if errors:
        ctx.exit(1)


__all__ = ["config"]
