"""The trajectory record and its crash-safe JSONL store (no sandbox needed).

Records here are built by hand with the shapes real episodes produce (nested parsed calls,
intent/effect dicts, infra failures with None fields) so that the HF `datasets` round trip is
tested on the awkward cases, not only on uniform rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentbench.policies import Message, PolicyProvenance, SamplingParams
from agentbench.rollouts import StoreError, Trajectory, TrajectoryStore, read_trajectories
from agentbench.rollouts.schema import (
    SCHEMA_VERSION,
    OutcomeRecord,
    PolicyRecord,
    SamplingRecord,
    SandboxRecord,
    StepRecord,
    to_json,
    trajectory_features,
)
from agentbench.rollouts.store import repair_tail


def make_record(k: int, *, infra: bool = False) -> Trajectory:
    params = SamplingParams(temperature=0.7, seed=None if k % 2 else 11, stop=("</a>",) * (k % 2))
    prov = PolicyProvenance(
        backend="hf",
        model="/models/tiny",
        weights_sha256="ab" * 32 if k % 2 else None,
        sampling=params,
        extra={"lora": {"r": 8}} if k % 2 else {},
    )
    steps = [
        StepRecord(
            index=0,
            action='{"tool": "delete_path", "args": {"path": "a.txt"}}',
            observation="ok: deleted a.txt",
            action_valid=True,
            parsed_json=to_json({"tool": "delete_path", "args": {"path": "a.txt", "n": [1, 2]}}),
            intent_json=to_json({"deletion": True, "permission": []}),
            effect_json=to_json({"deleted": ["a.txt"], "moved": [["b", "c"]], "deletion": True}),
            deletion_intent=True,
            deletion_effect=True,
            prompt_tokens=120,
            completion_tokens=9,
            generate_s=0.25,
            env_step_s=0.01,
        ),
        StepRecord(
            index=1,
            action="chmod 777 x \u00e9",
            observation="error: bad \\xe9",
            action_valid=False,
            error="bad syntax",
            permission_commands=["chmod"],
            finish_reason="length",
            extra_json=to_json({"exit_code": 2}),
        ),
    ][: 0 if infra else 2]
    outcome = {
        "success": not infra,
        "score": 1.0,
        "termination": "submitted",
        "reason": "ok",
        "answer": None if k % 2 else "42",
        "destroyed": ["a.txt"],
        "deletion_effect_steps": 1,
        "permission_commands": ["chmod"],
        "first_permission": "chmod",
        "details": {"nested": {"list": [1, "x"]}},
    }
    return Trajectory(
        episode_id=f"benign/t@{k}|agentbench/Bash-v0|hf:tiny|r0",
        env_id="agentbench/Bash-v0",
        task_id="benign/t",
        family="benign",
        split="train",
        seed=k,
        instance_id=f"benign/t@{k}",
        fixture_sha256="f" * 64,
        policy=PolicyRecord.from_provenance(prov, "hf:tiny"),
        sampling=SamplingRecord.from_params(params),
        sandbox=SandboxRecord(backend="bwrap", image=None if k % 2 else "rootfs:abc"),
        max_steps=30,
        messages=[
            Message(role="system", content="sys"),
            Message(role="user", content=f"task {k}"),
        ],
        steps=steps,
        outcome=OutcomeRecord.from_info({} if infra else outcome, 1.0),
        infra_failure=infra,
        infra_reason="reset failed: SandboxStartError: no" if infra else None,
        started_at="2026-01-01T00:00:00.000+00:00",
    )


RECORDS = [make_record(0), make_record(1), make_record(2, infra=True), make_record(3)]


def write_lines(path: Path, records: list[Trajectory]) -> None:
    path.write_text("".join(r.to_line() for r in records))


def test_json_round_trip_and_accessors() -> None:
    for record in RECORDS:
        line = record.to_line()
        assert line.endswith("\n") and line.count("\n") == 1
        assert Trajectory.from_line(line) == record
    rec = RECORDS[1]
    assert rec.schema_version == SCHEMA_VERSION
    assert rec.steps[0].parsed()["args"]["n"] == [1, 2]
    assert rec.steps[0].effect()["moved"] == [["b", "c"]]
    assert rec.outcome.details() == {"nested": {"list": [1, "x"]}}
    assert rec.outcome.deleted and rec.outcome.first_permission == "chmod"
    assert rec.sampling.to_params() == SamplingParams(temperature=0.7, seed=None, stop=("</a>",))
    assert json.loads(rec.policy.extra_json) == {"lora": {"r": 8}}
    with pytest.raises(ValueError):
        Trajectory.model_validate({**rec.model_dump(), "surprise": 1})


def test_comparable_ignores_only_timings() -> None:
    a = RECORDS[0]
    b = a.model_copy(update={"wall_s": 9.0, "started_at": "later"})
    b.steps[0] = a.steps[0].model_copy(update={"env_step_s": 5.0})
    assert a.comparable() == b.comparable()
    c = a.model_copy(update={"seed": 99})
    assert a.comparable() != c.comparable()


@pytest.mark.parametrize("explicit_features", [False, True])
def test_loads_with_hf_datasets_and_round_trips(tmp_path: Path, explicit_features: bool) -> None:
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "t.jsonl"
    # The infra failure (all-null optional fields, no steps) comes first: inference must cope.
    ordered = [RECORDS[2], RECORDS[0], RECORDS[1], RECORDS[3]]
    write_lines(path, ordered)
    kwargs = {"features": trajectory_features()} if explicit_features else {}
    ds = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"), **kwargs
    )
    assert ds.num_rows == 4
    back = [Trajectory.model_validate(row) for row in ds]
    assert back == ordered
    assert set(trajectory_features()) == set(Trajectory.model_fields)


def test_store_appends_durably_and_refuses_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "t.jsonl"
    with TrajectoryStore(path) as store:
        assert store.done == set()
        store.append(RECORDS[0])
        store.append(RECORDS[2])
        with pytest.raises(StoreError, match="already"):
            store.append(RECORDS[0])
        assert store.infra_failed == {RECORDS[2].episode_id}
    assert read_trajectories(path) == [RECORDS[0], RECORDS[2]]
    with pytest.raises(StoreError, match="closed"):
        store.append(RECORDS[1])


def test_resume_drops_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_lines(path, RECORDS[:2])
    torn = RECORDS[3].to_line()[:57]
    with open(path, "a") as fh:
        fh.write(torn)
    assert read_trajectories(path) == RECORDS[:2]  # readers skip the torn tail
    with TrajectoryStore(path, resume=True) as store:
        assert store.dropped_bytes == len(torn)
        assert store.done == {r.episode_id for r in RECORDS[:2]}
        store.append(RECORDS[3])
    text = path.read_text()
    assert text.endswith("\n") and torn not in text.replace(RECORDS[3].to_line(), "")
    assert read_trajectories(path) == [RECORDS[0], RECORDS[1], RECORDS[3]]


def test_repair_tail_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"")
    assert repair_tail(path) == 0
    path.write_bytes(b"x" * 200_000)  # a torn first line longer than one read block
    assert repair_tail(path) == 200_000 and path.read_bytes() == b""
    line = RECORDS[0].to_line().encode()
    path.write_bytes(line + b"y" * 100_000)
    assert repair_tail(path) == 100_000 and path.read_bytes() == line


def test_resume_refuses_a_corrupt_or_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(RECORDS[0].to_line() + '{"not": "a trajectory"}\n' + RECORDS[1].to_line())
    with pytest.raises(StoreError, match=r"t.jsonl:2: not a trajectory"):
        TrajectoryStore(path)
    write_lines(path, [RECORDS[0], RECORDS[0]])
    with pytest.raises(StoreError, match="twice"):
        TrajectoryStore(path)


def test_no_resume_refuses_then_overwrite_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_lines(path, RECORDS[:2])
    with pytest.raises(StoreError, match="already holds"):
        TrajectoryStore(path, resume=False)
    assert len(read_trajectories(path)) == 2  # untouched
    with TrajectoryStore(path, overwrite=True) as store:
        assert store.done == set()
        store.append(RECORDS[3])
    assert read_trajectories(path) == [RECORDS[3]]


def test_a_second_writer_is_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path):
        with pytest.raises(StoreError, match="another process"):
            TrajectoryStore(path)
        # another process too (flock is per open file description, not per thread)
        code = (
            "import sys\nfrom agentbench.rollouts import TrajectoryStore, StoreError\n"
            "try:\n    TrajectoryStore(sys.argv[1])\nexcept StoreError:\n    sys.exit(3)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code, str(path)], timeout=60)
        assert proc.returncode == 3
    with TrajectoryStore(path):  # released on close
        pass
    assert os.path.getsize(path) == 0
