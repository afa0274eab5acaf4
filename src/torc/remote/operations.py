"""What `torc remote` does on one host. Every function returns an Outcome (never raises for a host
problem), so one unreachable or broken host never stops the work on the others.

Remote files, in the output directory D (relative paths are from the remote home directory):
  D/torc_worker_<wf>.pid   the worker's PID (it leads its own process group)
  D/torc_worker_<wf>.log   its stdout and stderr
  D/torc_worker_<wf>.exit  its exit status, once it has ended by itself
"""

from __future__ import annotations

import re
import shlex
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torc.remote.ssh import SshError, SshSettings, scp_from, ssh_run
from torc.remote.workers import Worker


@dataclass
class Outcome:
    worker: Worker
    ok: bool
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"worker": self.worker.original, "ok": self.ok, "message": self.message, **self.data}


def output_dir_for(template: str, worker: Worker) -> str:
    """The remote output directory: {host}, {port} and {user} in it are filled in per worker, so
    several workers on one machine can keep separate directories."""
    host = re.sub(r"[^A-Za-z0-9._-]", "_", worker.host)  # IPv6 colons (and zone %) made path-safe
    return (template.replace("{host}", host)
            .replace("{port}", str(worker.port or 22)).replace("{user}", worker.user or ""))


@dataclass(frozen=True)
class Paths:
    dir: str
    pid: str
    log: str
    exit: str

    @classmethod
    def of(cls, output_dir: str, workflow_id: int) -> Paths:
        base = f"{output_dir.rstrip('/') or '/'}/torc_worker_{workflow_id}"
        return cls(output_dir, f"{base}.pid", f"{base}.log", f"{base}.exit")


q = shlex.quote


def _sh(script: str) -> str:
    """Run `script` with sh whatever the remote login shell is."""
    return "sh -c " + q(script)


def check_connectivity(settings: SshSettings, worker: Worker) -> Outcome:
    try:
        ssh_run(settings, worker, "true", timeout=settings.connect_timeout + 30, what="ssh check")
    except SshError as exc:
        return Outcome(worker, False, exc.message)
    return Outcome(worker, True, "reachable")


def remote_version(settings: SshSettings, worker: Worker, torc_path: str) -> Outcome:
    """`torc --version` on the host: data["version"], or why it could not be run."""
    script = f"command -v {q(torc_path)} >/dev/null 2>&1 || exit 127; exec {q(torc_path)} --version"
    try:
        proc = ssh_run(settings, worker, _sh(script), timeout=settings.connect_timeout + 60, check=False,
                       what="torc --version")
    except SshError as exc:
        return Outcome(worker, False, exc.message)
    if proc.returncode == 127:
        return Outcome(worker, False, f"{torc_path!r} not found on the PATH of {worker} "
                                      "(install torc there or give --torc-path)")
    words = proc.stdout.strip().split()
    if proc.returncode != 0 or not words:
        return Outcome(worker, False, f"`{torc_path} --version` failed on {worker}: "
                                      f"{(proc.stderr or proc.stdout).strip()[-300:]}")
    return Outcome(worker, True, words[-1], {"version": words[-1]})


def worker_command(torc_path: str, url: str, workflow_id: int, output_dir: str, poll_interval: float,
                   num_cpus: int | None = None, memory_gb: float | None = None, num_gpus: int | None = None,
                   max_parallel_jobs: int | None = None) -> list[str]:
    """The `torc run` command line a remote worker runs."""
    cmd = [torc_path, "--url", url, "run", str(workflow_id), "--output-dir", output_dir,
           "--poll-interval", f"{poll_interval:g}"]
    for flag, value in (("--num-cpus", num_cpus), ("--memory-gb", memory_gb), ("--num-gpus", num_gpus),
                        ("--max-parallel-jobs", max_parallel_jobs)):
        if value is not None:
            cmd += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return cmd


def _state_script(paths: Paths) -> str:
    """Prints one line: `none`, `running PID`, `exited PID CODE` or `stopped PID`. Running: the
    PID is alive and is our wrapper (not a reused PID), or its process group still has members."""
    pid, exit_file = q(paths.pid), q(paths.exit)
    return (f"P=$(cat {pid} 2>/dev/null | tr -dc 0-9); "
            'if [ -z "$P" ]; then echo none; '
            'elif { kill -0 "$P" 2>/dev/null && { [ ! -r /proc/$P/cmdline ] || '
            'grep -q torc_worker_ /proc/$P/cmdline 2>/dev/null; }; } || kill -s 0 -- -"$P" 2>/dev/null; '
            'then echo "running $P"; '
            f'elif [ -f {exit_file} ]; then echo "exited $P $(cat {exit_file})"; '
            'else echo "stopped $P"; fi')


def _parse_state(worker: Worker, line: str) -> Outcome:
    words = line.split()
    kind = words[0] if words else "none"
    if kind == "running":
        return Outcome(worker, True, f"running (PID {words[1]})", {"state": "running", "pid": int(words[1])})
    if kind == "exited":
        code = int(words[2]) if len(words) > 2 and words[2].lstrip("-").isdigit() else None
        state = "done" if code == 0 else "failed"
        return Outcome(worker, True, f"{state} (exit status {code})",
                       {"state": state, "pid": int(words[1]), "exit_code": code})
    if kind == "stopped":
        return Outcome(worker, True, "stopped (killed or lost before it finished)",
                       {"state": "stopped", "pid": int(words[1])})
    return Outcome(worker, True, "not started (no PID file)", {"state": "not started"})


def worker_state(settings: SshSettings, worker: Worker, paths: Paths) -> Outcome:
    try:
        proc = ssh_run(settings, worker, _sh(_state_script(paths)), what="status check")
    except SshError as exc:
        return Outcome(worker, False, exc.message, {"state": "unreachable"})
    return _parse_state(worker, proc.stdout.strip())


def start_worker(settings: SshSettings, worker: Worker, paths: Paths, command: list[str],
                 settle_seconds: float = 1.0, credentials: tuple[str, str] | None = None) -> Outcome:
    """mkdir the output dir, refuse if a worker of this workflow already runs there, start `command`
    under nohup in its own session (PID, log and exit files as above), and check it did not die at once.

    credentials (default: TORC_USER/TORC_PASSWORD of this process): the worker's server login. The
    password travels on ssh's stdin and reaches the worker as TORC_PASSWORD in its environment."""
    from torc.client.http import auth_from_env

    credentials = credentials or auth_from_env()
    cmd = " ".join(q(c) for c in command)
    inner = f"echo $$ > {q(paths.pid)}; {cmd}; echo $? > {q(paths.exit)}"
    login = ""
    if credentials is not None:
        login = f"IFS= read -r TORC_PASSWORD; export TORC_PASSWORD; TORC_USER={q(credentials[0])}; export TORC_USER; "
    script = (f"{login}mkdir -p {q(paths.dir)} || exit 3; "
              f"S=$({_state_script(paths)}); case $S in running*) echo \"$S\"; exit 4;; esac; "
              f"rm -f {q(paths.pid)} {q(paths.exit)}; "
              "SETSID=$(command -v setsid || true); "
              f"nohup $SETSID sh -c {q(inner)} > {q(paths.log)} 2>&1 < /dev/null & "
              f"i=0; while [ ! -s {q(paths.pid)} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; "
              f"cat {q(paths.pid)}")
    try:
        proc = ssh_run(settings, worker, _sh(script), check=False, what="starting the worker",
                       stdin=f"{credentials[1]}\n" if credentials is not None else None)
    except SshError as exc:
        return Outcome(worker, False, exc.message)
    out = proc.stdout.strip()
    if proc.returncode == 3:
        return Outcome(worker, False, f"cannot create {paths.dir}: {proc.stderr.strip()}")
    if proc.returncode == 4:
        return Outcome(worker, False, f"a worker for this workflow is already {out} in {paths.dir}; "
                                      "stop it first (torc remote stop)")
    if proc.returncode != 0 or not out.isdigit():
        return Outcome(worker, False, f"could not start the worker: {(proc.stderr or out).strip()[-300:]}")
    pid = int(out)
    time.sleep(settle_seconds)
    state = worker_state(settings, worker, paths)
    if state.data.get("state") in ("failed", "stopped"):
        tail = log_tail(settings, worker, paths)
        return Outcome(worker, False, f"the worker exited at once ({state.message}); log {paths.log}:\n{tail}",
                       {"pid": pid})
    return Outcome(worker, True, f"started (PID {pid}), log {paths.log}", {"pid": pid, "log": paths.log})


def log_tail(settings: SshSettings, worker: Worker, paths: Paths, lines: int = 10) -> str:
    try:
        return ssh_run(settings, worker, f"tail -n {lines} {q(paths.log)}", check=False).stdout.rstrip()
    except SshError as exc:
        return f"(log unavailable: {exc.message})"


def stop_worker(settings: SshSettings, worker: Worker, paths: Paths, force: bool = False) -> Outcome:
    """SIGTERM (SIGKILL with force) to the worker's process group."""
    sig = "KILL" if force else "TERM"
    script = (f"S=$({_state_script(paths)}); set -- $S; "
              'if [ "$1" != running ]; then echo "$S"; exit 0; fi; '
              f'kill -s {sig} -- -"$2" 2>/dev/null || kill -s {sig} "$2"; echo "signalled $2"')
    try:
        proc = ssh_run(settings, worker, _sh(script), what="stopping the worker")
    except SshError as exc:
        return Outcome(worker, False, exc.message)
    words = proc.stdout.split()
    if words and words[0] == "signalled":
        return Outcome(worker, True, f"sent SIG{sig} to PID {words[1]}", {"pid": int(words[1]), "signal": sig})
    state = _parse_state(worker, proc.stdout.strip())
    return Outcome(worker, True, f"not running: {state.message}", state.data)


def _safe_to_delete(directory: str) -> bool:
    clean = directory.strip().rstrip("/")
    return clean not in ("", ".", "~", "..", "$HOME") and not clean.startswith("-")


def delete_logs(settings: SshSettings, worker: Worker, paths: Paths) -> Outcome:
    """Remove the remote output directory (refused while a worker runs there)."""
    if not _safe_to_delete(paths.dir):
        return Outcome(worker, False, f"refusing to delete {paths.dir!r}")
    script = (f"S=$({_state_script(paths)}); case $S in running*) echo \"$S\"; exit 4;; esac; "
              f"[ -d {q(paths.dir)} ] || {{ echo missing; exit 0; }}; rm -rf -- {q(paths.dir)} && echo deleted")
    try:
        proc = ssh_run(settings, worker, _sh(script), check=False, what="deleting the logs")
    except SshError as exc:
        return Outcome(worker, False, exc.message)
    if proc.returncode == 4:
        return Outcome(worker, False, f"a worker is still {proc.stdout.strip()}; stop it first")
    if proc.returncode != 0:
        return Outcome(worker, False, f"could not delete {paths.dir}: {proc.stderr.strip()}")
    if proc.stdout.strip() == "missing":
        return Outcome(worker, True, f"no directory {paths.dir}")
    return Outcome(worker, True, f"deleted {paths.dir}")


def collect_logs(settings: SshSettings, worker: Worker, paths: Paths, local_dir: Path,
                 delete: bool = False) -> Outcome:
    """Pack the remote output directory, scp it here, unpack it into LOCAL_DIR/<worker>/ and
    (with delete) remove the remote directory once that has worked."""
    target = local_dir / worker.label
    script = (f"[ -d {q(paths.dir)} ] || {{ echo missing; exit 0; }}; "
              "T=$(mktemp /tmp/torc_logs_XXXXXXXX) || exit 3; "
              f"tar -czf \"$T\" -C {q(paths.dir)} . || {{ rm -f \"$T\"; exit 3; }}; echo \"$T\"")
    try:
        proc = ssh_run(settings, worker, _sh(script), check=False, what="packing the logs", timeout=600)
    except SshError as exc:
        return Outcome(worker, False, exc.message)
    remote_tar = proc.stdout.strip()
    if proc.returncode != 0 or not remote_tar:
        return Outcome(worker, False, f"could not pack {paths.dir}: {proc.stderr.strip()[-300:]}")
    if remote_tar == "missing":
        return Outcome(worker, True, f"no directory {paths.dir}", {"files": 0})
    try:
        with tempfile.TemporaryDirectory(prefix="torc-logs-") as tmp:
            local_tar = Path(tmp) / "logs.tar.gz"
            scp_from(settings, worker, remote_tar, str(local_tar))
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(local_tar) as tar:
                members = [m for m in tar.getmembers() if m.isfile()]
                tar.extractall(target, filter="data")
    except SshError as exc:
        return Outcome(worker, False, exc.message)
    except (OSError, tarfile.TarError) as exc:
        return Outcome(worker, False, f"could not unpack the logs into {target}: {exc}")
    finally:
        try:
            ssh_run(settings, worker, f"rm -f {q(remote_tar)}", check=False)
        except SshError:
            pass
    message = f"{len(members)} files to {target}"
    if delete:
        deleted = delete_logs(settings, worker, paths)
        if not deleted.ok:
            return Outcome(worker, False, f"{message}, but {deleted.message}",
                           {"files": len(members), "local_dir": str(target)})
        message += f"; {deleted.message}"
    return Outcome(worker, True, message, {"files": len(members), "local_dir": str(target)})
