"""The model registry: on-demand atomic builds into the cache, resolution, hashes, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import agentbench.models as models
from agentbench.cli.models import app
from agentbench.models import (
    MARKER,
    ModelError,
    ModelRecipe,
    build_model,
    is_built,
    model_dir,
    resolve_model,
    weights_sha256,
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("AGENTBENCH_CACHE", str(cache))
    return cache


def register(monkeypatch: pytest.MonkeyPatch, recipe: ModelRecipe) -> None:
    monkeypatch.setitem(models._REGISTRY, recipe.name, recipe)


def fake_model(dest: Path, payload: bytes = b"weights") -> None:
    (dest / "config.json").write_text("{}")
    (dest / "model.safetensors").write_bytes(payload)


def test_registry_lists_builtin_models() -> None:
    names = [r.name for r in models.list_models()]
    assert {"smollm2-135m", "tiny-random-llama"} <= set(names)
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        models.get_recipe("nope")


def test_tiny_model_builds_once_and_deterministically(private_cache: Path) -> None:
    pytest.importorskip("transformers")
    assert not is_built("tiny-random-llama")
    path = resolve_model("tiny-random-llama")
    assert path == private_cache / "models" / "tiny-random-llama"
    marker = json.loads((path / MARKER).read_text())
    assert marker["weights_sha256"] == weights_sha256(path)
    assert (path / "tokenizer.json").is_file() and (path / "config.json").is_file()
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny-random-llama") == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp, "rebuilt a built model"
    first_hash = marker["weights_sha256"]
    rebuilt = build_model("tiny-random-llama", force=True)
    assert json.loads((rebuilt / MARKER).read_text())["weights_sha256"] == first_hash
    assert models.model_weights_sha256(rebuilt) == first_hash


def test_failed_build_leaves_nothing(monkeypatch: pytest.MonkeyPatch, private_cache: Path) -> None:
    def broken(dest: Path) -> None:
        fake_model(dest)
        raise RuntimeError("conversion exploded")

    register(monkeypatch, ModelRecipe("broken", "fails", broken))
    with pytest.raises(RuntimeError, match="exploded"):
        resolve_model("broken")
    assert not is_built("broken")
    leftovers = [
        p.name for p in (private_cache / "models").iterdir() if not p.name.endswith("lock")
    ]
    assert leftovers in ([], ["broken"])
    assert not any((private_cache / "models").glob("broken/*"))


def test_stale_entry_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    register(monkeypatch, ModelRecipe("fake", "a fake", fake_model))
    stale = model_dir("fake")
    stale.mkdir(parents=True)
    (stale / "half-written.bin").write_bytes(b"x")
    path = resolve_model("fake")
    assert sorted(p.name for p in path.iterdir()) == [MARKER, "config.json", "model.safetensors"]
    # A recipe version bump invalidates the cached build.
    register(monkeypatch, ModelRecipe("fake", "a fake", fake_model, version=2))
    assert not is_built("fake")
    with pytest.raises(ModelError, match="agentbench models build fake"):
        resolve_model("fake", build=False)


def test_killed_build_leaves_no_half_cache(
    private_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = tmp_path / "started"
    script = f"""
import time
from pathlib import Path
import agentbench.models as m
def slow(dest):
    (dest / "config.json").write_text("{{}}")
    (dest / "model.safetensors").write_bytes(b"partial")
    Path({str(started)!r}).touch()
    time.sleep(60)
m.register_model(m.ModelRecipe("slow", "slow", slow))
m.build_model("slow")
"""
    process = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert process.poll() is None, "the build process died early"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (private_cache / "models" / "slow").exists()
    # The next build (here a working recipe of that name) clears the orphaned temp dir.
    monkeypatch.setitem(models._REGISTRY, "slow", ModelRecipe("slow", "fixed", fake_model))
    assert is_built("slow") is False
    build_model("slow")
    assert sorted(p.name for p in (private_cache / "models").iterdir()) == [".slow.lock", "slow"]


def test_resolve_local_paths_and_errors(tmp_path: Path) -> None:
    local = tmp_path / "local-model"
    local.mkdir()
    fake_model(local)
    assert resolve_model(local) == local.resolve()
    assert resolve_model(str(local)) == local.resolve()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match=r"no config\.json"):
        resolve_model(empty)
    (empty / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"no \.safetensors"):
        resolve_model(empty)
    with pytest.raises(ModelError, match="not a model directory"):
        resolve_model(local / "config.json")
    with pytest.raises(ModelError, match="neither a registry model"):
        resolve_model("definitely-not-a-model")
    # A hub id: without huggingface_hub or without a network, a clear ModelError.
    with pytest.raises(ModelError, match="hub"):
        resolve_model("no-such-org/no-such-model-xyz")


def test_weights_hash_tracks_bytes(tmp_path: Path) -> None:
    fake_model(tmp_path, b"one")
    first = weights_sha256(tmp_path)
    assert weights_sha256(tmp_path) == first
    (tmp_path / "model.safetensors").write_bytes(b"two")
    assert weights_sha256(tmp_path) != first
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"no \.safetensors"):
        weights_sha256(tmp_path)


def test_cli_list_and_build(monkeypatch: pytest.MonkeyPatch) -> None:
    register(monkeypatch, ModelRecipe("fake", "a fake model for the CLI", fake_model))
    runner = CliRunner()
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert "smollm2-135m" in listed.output and "fake" in listed.output
    built = runner.invoke(app, ["build", "fake"])
    assert built.exit_code == 0, built.output
    assert weights_sha256(model_dir("fake")) in built.output.replace("\n", "")
    assert is_built("fake")
    unknown = runner.invoke(app, ["build", "nope"])
    assert unknown.exit_code == 2  # a config error
    assert "unknown model" in unknown.output
