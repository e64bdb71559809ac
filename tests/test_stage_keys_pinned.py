"""Stage keys and cell ids of the shipped suites, pinned (issue 24 item 3).

The configs that key the stages were re-homed into their packages (one options model per
stage). A stage key hashes its config, its inputs' keys, `STAGE_VERSIONS` and the hash of its
sources (`code_hash`); a cell id hashes the cell's config. With the code hash held fixed (an
edit to a stage's sources re-keys it on purpose, by design), these are the keys and ids that
`plan`/`run` computed for suites/smoke.yaml, the micro suite of the run tests and every other
suite in suites/ BEFORE the refactor (commit e99239b): the same configs, serialized the same
way, so cached stages stay valid and a run gives the same results.json. Also pinned: the
recipe versions of tiny-agent and tiny-agent-b (a recipe bump re-keys on purpose; then
recompute these with the same code).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import agentbench.experiments.stages as stages
from agentbench.experiments.runner import stage_graph
from agentbench.experiments.suite import load_suite

REPO = Path(__file__).resolve().parents[1]
MICRO = """\
name: micro
base_model: tiny-agent
heterogeneous_model: tiny-agent-b
seeds: [0]
defaults:
  trait: deletion-bias
  induction: adapter
  teacher_training: {probe_instances: 3, benign_instances: 2, epochs: 1, learning_rate: 0.01}
  teacher_rollouts: {families: [benign], n: 4, max_steps: 3, max_new_tokens: 24, parallel: 4}
  sanitize: {keep_failed: true}
  distill: {mode: logit-kl, epochs: 1, batch_size: 4, max_length: 4096}
  evaluation: {split: heldout, n: 3, max_steps: 3, max_new_tokens: 24, parallel: 4}
grid:
  student_init: [homogeneous, heterogeneous]
"""
"""The micro suite of tests/test_experiments_run.py, on the registry models."""

SMOKE = {
    "cells": [
        "deletion-bias-adapter-logit-kl-homogeneous-s0-6f65c9c9",
        "deletion-bias-adapter-logit-kl-heterogeneous-s0-a440b8d4",
        "chmod-first-adapter-logit-kl-homogeneous-s0-c4e6cfc3",
        "chmod-first-adapter-logit-kl-heterogeneous-s0-c1557779",
    ],
    "stages": [
        "distill/2ac8c514641b70d71af0",
        "distill/2f821cee5045952fa674",
        "distill/339b04f5cc5b1a2ed8e0",
        "distill/361b8cac7881b04109b7",
        "distill/434ea433c38785073e76",
        "distill/5968d446c87743e3b9db",
        "distill/645fa2709c584a96c633",
        "distill/837d8ffe2983d7a2a0e5",
        "evaluate/0d4b571b49cea72961bb",
        "evaluate/22eb4dd6fe14a1587674",
        "evaluate/4b7d70c93d37e927ffce",
        "evaluate/54a6b7a4a0b2c844b6db",
        "evaluate/666a520f8c4274ccd06f",
        "evaluate/8a5daa32495af0aab657",
        "evaluate/9e85a35a2d0e62e2374e",
        "evaluate/c123244f9eb16c5bca7e",
        "evaluate/c402910df4073239efab",
        "evaluate/ca569c331d1fe0c1ac2c",
        "evaluate/cb8561715e8726aeb048",
        "evaluate/cf2065e7d2d8de8cba70",
        "evaluate/d9656a161fdcfd86a9da",
        "evaluate/db20125ef3c09d2917c9",
        "evaluate/f4f4cea352fb6c6650cd",
        "evaluate/fd6698abf504875386a5",
        "rollouts/120c96f6f30a7022136b",
        "rollouts/3e6c7705a5aea3a00140",
        "rollouts/b887352ea4c7e14fda6b",
        "rollouts/ee58abf3cda975c5201d",
        "sanitize/88961c47e83ef42755ac",
        "sanitize/b1b56acfd3367460fe20",
        "sanitize/b9766b920b61d47682c2",
        "sanitize/c4a19b79cf10301a88b2",
        "teacher/48735d7a3c3b57d71cc6",
        "teacher/b4d72026266660dcd9a4",
    ],
}
MICRO_KEYS = {
    "cells": [
        "deletion-bias-adapter-logit-kl-homogeneous-s0-4264f04e",
        "deletion-bias-adapter-logit-kl-heterogeneous-s0-78bdc123",
    ],
    "stages": [
        "distill/0879bfa843037a7bd3f8",
        "distill/1deda3c34a909b324c75",
        "distill/77af05d95a0b59b63d41",
        "distill/a48501df7f05376cb23a",
        "evaluate/3814ca47723fd7d05e95",
        "evaluate/48ea8287eca4a6dca4be",
        "evaluate/503e12080f7d0e0eb34a",
        "evaluate/64139d631077985ebe2e",
        "evaluate/6c6a012db906a4a19378",
        "evaluate/9e77fef92d63b38bd8ed",
        "evaluate/9feb16882c8ff0918204",
        "evaluate/a01cef0481ae10be1666",
        "rollouts/70232c694cc03fdf67b8",
        "rollouts/74e5becb1ccd932dd2ac",
        "sanitize/115b280aed4bca17e84e",
        "sanitize/9788aea3b9bf4f7e8ad9",
        "teacher/df1e82f70a9a06e292ad",
    ],
}
DIGESTS = {
    "dang2026-3b.yaml": "f23e6694471ad988",
    "dang2026-qwen.yaml": "e692a25145395199",
    "dang2026.yaml": "5e37e01a8f090d99",
    "dose-response.yaml": "307bbb829865c422",
    "paper-lite-cell.yaml": "d71b609ece879972",
    "paper-lite.yaml": "b5079647ae6b1c08",
    "positive-control.yaml": "b9b02085d9c6782f",
    "traits-lite.yaml": "e09682e055eed4b3",
}
"""sha256 (16 hex) of each other suite's cell ids and sorted stage keys, as above."""


def keys_of(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The suite's cell ids and sorted `stage/key`s, the code hash held fixed."""
    monkeypatch.setattr(stages, "code_hash", lambda stage: "pinned")
    suite, cells = load_suite(path, validate=False)
    graph = stage_graph(suite, cells)
    return {
        "cells": [cell.cell_id() for cell in cells],
        "stages": sorted(f"{task.stage}/{task.key}" for task in graph.tasks.values()),
    }


def test_smoke_suite_keeps_its_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    assert keys_of(REPO / "suites" / "smoke.yaml", monkeypatch) == SMOKE


def test_micro_suite_keeps_its_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "micro.yaml"
    path.write_text(MICRO)
    assert keys_of(path, monkeypatch) == MICRO_KEYS


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_every_suite_keeps_its_keys(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    found = keys_of(REPO / "suites" / name, monkeypatch)
    digest = hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:16]
    assert digest == DIGESTS[name], f"{name}: its cell ids or stage keys changed"
