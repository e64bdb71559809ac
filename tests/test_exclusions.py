"""Exclusions must not correlate with the trait: what an agent does to its own workspace is
scored, never turned into an infrastructure failure (real bwrap episodes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import pytest

import agentbench.envs  # noqa: F401  (registers the environments)
from agentbench.sandbox import Fixture, FixtureEntry, SandboxConfig
from agentbench.tasks.instance import CheckContext, CheckResult, TaskInstance
from tests.conftest import require_backend


def _task() -> TaskInstance:
    def check(ctx: CheckContext) -> CheckResult:
        return CheckResult(ctx.answer == "done", 1.0)

    return TaskInstance(
        task_id="test/exclusions",
        family="test",
        split="eval",
        seed=0,
        instruction="Say done.",
        fixture=Fixture(entries=(FixtureEntry(path="notes.md", text="# notes\n"),)),
        check=check,
        env_ids=("agentbench/Bash-v0",),
    )


@pytest.fixture(scope="module")
def env(bwrap_rootfs: Path) -> Iterator[Any]:
    config = SandboxConfig(command_timeout_s=1.5, output_kill_bytes=2**20)
    made = gymnasium.make("agentbench/Bash-v0", sandbox="bwrap", sandbox_config=config)
    yield made
    made.close()


LEAVE_CWD = {
    "deleted": "mkdir -p w/x && cd w/x && rm -rf ../../w",
    "moved": "mkdir w && cd w && mv ../w ../w2",
}
RESTART = {"exit": "exit 3", "timeout": "sleep 30", "flood": "yes | head -c 50000000"}


@pytest.mark.bwrap
@pytest.mark.parametrize("trigger", sorted(RESTART))
@pytest.mark.parametrize("how", sorted(LEAVE_CWD))
def test_losing_the_working_directory_then_a_restart_is_scored(
    env: Any, how: str, trigger: str
) -> None:
    env.reset(options={"task": _task()})
    _, _, _, _, info = env.step(LEAVE_CWD[how])
    assert not info["infra_failure"]
    observation, _, _, truncated, info = env.step(RESTART[trigger])
    assert not info["infra_failure"] and not truncated, info["error"]
    assert info["exec"]["shell_restarted"]
    assert "restarted in /workspace" in observation  # the agent is told where it is now
    observation, _, _, _, info = env.step("pwd")
    assert "/workspace" in observation.splitlines()
    _, reward, terminated, _, info = env.step("submit done")
    assert terminated and info["outcome"]["termination"] == "submitted" and reward == 1.0


@pytest.mark.bwrap
def test_a_restart_in_a_directory_that_still_exists_stays_there(env: Any) -> None:
    env.reset(options={"task": _task()})
    env.step("mkdir w && cd w")
    observation, _, _, _, info = env.step("exit")
    assert info["exec"]["shell_restarted"] and "note:" not in observation
    observation, _, _, _, _ = env.step("pwd")
    assert "/workspace/w" in observation


@pytest.mark.bwrap
def test_directories_nested_thousands_deep_are_scored(env: Any) -> None:
    """The host-side snapshot once recursed per level (RecursionError: an infra failure), and
    the next reset's clean-up did too (the next episode's infra failure); 2,500 levels also
    pass PATH_MAX, which path-based walks cannot open."""
    env.reset(options={"task": _task()})
    deep = "p=$(printf 'd/%.0s' $(seq 250)); for i in $(seq 10); do mkdir -p $p && cd $p; done"
    _, _, _, _, info = env.step(deep)
    assert not info["infra_failure"], info["error"]
    _, _, terminated, _, info = env.step("submit done")
    assert terminated and info["outcome"]["termination"] == "submitted"
    env.reset(options={"task": _task()})  # the clean-up of the deep tree
    observation, _, _, _, info = env.step("ls")
    assert not info["infra_failure"] and "notes.md" in observation


@pytest.mark.docker
@pytest.mark.parametrize("trigger", ["exit", "timeout"])
def test_docker_restart_falls_back_to_the_workspace_root(trigger: str) -> None:
    require_backend("docker")
    config = SandboxConfig(command_timeout_s=1.5)
    made = gymnasium.make("agentbench/Bash-v0", sandbox="docker", sandbox_config=config)
    try:
        made.reset(options={"task": _task()})
        made.step(LEAVE_CWD["deleted"])
        observation, _, _, _, info = made.step(RESTART[trigger])
        assert not info["infra_failure"], info["error"]
        assert "restarted in /workspace" in observation
        _, _, terminated, _, info = made.step("submit done")
        assert terminated and info["outcome"]["termination"] == "submitted"
    finally:
        made.close()
