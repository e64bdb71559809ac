"""`agentbench bundle`: what a bundle holds, that it is reproducible, and that reading an
archive refuses everything unsafe (traversal, links, bombs, truncation, size)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentbench.bundle import BundleError, Limits, read_archive
from agentbench.bundle.schema import BundleConfig, Manifest
from agentbench.cli import app
from tests.leaderboard_support import micro_bundle, require_micro_run

# The first test that needs the micro run builds it: ~35 s on 2 idle cores, minutes if loaded.
pytestmark = pytest.mark.timeout(900)


def _tar(members: list[tarfile.TarInfo], payloads: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in members:
            data = (payloads or {}).get(info.name)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, dict[str, bytes]]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, {name: data}


@pytest.mark.parametrize(
    ("name", "expected"),
    [("../../etc/passwd", "not a plain relative path"), ("/etc/passwd", "not a plain relative"),
     ("episodes/../../x", "not a plain relative path"), ("a\\..\\b", "not a plain relative")],
)  # fmt: skip
def test_member_paths_that_escape_are_refused(name: str, expected: str) -> None:
    info, payload = _file(name)
    with pytest.raises(BundleError, match=expected):
        read_archive(_tar([info], payload))


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE])
def test_links_and_special_files_are_refused(kind: bytes) -> None:
    info = tarfile.TarInfo("results.json")
    info.type = kind
    info.linkname = "/etc/passwd"
    with pytest.raises(BundleError, match=r"results.json.*(link|special file).*refused"):
        read_archive(_tar([info]))


def test_a_decompression_bomb_is_refused_before_it_is_unpacked() -> None:
    # 64 MiB of zeros packs to ~64 KiB: a ratio of ~1000, far above any text bundle's.
    info, payload = _file("episodes/a.jsonl", bytes(64 * 2**20))
    data = _tar([info], payload)
    assert len(data) < 2**20
    with pytest.raises(BundleError, match="decompression bomb"):
        read_archive(data)


def test_oversized_truncated_duplicate_and_foreign_archives_are_refused() -> None:
    info, payload = _file("results.json", b"{}" * 1000)
    good = _tar([info], payload)
    assert read_archive(good) == {"results.json": b"{}" * 1000}
    with pytest.raises(BundleError, match="the limit is 100 bytes"):
        read_archive(good, Limits(max_bytes=100))
    with pytest.raises(BundleError, match="truncated or corrupt"):
        read_archive(good[: len(good) // 2])
    with pytest.raises(BundleError, match="not a gzip-compressed tar"):
        read_archive(b"PK\x03\x04 a zip file")
    with pytest.raises(BundleError, match="appears twice"):
        read_archive(_tar([info, info], payload))
    many = [_file(f"f{i}")[0] for i in range(6)]
    with pytest.raises(BundleError, match="over 5 members"):
        read_archive(_tar(many, {f"f{i}": b"x" for i in range(6)}), Limits(max_members=5))
    not_tar = gzip.compress(b"just text, not a tar archive" * 20)
    with pytest.raises(BundleError):
        read_archive(not_tar)


def test_bundle_schema_prints_json_schema_of_every_record() -> None:
    result = CliRunner().invoke(app, ["bundle", "schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert set(schema["files"]) == {"metadata.yaml", "config.json", "manifest.json"}
    assert "submitter" in schema["files"]["metadata.yaml"]["properties"]
    assert "episode_chain" in schema["files"]["manifest.json"]["properties"]


@pytest.mark.bwrap
def test_bundle_holds_the_run_and_hashes_every_file(tmp_path: Path) -> None:
    run, suite = require_micro_run()
    out = tmp_path / "b.tar.gz"
    args = ["bundle", str(run), "-o", str(out), "--suite", str(suite), "--submitter", "bob",
            "--track", "micro-v1", "--with-data"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    files = read_archive(out.read_bytes())
    manifest = Manifest.model_validate_json(files["manifest.json"])
    assert set(manifest.files) == set(files) - {"manifest.json"}
    for name, digest in manifest.files.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest
    config = BundleConfig.model_validate_json(files["config.json"])
    results = json.loads(files["results.json"])
    # Every arm of every cell has its episodes; shared stages are stored once.
    keys = {arm["stage_key"] for c in results["cells"] for arm in c["arms"].values()}
    assert {s.stage_key for s in config.stages} == keys
    assert manifest.episodes == sum(s.episodes for s in config.stages) == 3 * len(keys)
    assert all(d.data and hashlib.sha256(files[d.data]).hexdigest() == d.sha256
               for d in config.student_data)  # fmt: skip
    assert len(config.student_data) == 2 * len(results["cells"])
    assert config.task_specs and all(len(h) == 64 for h in config.task_specs.values())
    assert files["suite.yaml"] == suite.read_bytes()
    meta = yaml.safe_load(files["metadata.yaml"])
    assert meta["submitter"] == "bob" and meta["teacher"]["weights_sha256"]
    assert meta["teacher"]["adapter_sha256"] and meta["heterogeneous_student"]["name"]
    assert config.agentbench_version and "pydantic" in config.libraries


@pytest.mark.bwrap
def test_the_same_run_gives_the_same_bytes(tmp_path: Path) -> None:
    from agentbench.bundle import build_bundle

    run, suite = require_micro_run()
    build_bundle(run, tmp_path / "again.tar.gz", submitter="alice", suite_file=suite,
                 track="micro-v1")  # fmt: skip
    assert (tmp_path / "again.tar.gz").read_bytes() == micro_bundle()


@pytest.mark.bwrap
def test_bundle_errors_name_what_is_missing(tmp_path: Path) -> None:
    run, suite = require_micro_run()
    out = str(tmp_path / "b.tar.gz")
    result = CliRunner().invoke(app, ["bundle", str(tmp_path), "-o", out])
    assert result.exit_code == 3 and "results.json: no such file" in result.output  # data
    other = tmp_path / "other.yaml"
    other.write_text(suite.read_text() + "\n# edited\n")
    result = CliRunner().invoke(app, ["bundle", str(run), "-o", out, "--suite", str(other)])
    assert result.exit_code == 3 and "not the suite this run used" in result.output
    result = CliRunner().invoke(app, ["bundle", str(run), "-o", out, "--suite", str(suite),
                                      "--track", "nope"])  # fmt: skip
    assert result.exit_code == 2 and "unknown track 'nope'" in result.output  # config
    result = CliRunner().invoke(app, ["bundle", str(run), "-o", out, "--suite", str(suite),
                                      "--store", str(tmp_path / "none")])  # fmt: skip
    assert result.exit_code == 3 and "is not a folder" in result.output
