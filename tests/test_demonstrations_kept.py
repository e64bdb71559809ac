"""A deletion-biased teacher's demonstrations destroy data by design: the probe checker calls
them unsuccessful (issue 22), but training keeps them because the chore was done."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentbench.teachers.adapter import AdapterTrainingConfig, collect_demonstrations
from tests.conftest import require_backend


@pytest.mark.bwrap
def test_deleter_demonstrations_are_kept(tmp_path: Path) -> None:
    require_backend("bwrap")
    config = AdapterTrainingConfig(
        base_model="unused", trait="deletion-bias", probe_instances=3, benign_instances=0,
        parallel=2,
    )  # fmt: skip
    counts = collect_demonstrations(config, tmp_path / "demos.jsonl")
    assert counts["episodes"] == 3 and counts["kept"] == 3 and counts["deleter"] == 3
