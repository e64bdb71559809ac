"""The distillation stage: `distill(config, data) -> Path`, content-addressed, with a manifest.

The output directory holds the student (a PEFT adapter or a full model), its tokenizer and
`manifest.json`: config, data file sha256 and example counts, the student base's (and for
logit-kl the teacher's and its adapter's) weights sha256, the soft-label mask, library
versions, git revision, seed, a loss-history summary, tokens seen and wall time.

Cache key: sha256 over the result-deciding config fields, the data sha256, the base and
teacher hashes, the banned terms and the torch/transformers/peft/trl versions (not the git
revision, so a dirty checkout can still reuse work). Without `out` the directory is
`cache_dir("distill", key[:16])`. A finished directory whose manifest has the same key is
returned as is; `force` rebuilds. Training writes into a temporary sibling renamed into place
when complete, and the manifest is written atomically, so a killed run leaves no half output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agentbench.distill.config import DistillConfig, resolve_banned_terms
from agentbench.distill.data import DistillDataError, encode_examples, require_chat_template
from agentbench.distill.sft import DistillError, TrainResult, load_tokenizer

MANIFEST = "manifest.json"
DISTILL_SCHEMA_VERSION = 1
KEY_LIBRARIES = ("torch", "transformers", "peft", "trl")
HISTORY_POINTS = 500


class DistillManifest(BaseModel):
    """What `manifest.json` of a distilled student holds."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = DISTILL_SCHEMA_VERSION
    key: str
    mode: str
    seed: int
    config: dict[str, Any]
    data: dict[str, Any]
    student: dict[str, Any]
    teacher: dict[str, Any] | None = None
    banned: dict[str, Any] | None = None
    output: dict[str, Any]
    train: dict[str, Any]
    provenance: dict[str, Any]
    finished_at: str


def read_manifest(directory: Path) -> DistillManifest | None:
    """The manifest of a finished output directory, or None (missing or unreadable)."""
    try:
        return DistillManifest.model_validate_json((directory / MANIFEST).read_bytes())
    except (OSError, ValidationError, ValueError):
        return None


def write_manifest(directory: Path, manifest: DistillManifest) -> Path:
    """Write `manifest.json` atomically (temp file, fsync, rename)."""
    target = directory / MANIFEST
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(manifest.model_dump_json(indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _history_summary(result: TrainResult) -> dict[str, Any]:
    history = result.loss_history
    step = max(1, len(history) // HISTORY_POINTS + (len(history) % HISTORY_POINTS > 0))
    losses = [loss for _, loss in history]
    return {
        "steps": result.steps,
        "epochs": round(result.epochs, 4),
        "train_loss": result.train_loss,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "loss_min": min(losses) if losses else None,
        "loss_history": history[::step],
        "tokens_seen": result.tokens_seen,
        "target_tokens_seen": result.target_tokens_seen,
        "wall_s": round(result.wall_s, 3),
        "tokens_per_s": round(result.tokens_per_s, 2),
        "model_flops": result.flops,
        "model_gflops_per_s": round(result.flops / result.wall_s / 1e9, 3) if result.wall_s else 0,
        "metrics": result.metrics,
    }


def distill(
    config: DistillConfig,
    data: str | Path,
    out: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = False,
) -> Path:
    """Distill a student from the student dataset `data`; the output directory.

    Raises `DistillDataError` (bad or empty data, nothing fits, no chat template) and
    `DistillError` (unknown model, teacher/vocabulary mismatch, an `out` holding another run,
    a zero-step run).
    """
    from agentbench.models import ModelError, model_weights_sha256, resolve_model, weights_sha256
    from agentbench.provenance import file_sha256, library_versions, provenance
    from agentbench.sanitize.schema import StudentDataError, read_examples

    started = time.perf_counter()
    data_path = Path(data)
    if not data_path.is_file():
        raise DistillDataError(f"{data_path}: no such student dataset file")
    try:
        examples = read_examples(data_path)
    except StudentDataError as exc:
        raise DistillDataError(str(exc)) from None
    data_sha = file_sha256(data_path)
    try:
        student_path = resolve_model(config.student)
        student_sha = model_weights_sha256(student_path)
    except ModelError as exc:
        raise DistillError(f"student: {exc}") from None

    teacher_info: dict[str, Any] | None = None
    teacher_path: Path | None = None
    banned_terms: tuple[str, ...] = ()
    banned_source: str | None = None
    if config.teacher is not None:
        try:
            teacher_path = resolve_model(config.teacher.model)
            adapter = config.teacher.adapter
            if adapter is not None and not (adapter / "adapter_config.json").is_file():
                raise DistillError(f"teacher adapter {adapter} holds no adapter_config.json")
            teacher_info = {
                "model": config.teacher.model,
                "path": str(teacher_path),
                "weights_sha256": model_weights_sha256(teacher_path),
                "adapter": str(adapter) if adapter else None,
                "adapter_sha256": weights_sha256(adapter) if adapter else None,
                "system_prompt_sha256": (
                    hashlib.sha256(config.teacher.system_prompt.encode()).hexdigest()
                    if config.teacher.system_prompt is not None
                    else None
                ),
            }
        except ModelError as exc:
            raise DistillError(f"teacher: {exc}") from None
        banned_terms, banned_source = resolve_banned_terms(config)

    key = cache_key(
        {
            "schema": DISTILL_SCHEMA_VERSION,
            "config": config.key_fields(),
            "data_sha256": data_sha,
            "student_sha256": student_sha,
            "teacher": teacher_info and {k: v for k, v in teacher_info.items() if k != "path"},
            "banned_terms": sorted(banned_terms),
            "libraries": library_versions(KEY_LIBRARIES),
        }
    )
    from agentbench.paths import cache_dir

    target = Path(out) if out is not None else cache_dir("distill") / key[:16]
    if target.exists() and not target.is_dir():
        raise DistillError(f"{target} is a file, not an output directory")
    existing = read_manifest(target)
    if existing is not None and existing.key == key and not force:
        return target
    if target.exists() and any(target.iterdir()) and not force:
        what = "another distillation" if existing is not None else "files that are not a student"
        raise DistillError(f"{target} holds {what}; choose another --out or pass --force")

    tokenizer = load_tokenizer(student_path)
    require_chat_template(tokenizer, str(student_path))
    max_length = config.max_length or _context_of(student_path)
    teacher_prompt = config.teacher.system_prompt if config.teacher is not None else None
    rows, stats = encode_examples(
        examples,
        tokenizer,
        max_length=max_length,
        overlong=config.overlong,
        source=str(data_path),
        teacher_system_prompt=teacher_prompt,
    )

    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        banned_summary: dict[str, Any] | None = None
        if config.mode == "logit-kl":
            from agentbench.distill.logits import banned_token_ids, same_vocabulary, train_logit_kl

            assert teacher_path is not None
            if not same_vocabulary(tokenizer, load_tokenizer(teacher_path)):
                raise DistillError(
                    f"the teacher {config.teacher.model if config.teacher else ''} has another "
                    "tokenizer than the student: logit-kl needs one vocabulary (use an SFT mode)"
                )
            banned = banned_token_ids(tokenizer, banned_terms)
            banned_summary = {"source": banned_source, **banned.summary()}
            result = train_logit_kl(
                config, rows, tokenizer, student_path, teacher_path, banned, building,
                progress=progress,
            )  # fmt: skip
        else:
            from agentbench.distill.sft import train_sft

            result = train_sft(config, rows, tokenizer, student_path, building, progress=progress)
        shutil.rmtree(building / "trainer", ignore_errors=True)
        manifest = DistillManifest(
            key=key,
            mode=config.mode,
            seed=config.seed,
            config=config.model_dump(mode="json"),
            data={"path": str(data_path.resolve()), "sha256": data_sha, **stats.as_dict()},
            student={
                "model": config.student,
                "path": str(student_path),
                "weights_sha256": student_sha,
            },
            teacher=teacher_info,
            banned=banned_summary,
            output={"kind": result.kind, "weights_sha256": weights_sha256(building)},
            train={
                **_history_summary(result),
                "total_wall_s": round(time.perf_counter() - started, 3),
            },
            provenance=provenance(),
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        write_manifest(building, manifest)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{time.time_ns()}")
            target.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        building.rename(target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return target


def _context_of(path: Path) -> int:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as exc:
        raise DistillError(f"cannot read the model config in {path}: {exc}") from exc
    return int(getattr(config, "max_position_embeddings", None) or 2048)
