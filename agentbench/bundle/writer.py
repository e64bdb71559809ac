"""`build_bundle`: a finished run folder (results.json) and its stage store into one archive.

    build_bundle(Path("runs/smoke"), Path("smoke.bundle.tar.gz"), submitter="alice")

Reads results.json, the suite file (found by the sha256 results.json records), every
evaluate stage's trajectories and every sanitize stage's report in the store the run used;
writes metadata.yaml, config.json and manifest.json beside copies of them (see
`agentbench.bundle.schema` for the layout). Raises `BundleError` naming what is missing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentbench.bundle.archive import BundleError, write_archive
from agentbench.bundle.schema import (
    CONFIG,
    DATA_DIR,
    EPISODES_DIR,
    MANIFEST,
    METADATA,
    RESULTS,
    SANITIZE_DIR,
    SUITE,
    BundleConfig,
    BundleMetadata,
    Manifest,
    ModelInfo,
    StageFile,
    StudentData,
)

TRAJECTORIES = "trajectories.jsonl"
STUDENT_DATA = "student.jsonl"
STUDENT_ARMS = ("student", "control-student")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def episode_chain(files: dict[str, bytes]) -> tuple[int, str]:
    """(episode count, chained hash) over the episode files' lines in sorted path order."""
    head = sha256(b"")
    count = 0
    for name in sorted(n for n in files if n.startswith(EPISODES_DIR + "/")):
        for line in files[name].splitlines():
            if line.strip():
                head = sha256((head + sha256(line)).encode())
                count += 1
    return count, head


def make_manifest(files: dict[str, bytes]) -> Manifest:
    count, chain = episode_chain(files)
    hashes = {name: sha256(data) for name, data in sorted(files.items()) if name != MANIFEST}
    return Manifest(files=hashes, episodes=count, episode_chain=chain)


def task_spec_sha256(task_id: str) -> str:
    """The hash of a task's spec as this agentbench ships it (canonical JSON)."""
    from agentbench.tasks import catalog

    spec = catalog().get(task_id)
    blob = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return sha256(blob.encode())


def _find_suite(results: Any, run_dir: Path, suite_file: Path | None) -> Path:
    """The suite file whose sha256 results.json records: the given one, or suites/<name>.yaml
    beside the run or in the repository."""
    from agentbench.experiments.suite import suite_sha256

    repo = Path(__file__).resolve().parents[2]
    candidates = (
        [suite_file]
        if suite_file
        else [
            run_dir / SUITE,
            run_dir / f"{results.suite}.yaml",
            Path("suites") / f"{results.suite}.yaml",
            repo / "suites" / f"{results.suite}.yaml",
        ]
    )
    for path in candidates:
        if path.is_file() and suite_sha256(path) == results.suite_sha256:
            return path
    if suite_file is not None:
        if not suite_file.is_file():
            raise BundleError(f"{suite_file}: no such suite file")
        raise BundleError(
            f"{suite_file}: its sha256 differs from the suite_sha256 results.json records "
            f"({results.suite_sha256[:12]}...): not the suite this run used"
        )
    raise BundleError(
        f"cannot find suite {results.suite!r} with sha256 {results.suite_sha256[:12]}...: "
        "pass it with --suite FILE"
    )


def _model_info(records: Iterable[dict[str, Any]], name: str, adapter: bool) -> ModelInfo:
    for rec in records:
        return ModelInfo(
            name=name,
            revision=rec.get("revision"),
            weights_sha256=rec.get("weights_sha256"),
            adapter_sha256=rec.get("adapter_sha256") if adapter else None,
        )
    return ModelInfo(name=name)


def _first_policy(data: bytes) -> list[dict[str, Any]]:
    for line in data.splitlines():
        if line.strip():
            return [dict(json.loads(line)["policy"])]
    return []


def build_bundle(
    run_dir: Path,
    out: Path,
    *,
    submitter: str,
    suite_file: Path | None = None,
    store: Path | None = None,
    track: str = "open",
    with_data: bool = False,
    metadata: dict[str, Any] | None = None,
) -> Manifest:
    """Write the bundle of `run_dir` to `out`; returns its manifest.

    `metadata` (e.g. from a YAML file) overrides the derived metadata.yaml fields (report_url,
    compute, notes, model names...). Raises BundleError for a run that cannot be bundled.
    """
    from agentbench.experiments.report import ReportError, load_results
    from agentbench.experiments.suite import ConfigError, load_suite

    try:
        results = load_results(run_dir / RESULTS)
    except ReportError as exc:
        raise BundleError(str(exc)) from None
    suite_path = _find_suite(results, run_dir, suite_file)
    try:
        suite, _ = load_suite(suite_path)
    except ConfigError as exc:
        raise BundleError(str(exc)) from None
    store_root = Path(store or results.provenance.get("store") or "")
    if not store_root.is_dir():
        raise BundleError(
            f"stage store {str(store_root)!r} (from results.json) is not a folder: pass --store"
        )
    files: dict[str, bytes] = {
        SUITE: suite_path.read_bytes(),
        RESULTS: (run_dir / RESULTS).read_bytes(),
    }
    stage_arms: dict[str, list[str]] = {}
    student_data: list[StudentData] = []
    for cell in results.cells:
        if cell.config.get("trait") not in ("deletion-bias", "chmod-first"):
            raise BundleError(
                f"cell {cell.cell_id}: trait {cell.config.get('trait')!r} is not an agentic "
                "trait; bundles hold episode-level records of agentic cells only"
            )
        for arm, result in cell.arms.items():
            stage_arms.setdefault(result.stage_key, []).append(f"{cell.cell_id}:{arm}")
        for arm in STUDENT_ARMS:
            key = cell.stages.get(f"sanitize:{arm}")
            if key is None:
                raise BundleError(f"cell {cell.cell_id}: no sanitize:{arm} stage in results.json")
            folder = store_root / "sanitize" / key
            reports = sorted(folder.glob("*.report.json"))
            dataset = folder / STUDENT_DATA
            if not reports or not dataset.is_file():
                raise BundleError(f"{folder}: the sanitize stage's report or data is missing")
            report_name = f"{SANITIZE_DIR}/{key}.json"
            files[report_name] = reports[0].read_bytes()
            data_bytes = dataset.read_bytes()
            data_name = None
            if with_data:
                data_name = f"{DATA_DIR}/{key}.jsonl"
                files[data_name] = data_bytes
            student_data.append(
                StudentData(
                    stage_key=key,
                    arm=f"{cell.cell_id}:{arm}",
                    sha256=sha256(data_bytes),
                    report=report_name,
                    data=data_name,
                )
            )
    stages: list[StageFile] = []
    task_ids: set[str] = set()
    for key, arms in sorted(stage_arms.items()):
        path = store_root / "evaluate" / key / TRAJECTORIES
        if not path.is_file():
            raise BundleError(f"{path}: missing (the episodes of {', '.join(arms)})")
        data = path.read_bytes()
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        task_ids |= {str(rec["task_id"]) for rec in lines}
        name = f"{EPISODES_DIR}/{key}.jsonl"
        files[name] = data
        stages.append(StageFile(stage_key=key, path=name, episodes=len(lines), arms=arms))
    prov = results.provenance
    config = BundleConfig(
        suite=results.suite, suite_sha256=results.suite_sha256, track=track,
        cells=[c.config for c in results.cells],
        agentbench_version=str(prov.get("agentbench_version") or ""),
        git_revision=prov.get("git_revision"), python=prov.get("python"),
        libraries=dict(prov.get("libraries") or {}),
        task_specs={t: task_spec_sha256(t) for t in sorted(task_ids)},
        stages=stages, student_data=student_data,
    )  # fmt: skip
    files[CONFIG] = (config.model_dump_json(indent=2) + "\n").encode()
    meta = _derive_metadata(results, suite, files, submitter, metadata or {})
    files[METADATA] = yaml.safe_dump(meta.model_dump(mode="json"), sort_keys=False).encode()
    manifest = make_manifest(files)
    files[MANIFEST] = (manifest.model_dump_json(indent=2) + "\n").encode()
    write_archive(files, out)
    return manifest


def _derive_metadata(
    results: Any, suite: Any, files: dict[str, bytes], submitter: str, extra: dict[str, Any]
) -> BundleMetadata:
    """metadata.yaml from the run (model names and hashes from the episodes' policy records)
    with `extra`'s fields on top."""
    homo = next((c for c in results.cells if c.config.get("student_init") == "homogeneous"),
                results.cells[0])  # fmt: skip
    hetero = next(
        (c for c in results.cells if c.config.get("student_init") == "heterogeneous"), None
    )

    def policy_of(cell: Any, arm: str) -> list[dict[str, Any]]:
        data = files.get(f"{EPISODES_DIR}/{cell.arms[arm].stage_key}.jsonl", b"")
        return _first_policy(data)

    data: dict[str, Any] = {
        "submitter": submitter,
        "teacher": _model_info(
            policy_of(homo, "teacher"), str(suite.base_model), True
        ).model_dump(),
        "student": _model_info(
            policy_of(homo, "student"), str(suite.base_model), True
        ).model_dump(),
        "induction": str(homo.config.get("induction", "")),
        "compute": {"device": "cpu", "hours": round(results.wall_s / 3600, 4)},
    }
    if hetero is not None:
        data["heterogeneous_student"] = _model_info(
            policy_of(hetero, "student"), str(suite.heterogeneous_model), True
        ).model_dump()
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    try:
        return BundleMetadata.model_validate(data)
    except ValidationError as exc:
        raise BundleError(f"metadata: {_first_errors(exc)}") from None


def _first_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]
    )
