"""The rendered report of a fixed results.json does not change by accident.

tests/data/report_golden holds two results.json fixtures (the report tests' suite and the
sensitivity suite: homogeneous and heterogeneous cells, seeds, aggregates, CMH, a dose axis,
null-teacher contrasts) with the report.md and report.html the single-module report rendered
from them before it became a package (make_golden.py there regenerates them). report.md must
match byte for byte; report.html too, with each embedded PNG replaced by its sha256; the PNGs
themselves are compared where matplotlib is the version that drew the goldens (its rasteriser
changes pixels between releases).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import matplotlib
import pytest

from agentbench import provenance
from agentbench.experiments.report import load_results, write_report
from tests.data.report_golden.make_golden import REVISION, strip_images

GOLDEN = Path(__file__).resolve().parent / "data" / "report_golden"


@pytest.mark.parametrize("name", ["unit", "sensitivity"])
def test_report_matches_the_golden_files(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = GOLDEN / name
    monkeypatch.setattr(provenance, "git_revision", lambda: REVISION)
    paths = write_report(load_results(golden / "results.json"), tmp_path)

    assert paths["report.md"].read_bytes() == (golden / "report.md").read_bytes()
    page, hashes = strip_images(paths["report.html"].read_text())
    assert page == (golden / "report.html").read_text()

    meta = json.loads((golden / "images.json").read_text())
    pngs = {
        p: hashlib.sha256(paths[p].read_bytes()).hexdigest() for p in paths if p.endswith(".png")
    }
    assert sorted(pngs) == sorted(meta["png_sha256"])
    if matplotlib.__version__ != meta["matplotlib"]:
        pytest.skip(
            f"PNG bytes pinned for matplotlib {meta['matplotlib']}, not {matplotlib.__version__}"
        )
    assert pngs == meta["png_sha256"]
    assert sorted(hashes.values()) == sorted(pngs.values())  # the page embeds these plots
