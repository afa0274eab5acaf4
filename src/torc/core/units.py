"""Parsing of memory sizes ("8g"), ISO-8601 durations ("PT30M") and Slurm walltimes."""

from __future__ import annotations

import re

from torc.core.errors import InvalidInputError

_MEMORY = re.compile(r"^\s*(\d+)\s*([kmgt]?)b?\s*$", re.IGNORECASE)
_MEMORY_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_DURATION_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


def parse_memory_bytes(text: str) -> int:
    """'1m' -> 1048576. An integer with an optional k/m/g/t suffix (powers of 1024); bare = bytes."""
    match = _MEMORY.match(str(text))
    if not match:
        raise InvalidInputError(
            f"invalid memory {text!r}: expected an integer with an optional k/m/g/t suffix, e.g. 512m or 8g"
        )
    return int(match.group(1)) * _MEMORY_FACTORS[match.group(2).lower()]


def parse_duration_seconds(text: str) -> float:
    """'P0DT1M' -> 60.0. ISO-8601 durations with weeks, days, hours, minutes and seconds."""
    value = str(text).strip()
    match = _DURATION.match(value)
    if not match or value.upper() in ("P", "PT") or value.upper().endswith("T"):
        raise InvalidInputError(
            f"invalid duration {text!r}: expected an ISO-8601 duration such as PT30M, PT2H or P1DT12H"
        )
    return sum(float(v) * _DURATION_SECONDS[k] for k, v in match.groupdict().items() if v)


def format_duration(seconds: float) -> str:
    """60 -> 'PT1M'; the inverse of parse_duration_seconds for whole seconds."""
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    if time or not days:
        out += "T" + (time or "0S")
    return out


def parse_walltime_seconds(text: str) -> int:
    """Slurm walltime: 'HH:MM:SS', 'MM:SS', 'D-HH:MM:SS' or minutes."""
    value = str(text).strip()
    days = 0
    if "-" in value:
        day_part, value = value.split("-", 1)
        if not day_part.isdigit():
            raise InvalidInputError(f"invalid walltime {text!r}: expected D-HH:MM:SS")
        days = int(day_part)
    parts = value.split(":")
    if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
        raise InvalidInputError(f"invalid walltime {text!r}: expected HH:MM:SS or D-HH:MM:SS")
    nums = [int(p) for p in parts]
    if len(nums) == 1:
        seconds = nums[0] * 60
    elif len(nums) == 2:
        seconds = nums[0] * 60 + nums[1]
    else:
        seconds = nums[0] * 3600 + nums[1] * 60 + nums[2]
    return days * 86400 + seconds
