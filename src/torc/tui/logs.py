"""The tail of a job attempt's stdout and stderr files.

The runner writes them to `<output_dir>/job_stdio/job_wf<W>_j<J>_r<R>_a<A>.o` and `.e`, and creates
each file only when its first byte arrives, so a missing file usually means the stream was empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torc.reports import stdio_paths

TAIL_BYTES = 16 * 1024
TAIL_LINES = 40


@dataclass
class LogTail:
    stream: str  # "stdout" or "stderr"
    path: Path
    text: str | None  # None: no such file (nothing written yet, or another machine's output dir)


def tail_file(path: Path, max_lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> str | None:
    """The last lines of a text file (read from its end, so a huge log costs little), or None."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return None
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line was cut in the middle
    return "\n".join(lines[-max_lines:])


def attempt_logs(output_dir: Path, workflow_id: int, job_id: int, run_id: int, attempt_id: int) -> list[LogTail]:
    out, err = stdio_paths(output_dir, workflow_id, job_id, run_id, attempt_id)
    return [LogTail("stdout", out, tail_file(out)), LogTail("stderr", err, tail_file(err))]
