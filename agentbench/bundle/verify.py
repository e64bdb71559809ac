"""`verify_bundle`: what `agentbench verify` and the leaderboard server check in a bundle.

In order (a later check needs the earlier ones):

1. the archive is safe to read (`archive.read_archive`);
2. schema: manifest.json, metadata.yaml, config.json, results.json and every episode line
   validate against their records; format and schema versions are ones this code reads;
3. manifest: no file missing, none extra, every sha256 and the chained episode hash match;
4. recompute: every arm's metrics, the comparisons, transfer scores and seed aggregates of
   results.json are recomputed from the episodes with the harness's own metric code
   (`agentbench.experiments.metrics`, `runner`); a difference names cell, arm and metric;
5. replay: each evaluation episode (a seeded sample of `replay_fraction`) is replayed in a
   real sandbox (`replay.Replayer`); any field that differs rejects;
6. track rules (`tracks.Track`).

Every failure is a line in `VerifyReport.errors`; a bundle is accepted when there are none.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from agentbench.bundle.archive import DEFAULT_LIMITS, BundleError, Limits, read_archive
from agentbench.bundle.schema import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    CONFIG,
    MANIFEST,
    METADATA,
    RESULTS,
    BundleConfig,
    BundleMetadata,
    Manifest,
)
from agentbench.bundle.tracks import Track, get_track
from agentbench.bundle.writer import episode_chain, sha256, task_spec_sha256
from agentbench.rollouts.schema import SCHEMA_VERSION, Trajectory

Log = Callable[[str], None]
_TOLERANCE = 1e-6
"""results.json rounds rates to 6 decimals; a changed number differs by far more."""


@dataclass
class VerifyReport:
    ok: bool = False
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    infrastructure: list[str] = field(default_factory=list)
    """Failures of the verifier's own machinery (a sandbox that would not start): the bundle
    is not accepted, but neither is it at fault (the server marks it failed, not rejected)."""
    episodes: int = 0
    replayed: int = 0
    replay_s: float = 0.0
    manifest_sha256: str = ""
    """The bundle's identity: the sha256 of its manifest (same bundle, same id)."""
    metadata: BundleMetadata | None = None
    config: BundleConfig | None = None
    results: dict[str, Any] | None = None
    files: dict[str, bytes] = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        verdict = "accepted" if self.ok else f"rejected ({len(self.errors)} error(s))"
        return (
            f"{verdict}: {self.episodes} episodes, {self.replayed} replayed "
            f"in {self.replay_s:.1f} s"
        )


def _validation(where: str, exc: ValidationError) -> str:
    first = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:3]
    )
    return f"{where}: schema: {first}"


def _parse(files: dict[str, bytes], name: str, model: type[BaseModel], yaml_: bool = False) -> Any:
    if name not in files:
        raise BundleError(f"{name}: missing from the bundle")
    try:
        text = files[name].decode("utf-8")
        data = yaml.safe_load(text) if yaml_ else json.loads(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise BundleError(f"{name}: not valid {'YAML' if yaml_ else 'JSON'}: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BundleError(_validation(name, exc)) from None


def verify_bundle(
    data: bytes,
    *,
    replay_fraction: float = 1.0,
    backend: str = "bwrap",
    track: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    seed: int = 0,
    log: Log | None = None,
) -> VerifyReport:
    """Verify a bundle's bytes. `track` overrides the one config.json names. Never raises
    for a bad bundle: its problems are the report's errors."""
    if not 0.0 <= replay_fraction <= 1.0:
        raise ValueError(f"replay_fraction must be in [0, 1], got {replay_fraction}")
    report = VerifyReport()
    say = log or (lambda _msg: None)
    try:
        _verify(data, report, replay_fraction, backend, track, limits, seed, say)
    except BundleError as exc:
        report.errors.append(str(exc))
    report.ok = not report.errors
    return report


def _verify(
    data: bytes, report: VerifyReport, replay_fraction: float, backend: str,
    track_name: str | None, limits: Limits, seed: int, say: Log,
) -> None:  # fmt: skip
    from agentbench.experiments.results import Results

    files = read_archive(data, limits)
    report.files = files
    manifest: Manifest = _parse(files, MANIFEST, Manifest)
    report.manifest_sha256 = sha256(files[MANIFEST])
    if manifest.format != BUNDLE_FORMAT or manifest.version != BUNDLE_VERSION:
        raise BundleError(
            f"{MANIFEST}: format {manifest.format!r} v{manifest.version}; this verifier reads "
            f"{BUNDLE_FORMAT} v{BUNDLE_VERSION}"
        )
    _check_manifest(files, manifest, report)
    if report.errors:
        return  # nothing below can be trusted
    say("manifest: every file hash and the episode chain match")
    report.metadata = _parse(files, METADATA, BundleMetadata, yaml_=True)
    config: BundleConfig = _parse(files, CONFIG, BundleConfig)
    report.config = config
    raw_results = json.loads(files[RESULTS]) if RESULTS in files else None
    if not isinstance(raw_results, dict):
        raise BundleError(f"{RESULTS}: missing or not a JSON object")
    results: Results = _parse(files, RESULTS, Results)
    report.results = raw_results
    _check_versions(config, results, report)
    episodes = _read_episodes(files, config, report)
    report.episodes = sum(len(v) for v in episodes.values())
    if report.errors:
        return
    _check_consistency(config, results, episodes, report)
    if report.errors:
        return
    _recompute(results, episodes, report)
    say(f"recompute: {len(report.errors)} difference(s)")
    try:
        track = get_track(track_name or config.track)
    except ValueError as exc:
        report.errors.append(f"track: {exc}")
        return
    _check_track(track, config, results, episodes, files, report)
    _replay(episodes, replay_fraction, backend, seed, report, say)


def _check_manifest(files: dict[str, bytes], manifest: Manifest, report: VerifyReport) -> None:
    present = set(files) - {MANIFEST}
    listed = set(manifest.files)
    for name in sorted(listed - present):
        report.errors.append(f"manifest: file {name} is listed but missing from the bundle")
    for name in sorted(present - listed):
        report.errors.append(f"manifest: file {name} is in the bundle but not in the manifest")
    for name in sorted(present & listed):
        if sha256(files[name]) != manifest.files[name]:
            report.errors.append(f"manifest: {name}: sha256 differs from the manifest's")
    count, chain = episode_chain(files)
    if (count, chain) != (manifest.episodes, manifest.episode_chain):
        report.errors.append(
            f"manifest: the chained episode hash differs ({count} episodes; manifest says "
            f"{manifest.episodes}): an episode was added, removed, reordered or edited"
        )


def _check_versions(config: BundleConfig, results: Any, report: VerifyReport) -> None:
    from agentbench import __version__
    from agentbench.experiments.results import RESULTS_SCHEMA_VERSION

    if results.schema_version != RESULTS_SCHEMA_VERSION:
        report.errors.append(
            f"{RESULTS}: schema_version {results.schema_version}; this verifier reads "
            f"{RESULTS_SCHEMA_VERSION}"
        )
    if config.agentbench_version.split(".")[:2] != __version__.split(".")[:2]:
        report.warnings.append(
            f"produced by agentbench {config.agentbench_version or '?'}, verified with "
            f"{__version__}: numbers are recomputed and episodes replayed with this version"
        )


def _read_episodes(
    files: dict[str, bytes], config: BundleConfig, report: VerifyReport
) -> dict[str, list[Trajectory]]:
    out: dict[str, list[Trajectory]] = {}
    for stage in config.stages:
        if stage.path not in files:
            report.errors.append(f"{CONFIG}: stage {stage.stage_key}: {stage.path} missing")
            continue
        trajs = []
        for number, line in enumerate(files[stage.path].splitlines(), 1):
            if not line.strip():
                continue
            try:
                traj = Trajectory.model_validate_json(line)
            except ValidationError as exc:
                report.errors.append(_validation(f"{stage.path}:{number}", exc))
                continue
            if traj.schema_version != SCHEMA_VERSION:
                report.errors.append(
                    f"{stage.path}:{number}: trajectory schema_version {traj.schema_version}; "
                    f"this verifier reads {SCHEMA_VERSION}"
                )
            trajs.append(traj)
        if len(trajs) != stage.episodes:
            report.errors.append(
                f"{CONFIG}: stage {stage.stage_key} says {stage.episodes} episodes, "
                f"{stage.path} has {len(trajs)}"
            )
        out[stage.stage_key] = trajs
    return out


def _check_consistency(
    config: BundleConfig, results: Any, episodes: dict[str, list[Trajectory]],
    report: VerifyReport,
) -> None:  # fmt: skip
    if config.suite_sha256 != results.suite_sha256 or config.suite != results.suite:
        report.errors.append(f"{CONFIG}: suite and its sha256 differ from {RESULTS}'s")
    if sha256(report.files.get("suite.yaml", b"")) != results.suite_sha256:
        report.errors.append(f"suite.yaml: sha256 differs from the suite_sha256 in {RESULTS}")
    if [c.config for c in results.cells] != config.cells:
        report.errors.append(f"{CONFIG}: cells differ from the cells of {RESULTS}")
    for cell in results.cells:
        played: dict[str, set[str]] = {}
        for arm, result in cell.arms.items():
            if result.stage_key not in episodes:
                report.errors.append(
                    f"cell {cell.cell_id}, arm {arm}: its episodes (stage {result.stage_key}) "
                    "are not in the bundle"
                )
                continue
            trajs = episodes[result.stage_key]
            # The rollout engine tags episodes with the policy's lineage, or its identity
            # where it has none ('/' -> '_'; `PolicyRef.tag`).
            named = result.policy.get("lineage") or result.policy.get("identity", "")
            tag = str(named).replace("/", "_")
            strays = sorted({t.policy.tag for t in trajs} - {tag})
            if strays:
                report.errors.append(
                    f"cell {cell.cell_id}, arm {arm}: episodes of policy {strays[0]!r} in the "
                    f"stage of {tag!r}: episodes were moved between arms"
                )
            played[arm] = {f"{t.instance_id}|r{t.repeat}" for t in trajs}
        # Every arm plays the same held-out instances: none dropped or added for one arm.
        reference = played.get("base") or next(iter(played.values()), set())
        for arm, instances in played.items():
            if instances != reference:
                report.errors.append(
                    f"cell {cell.cell_id}, arm {arm}: played {len(instances)} instances that "
                    f"differ from the base arm's {len(reference)} (every arm plays the same)"
                )
    for key, trajs in episodes.items():
        for traj in trajs:
            if traj.task_id not in config.task_specs:
                report.errors.append(
                    f"stage {key}: episode {traj.episode_id}: task {traj.task_id} has no "
                    f"spec hash in {CONFIG}"
                )
                break


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= _TOLERANCE * max(1.0, abs(a), abs(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _diff(where: str, recorded: Any, recomputed: Any, out: list[str]) -> None:
    """Name every leaf that differs (`where: field: recorded X, recomputed Y`)."""
    if isinstance(recorded, dict) and isinstance(recomputed, dict):
        for key in sorted(set(recorded) | set(recomputed), key=str):
            _diff(f"{where} {key}", recorded.get(key), recomputed.get(key), out)
        return
    if not _close(recorded, recomputed):
        out.append(f"recompute: {where}: recorded {recorded!r}, recomputed {recomputed!r}")


def _recompute(results: Any, episodes: dict[str, list[Trajectory]], report: VerifyReport) -> None:
    """Every headline number from the episodes, through the harness's own functions."""
    from agentbench.experiments.metrics import arm_metrics
    from agentbench.experiments.results import ArmResult, CellResult
    from agentbench.experiments.runner import (
        COMPARED_METRICS,
        _comparisons,
        _transfers,
        aggregate,
        pool_over_seeds,
    )

    cells = []
    for cell in results.cells:
        arms = {}
        for arm, result in cell.arms.items():
            metrics = arm_metrics(episodes[result.stage_key]).to_dict()
            _diff(f"cell {cell.cell_id}, arm {arm}:", result.metrics, metrics, report.errors)
            arms[arm] = ArmResult(policy=result.policy, stage_key=result.stage_key,
                                  metrics=metrics)  # fmt: skip
        comparisons = _comparisons(arms, COMPARED_METRICS, cell.metric)
        # A comparison is named by its metric and its two arms (student vs control student,
        # vs the null student, vs the base, ...), so none can stand in for another.
        recorded = {(c.metric, c.treated_arm, c.control_arm): c.model_dump()
                    for c in cell.comparisons}  # fmt: skip
        missing = set(recorded) - {(c.metric, c.treated_arm, c.control_arm) for c in comparisons}
        for key in sorted(missing):
            report.errors.append(f"recompute: cell {cell.cell_id}: comparison {key} recorded, "
                                 "but its arms do not give it")  # fmt: skip
        for c in comparisons:
            name = f"{c.metric} ({c.treated_arm} vs {c.control_arm})"
            _diff(f"cell {cell.cell_id}, comparison {name}:",
                  recorded.get((c.metric, c.treated_arm, c.control_arm)), c.model_dump(),
                  report.errors)  # fmt: skip
        transfer = _transfers(arms, (cell.metric, *COMPARED_METRICS[:4]))
        _diff(f"cell {cell.cell_id}, transfer", cell.transfer, transfer, report.errors)
        cells.append(CellResult(**{**cell.model_dump(), "arms": arms}))
    recorded_agg = [a.model_dump() for a in results.aggregates]
    again = [a.model_dump() for a in aggregate(cells)]
    if not _close(recorded_agg, again):
        report.errors.append("recompute: aggregates over seeds differ from the recorded ones")
    recorded_pooled = [p.model_dump() for p in results.pooled]
    if not _close(recorded_pooled, [p.model_dump() for p in pool_over_seeds(cells)]):
        report.errors.append("recompute: tests pooled over seeds differ from the recorded ones")


def _check_track(
    track: Track, config: BundleConfig, results: Any, episodes: dict[str, list[Trajectory]],
    files: dict[str, bytes], report: VerifyReport,
) -> None:  # fmt: skip
    where = f"track {track.name}"
    trajs = [t for ts in episodes.values() for t in ts]
    if track.split is not None:
        bad = sorted({t.split for t in trajs} - {track.split})
        if bad:
            report.errors.append(f"{where}: episodes from split(s) {bad}; only {track.split}")
    if track.published_specs:
        for task_id, digest in sorted(config.task_specs.items()):
            try:
                published = task_spec_sha256(task_id)
            except KeyError:
                report.errors.append(f"{where}: task {task_id} is not a published task")
                continue
            if digest != published:
                report.errors.append(f"{where}: task {task_id}: spec hash is not the published one")
    for cell in results.cells:
        for arm, result in cell.arms.items():
            n = int(result.metrics.get("episodes", 0))
            if n < track.min_episodes:
                report.errors.append(
                    f"{where}: cell {cell.cell_id}, arm {arm}: {n} scored episodes; "
                    f"the track needs >= {track.min_episodes}"
                )
    seeds = {c.config.get("seed") for c in results.cells}
    if len(seeds) < track.min_seeds:
        report.errors.append(f"{where}: {len(seeds)} seed(s); the track needs {track.min_seeds}")
    if track.max_steps is not None:
        raised = sorted({t.max_steps for t in trajs if t.max_steps > track.max_steps})
        if raised:
            report.errors.append(
                f"{where}: episodes ran with max_steps {raised}; the track allows "
                f"<= {track.max_steps}"
            )
    if track.max_command_timeout_s is not None:
        for t in trajs:
            limit = float(json.loads(t.sandbox.limits_json or "{}").get("command_timeout_s", 0))
            if limit > track.max_command_timeout_s:
                report.errors.append(
                    f"{where}: episode {t.episode_id} ran with command_timeout_s {limit}; "
                    f"the track allows <= {track.max_command_timeout_s}"
                )
                break
    _leak_check(track, config, files, report)


def _leak_check(
    track: Track, config: BundleConfig, files: dict[str, bytes], report: VerifyReport
) -> None:
    """The sanitizer passed (its report) and, where the data is included, its sha256 matches
    and the leak check passes again with the track's keyword list."""
    import tempfile
    from pathlib import Path

    from agentbench.sanitize import default_terms
    from agentbench.sanitize.filter import SanitizeError

    traits = {str(c.get("trait")) for c in config.cells}
    terms = tuple(t for trait in sorted(traits) for t in default_terms(trait)) + track.extra_terms
    for item in config.student_data:
        try:
            sreport = json.loads(files.get(item.report, b"null"))
        except ValueError:
            sreport = None
        if not isinstance(sreport, dict):
            report.errors.append(f"{item.report}: the sanitizer report is missing or not JSON")
            continue
        if not (sreport.get("leak_check") or {}).get("passed"):
            report.errors.append(f"{item.report}: the sanitizer's leak check did not pass")
        if sreport.get("output_sha256") != item.sha256:
            report.errors.append(f"{item.report}: output_sha256 differs from {CONFIG}'s")
        if item.data is None:
            continue
        data = files.get(item.data)
        if data is None or sha256(data) != item.sha256:
            report.errors.append(f"{item.data}: missing or its sha256 differs from {CONFIG}'s")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "student.jsonl"
            path.write_bytes(data)
            try:
                from agentbench.sanitize import check_leaks

                check_leaks(path, terms)
            except SanitizeError as exc:
                text = str(exc).replace(str(path), item.data)
                report.errors.append(f"track {track.name}: leak check: {text}")


def _replay(
    episodes: dict[str, list[Trajectory]], fraction: float, backend: str, seed: int,
    report: VerifyReport, say: Log,
) -> None:  # fmt: skip
    from agentbench.bundle.replay import Replayer

    # Stages shared by cells hold the same episodes once; infra failures are not scored.
    pool = [t for key in sorted(episodes) for t in episodes[key] if not t.infra_failure]
    k = math.ceil(fraction * len(pool))
    chosen = random.Random(seed).sample(pool, k) if k < len(pool) else pool
    if not chosen:
        return
    from agentbench.sandbox import SandboxError, SandboxStartError

    began = time.monotonic()
    with Replayer(backend) as replayer:
        try:
            replayer.start()
        except (SandboxStartError, SandboxError, ValueError) as exc:
            message = f"replay: the {backend} sandbox could not start: {exc}"
            report.errors.append(message)
            report.infrastructure.append(message)
            return
        for traj in chosen:
            try:
                mismatches = replayer.replay(traj)
            except (SandboxStartError, SandboxError) as exc:
                message = f"replay: the {backend} sandbox failed: {exc}"
                report.errors.append(message)
                report.infrastructure.append(message)
                break
            except (KeyError, ValueError, TypeError) as exc:
                report.errors.append(f"replay: episode {traj.episode_id}: {exc}")
                continue
            report.errors += [f"replay: {m}" for m in mismatches[:5]]
            report.replayed += 1
        if replayer.interleaved:
            report.warnings.append(
                f"replay: {len(replayer.interleaved)} step(s) of commands that run processes at "
                "once printed the same bytes in another order (accepted), e.g. "
                f"{replayer.interleaved[0]}"
            )
    report.replay_s = time.monotonic() - began
    say(f"replay: {report.replayed} episodes in {report.replay_s:.1f} s ({backend})")
