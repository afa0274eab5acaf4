"""Every spec example in docs/specs.md loads, resolves and plans."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from torc.core.graph import stages
from torc.spec.load import parse_file, spec_from_data
from torc.spec.resolve import edges, resolve

DOC = Path(__file__).resolve().parents[2] / "docs" / "specs.md"
BLOCKS = re.findall(r"```(yaml|kdl)\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize(("fmt", "text"), BLOCKS, ids=[f"{fmt}-{i}" for i, (fmt, _) in enumerate(BLOCKS)])
def test_doc_example_loads(tmp_path, fmt, text):
    path = tmp_path / f"example.{fmt}"
    path.write_text(text)
    data, source = parse_file(path)
    spec, broken = spec_from_data(data, source)
    jobs = resolve(spec, source, broken)
    plan = stages({name: b for name, b in edges(jobs).items()})
    assert sum(len(s) for s in plan) == len(jobs) > 0
    if spec.name == "sweep":
        assert len(jobs) == 5 and len(plan) == 2
    if spec.name == "fan_out_fan_in":
        assert [sorted(s) for s in plan] == [["prepare"], ["plots", "stats"], ["report"]]
