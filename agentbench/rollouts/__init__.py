"""Rollouts: run a policy on task instances in sandboxed environments and keep trajectories.

    from agentbench.rollouts import make_jobs, run_rollouts, read_trajectories

`schema` is the trajectory record (one JSON line per episode), `store` the crash-safe JSONL
writer, `engine` the batched lockstep runner, `cli` the `agentbench rollouts` commands.
"""

from __future__ import annotations

from agentbench.rollouts.engine import (
    RolloutJob,
    RolloutSummary,
    default_policy_tag,
    make_jobs,
    run_rollouts,
)
from agentbench.rollouts.schema import SCHEMA_VERSION, StepRecord, Trajectory
from agentbench.rollouts.store import (
    StoreError,
    TrajectoryStore,
    iter_trajectories,
    read_trajectories,
)

__all__ = [
    "SCHEMA_VERSION",
    "RolloutJob",
    "RolloutSummary",
    "StepRecord",
    "StoreError",
    "Trajectory",
    "TrajectoryStore",
    "default_policy_tag",
    "iter_trajectories",
    "make_jobs",
    "read_trajectories",
    "run_rollouts",
]
