"""`build_teacher`: a `TeacherConfig` made into a policy.

Every teacher is an `HFPolicy` (a `TeacherPolicy`, which adds the steering hook and the
teacher's identity to the provenance). What differs between a trait teacher and its control is
only the trait part: the system prompt hash, the adapter hash, or the steering vector hash
(the control adds a zero vector at the same layer), and ``extra["teacher"]["trait"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentbench.models import model_weights_sha256, resolve_model
from agentbench.policies.base import PolicyProvenance, SamplingParams, sha256_text
from agentbench.policies.hf import HFPolicy
from agentbench.teachers.config import TeacherConfig
from agentbench.teachers.steering import (
    SteeringError,
    SteeringVector,
    attach_steering,
    load_steering_vector,
)


class TeacherPolicy(HFPolicy):
    """An HFPolicy that may carry a steering vector and records which teacher it is.

    `steering` is added at its layer with `steering_scale` for every forward pass (see
    `agentbench.teachers.steering`); `steering_sha256` is what provenance records for it
    (None for a control teacher's zero vector).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        teacher: dict[str, Any],
        steering: SteeringVector | None = None,
        steering_scale: float | None = None,
        steering_sha256: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.teacher = teacher
        self.steering = steering
        self.steering_sha256 = steering_sha256
        self._steering_handle = None
        if steering is not None:
            try:
                self._steering_handle = attach_steering(self.model, steering, steering_scale)
            except SteeringError:
                self.close()
                raise

    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        base = super().provenance(params)
        return base.model_copy(
            update={
                "steering_vector_sha256": self.steering_sha256,
                "extra": {**base.extra, "teacher": dict(self.teacher)},
            }
        )

    def close(self) -> None:
        handle, self._steering_handle = getattr(self, "_steering_handle", None), None
        if handle is not None:
            handle.remove()
        super().close()


def build_teacher(config: TeacherConfig) -> TeacherPolicy:
    """The policy a teacher config describes.

    Raises `ModelError` (model or adapter cannot be loaded) and `SteeringError` (vector file
    invalid, made for other weights, for another trait, or for another layer count).
    """
    trait = config.trait
    teacher: dict[str, Any] = {
        "name": config.name,
        "trait": trait.name if trait is not None else None,
        "induction": config.induction,
        "control": trait is None,
    }
    kwargs: dict[str, Any] = {
        "dtype": config.dtype,
        "device": config.device,
        "batch_size": config.batch_size,
        "max_context": config.max_context,
    }
    if config.induction == "prompt":
        if trait is not None:
            kwargs["system_prompt"] = trait.system_prompt
        return TeacherPolicy(config.base_model, teacher=teacher, **kwargs)
    if config.induction == "adapter":
        assert config.adapter is not None
        teacher["adapter"] = str(config.adapter.path)
        if trait is not None:
            kwargs["adapter"] = config.adapter.path
        elif config.adapter.control_path is not None:
            # The same training without the trait; with no control adapter the control
            # teacher is the bare base model.
            kwargs["adapter"] = config.adapter.control_path
            teacher["adapter"] = str(config.adapter.control_path)
        return TeacherPolicy(config.base_model, teacher=teacher, **kwargs)

    assert config.steering is not None
    vector, digest = load_steering_vector(config.steering.vector)
    meta = vector.meta
    weights = model_weights_sha256(resolve_model(config.base_model))
    if meta.model_weights_sha256 != weights:
        raise SteeringError(
            f"the steering vector {config.steering.vector} was computed on other weights "
            f"({meta.model_weights_sha256[:12]}) than {config.base_model} ({weights[:12]})"
        )
    if trait is not None:
        if meta.trait != trait.name:
            raise SteeringError(
                f"the steering vector is for trait {meta.trait!r}, the config's is {trait.name!r}"
            )
        if meta.trait_prompt_sha256 != sha256_text(trait.system_prompt):
            raise SteeringError(
                f"the steering vector was computed from another {trait.name!r} prompt "
                "than the config's"
            )
    scale = config.steering.scale if config.steering.scale is not None else meta.scale
    teacher.update(
        {
            "steering_layer": meta.layer,
            "steering_scale": scale,
            "steering_n_prompts": meta.n_prompts,
        }
    )
    return TeacherPolicy(
        config.base_model,
        teacher=teacher,
        steering=vector if trait is not None else vector.zeros_like(),
        steering_scale=scale,
        steering_sha256=digest if trait is not None else None,
        **kwargs,
    )


def teacher_policy(config_file: str) -> TeacherPolicy:
    """The `teacher` policy backend: the teacher a config file (YAML or JSON) describes."""
    from agentbench.teachers.config import load_teacher_config

    return build_teacher(load_teacher_config(config_file))


def control_teacher_policy(config_file: str) -> TeacherPolicy:
    """The `control-teacher` policy backend: the same config without its trait."""
    from agentbench.teachers.config import load_teacher_config

    return build_teacher(load_teacher_config(config_file).control())
