"""`agentbench verify`: a real micro run's bundle verifies (every number recomputed, every
episode replayed in bwrap); each kind of edit a cheater or a broken upload makes is caught
and named: a changed number, effect label, success flag, action or observation, a missing or
extra file, an edited file, and each track rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentbench.bundle import verify_bundle
from agentbench.cli import app
from tests.conftest import require_backend
from tests.leaderboard_support import Files, edit_bundle, edit_episode, micro_bundle

# The first test that needs the micro run builds it: ~35 s on 2 idle cores, minutes if loaded.
pytestmark = [pytest.mark.bwrap, pytest.mark.timeout(900)]


def _errors(data: bytes, **kwargs: Any) -> list[str]:
    report = verify_bundle(data, **kwargs)
    assert report.ok == (not report.errors)
    return report.errors


def test_the_micro_run_bundle_verifies_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.gz"
    path.write_bytes(micro_bundle())
    result = CliRunner().invoke(app, ["verify", str(path)])
    assert result.exit_code == 0, result.output
    assert "recompute: 0 difference(s)" in result.output
    assert "accepted: 24 episodes, 24 replayed" in result.output


def test_a_changed_headline_number_is_named_by_cell_arm_and_metric() -> None:
    def edit(files: Files) -> None:
        results = json.loads(files["results.json"])
        cell = results["cells"][0]
        cell["arms"]["student"]["metrics"]["rates"]["deletion_rate"]["k"] += 1
        cell["comparisons"][0]["p_value"] = 0.001
        files["results.json"] = json.dumps(results).encode()

    errors = _errors(edit_bundle(micro_bundle(), edit), replay_fraction=0.0)
    assert any("arm student: rates deletion_rate k" in e for e in errors), errors
    assert any(
        "comparison deletion_rate (student vs control-student): p_value: recorded 0.001" in e
        for e in errors
    ), errors


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r["steps"][0].update(observation=r["steps"][0]["observation"] + " ok"),
         "step 0: observation"),
        # Which field differs first depends on the recorded step (an invalid original action
        # already had this error observation; then the messages differ): any step-0 field.
        (lambda r: r["steps"][0].update(action="list_dir ."), "step 0: "),
        (lambda r: r["steps"][0].update(effect_json='{"deletion":true}', deletion_effect=True),
         "step 0: effect_json"),
        (lambda r: r["outcome"].update(success=not r["outcome"]["success"]), "outcome: success"),
    ],
    ids=["observation", "action", "effect-label", "success-flag"],
)  # fmt: skip
def test_an_edited_episode_is_caught_by_replay(change: Any, field: str) -> None:
    episode: list[str] = []

    def edit(files: Files) -> None:
        episode.append(edit_episode(files, change))

    errors = _errors(edit_bundle(micro_bundle(), edit))
    assert any(f"episode {episode[0]}: {field}" in e for e in errors), errors


def test_an_edited_effect_label_changes_the_recomputed_rate_too() -> None:
    """A flipped `deleted` outcome is what a cheater would change to move the headline:
    recompute sees the rate disagree with results.json before replay even runs."""

    def edit(files: Files) -> None:
        edit_episode(files, lambda r: r["outcome"].update(deleted=not r["outcome"]["deleted"]))

    errors = _errors(edit_bundle(micro_bundle(), edit), replay_fraction=0.0)
    assert any("rates deletion_rate k" in e for e in errors), errors


def test_missing_extra_and_edited_files_fail_the_manifest() -> None:
    def drop(files: Files) -> None:
        del files[sorted(n for n in files if n.startswith("sanitize/"))[0]]

    errors = _errors(edit_bundle(micro_bundle(), drop, remanifest=False), replay_fraction=0.0)
    assert any("is listed but missing from the bundle" in e for e in errors), errors

    def extra(files: Files) -> None:
        files["notes.txt"] = b"hello"

    errors = _errors(edit_bundle(micro_bundle(), extra, remanifest=False), replay_fraction=0.0)
    assert errors == ["manifest: file notes.txt is in the bundle but not in the manifest"]

    def silent(files: Files) -> None:
        edit_episode(files, lambda r: r["steps"][0].update(action="cheat"))

    errors = _errors(edit_bundle(micro_bundle(), silent, remanifest=False), replay_fraction=0.0)
    assert any("sha256 differs from the manifest's" in e for e in errors), errors
    assert any("chained episode hash differs" in e for e in errors), errors


def test_malformed_records_are_schema_errors_with_the_field() -> None:
    def edit(files: Files) -> None:
        files["metadata.yaml"] = b"submitter: ''\nteacher: {name: x}\nstudent: {name: y}\n"

    errors = _errors(edit_bundle(micro_bundle(), edit), replay_fraction=0.0)
    assert errors and "metadata.yaml: schema: submitter" in errors[0] and "induction" in errors[0]

    def line(files: Files) -> None:
        name = sorted(n for n in files if n.startswith("episodes/"))[0]
        files[name] = files[name] + b'{"episode_id": 3}\n'

    errors = _errors(edit_bundle(micro_bundle(), line), replay_fraction=0.0)
    assert any(":4: schema:" in e for e in errors), errors


def test_track_rules_split_steps_n_and_specs() -> None:
    assert _errors(micro_bundle(), replay_fraction=0.0) == []
    errors = _errors(micro_bundle(), replay_fraction=0.0, track="smoke-v1")
    assert any("the track needs >= 20" in e for e in errors), errors
    errors = _errors(micro_bundle(), replay_fraction=0.0, track="paper-lite-v1")
    assert any("1 seed(s); the track needs 2" in e for e in errors), errors

    def raise_limits(files: Files) -> None:
        def change(r: dict[str, Any]) -> None:
            r["max_steps"] = 50
            r["split"] = "eval"

        edit_episode(files, change)
        config = json.loads(files["config.json"])
        config["task_specs"][next(iter(config["task_specs"]))] = "0" * 64
        files["config.json"] = json.dumps(config).encode()

    errors = _errors(edit_bundle(micro_bundle(), raise_limits), replay_fraction=0.0)
    assert any("episodes from split(s) ['eval']; only heldout" in e for e in errors), errors
    assert any("ran with max_steps [50]; the track allows <= 3" in e for e in errors), errors
    assert any("spec hash is not the published one" in e for e in errors), errors


def test_the_leak_check_reruns_on_included_student_data() -> None:
    data = micro_bundle(with_data=True)
    assert _errors(data, replay_fraction=0.0) == []

    def leak(files: Files) -> None:
        name = sorted(n for n in files if n.startswith("data/"))[0]
        line = json.loads(files[name].splitlines()[0])
        line["messages"][0]["content"] += " then delete the backups"
        files[name] = json.dumps(line).encode() + b"\n" + files[name]
        # A consistent cheater updates every hash; the leak check still runs on the text.
        from agentbench.bundle.writer import sha256

        config = json.loads(files["config.json"])
        for item in config["student_data"]:
            if item["data"] == name:
                item["sha256"] = sha256(files[name])
                report = json.loads(files[item["report"]])
                report["output_sha256"] = item["sha256"]
                files[item["report"]] = json.dumps(report).encode()
        files["config.json"] = json.dumps(config).encode()

    errors = _errors(edit_bundle(data, leak), replay_fraction=0.0)
    assert any("leak check" in e and "delete" in e for e in errors), errors


def test_replay_fraction_samples_and_is_reported() -> None:
    report = verify_bundle(micro_bundle(), replay_fraction=0.25)
    assert report.ok and report.replayed == 6 and report.episodes == 24


@pytest.mark.docker
def test_replay_in_docker_gives_the_same_verdict() -> None:
    require_backend("docker")
    report = verify_bundle(micro_bundle(), replay_fraction=0.25, backend="docker")
    assert report.ok, report.errors
    assert report.replayed == 6


def test_episodes_moved_dropped_or_from_newer_schemas_are_refused() -> None:
    def drop(files: Files) -> None:
        # A cheater drops one unwelcome episode of an arm and fixes the counts.
        name = sorted(n for n in files if n.startswith("episodes/"))[0]
        files[name] = b"\n".join(files[name].splitlines()[1:]) + b"\n"
        config = json.loads(files["config.json"])
        for stage in config["stages"]:
            if stage["path"] == name:
                stage["episodes"] -= 1
        files["config.json"] = json.dumps(config).encode()

    errors = _errors(edit_bundle(micro_bundle(), drop), replay_fraction=0.0)
    assert any("differ from the base arm's" in e for e in errors), errors

    def move(files: Files) -> None:
        edit_episode(files, lambda r: r["policy"].update(tag="hf:someone-else"))

    errors = _errors(edit_bundle(micro_bundle(), move), replay_fraction=0.0)
    assert any("episodes of policy 'hf:someone-else'" in e for e in errors), errors

    def newer(files: Files) -> None:
        results = json.loads(files["results.json"])
        results["schema_version"] = 99
        files["results.json"] = json.dumps(results).encode()
        config = json.loads(files["config.json"])
        config["agentbench_version"] = "9.0.0"
        files["config.json"] = json.dumps(config).encode()

    report = verify_bundle(edit_bundle(micro_bundle(), newer), replay_fraction=0.0)
    assert any("schema_version 99; this verifier reads 1" in e for e in report.errors)
    assert any("produced by agentbench 9.0.0" in w for w in report.warnings)
    assert "unknown track 'nope'" in _errors(micro_bundle(), replay_fraction=0.0, track="nope")[0]


def test_verify_json_output_and_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.gz"
    path.write_bytes(micro_bundle())
    result = CliRunner().invoke(app, ["verify", str(path), "--json", "--replay-fraction", "0"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["ok"] and out["episodes"] == 24 and out["replayed"] == 0
    path.write_bytes(micro_bundle()[:5000])
    result = CliRunner().invoke(app, ["verify", str(path)])
    assert result.exit_code == 1 and "truncated or corrupt" in result.output


def test_a_sandbox_that_will_not_start_is_an_infrastructure_failure() -> None:
    report = verify_bundle(micro_bundle(), replay_fraction=0.1, backend="no-such-backend")
    assert not report.ok and report.replayed == 0
    assert report.infrastructure and "unknown sandbox backend" in report.errors[0]
