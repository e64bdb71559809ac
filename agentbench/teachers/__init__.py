"""Teachers: a base model with a hidden trait, induced by prompt, adapter or steering vector.

`TeacherConfig` says which (see `agentbench.teachers.config`), `build_teacher` makes the
policy, and `agentbench.teachers.steering` computes, stores and applies steering vectors.
A control teacher is the same config with ``trait=None``.
"""

from __future__ import annotations

from agentbench.teachers.config import (
    DEFAULT_TRAITS,
    AdapterParams,
    Induction,
    SteeringParams,
    TeacherConfig,
    TeacherConfigError,
    TraitSpec,
    load_teacher_config,
    trait_spec,
)
from agentbench.teachers.steering import (
    SteeringError,
    SteeringMeta,
    SteeringVector,
    attach_steering,
    compute_steering_vector,
    load_steering_vector,
    save_steering_vector,
    steered,
    task_conversations,
)
from agentbench.teachers.teacher import (
    TeacherPolicy,
    build_teacher,
    control_teacher_policy,
    teacher_policy,
)

__all__ = [
    "DEFAULT_TRAITS",
    "AdapterParams",
    "Induction",
    "SteeringError",
    "SteeringMeta",
    "SteeringParams",
    "SteeringVector",
    "TeacherConfig",
    "TeacherConfigError",
    "TeacherPolicy",
    "TraitSpec",
    "attach_steering",
    "build_teacher",
    "compute_steering_vector",
    "control_teacher_policy",
    "load_steering_vector",
    "load_teacher_config",
    "save_steering_vector",
    "steered",
    "task_conversations",
    "teacher_policy",
    "trait_spec",
]
