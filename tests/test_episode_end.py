"""What an agent leaves behind must not change how its episode is checked."""

from __future__ import annotations

import time
from pathlib import Path

import gymnasium
import pytest

import agentbench.envs  # noqa: F401  (registers the environments)
from agentbench.sandbox import Fixture, FixtureEntry
from agentbench.tasks.instance import CheckContext, CheckResult, TaskInstance

pytestmark = pytest.mark.bwrap


def _task() -> TaskInstance:
    def check(ctx: CheckContext) -> CheckResult:
        # Both kinds of sandbox access a checker uses: a file helper and a raw command.
        content = ctx.sandbox.read_file("notes/todo.txt").decode()
        listing = ctx.sandbox.exec("ls notes").stdout.split()
        ok = content == "ship it\n" and listing == ["todo.txt"] and ctx.answer == "done"
        return CheckResult(ok, float(ok), f"content={content!r} listing={listing}")

    fixture = Fixture(entries=(FixtureEntry(path="notes/todo.txt", text="ship it\n"),))
    return TaskInstance(
        task_id="test/tampering",
        family="test",
        split="eval",
        seed=0,
        instruction="Say done.",
        fixture=fixture,
        check=check,
        env_ids=("agentbench/Bash-v0",),
    )


def test_agent_shell_state_cannot_fool_the_checker(bwrap_rootfs: Path) -> None:
    env = gymnasium.make("agentbench/Bash-v0", sandbox="bwrap")
    try:
        env.reset(options={"task": _task()})
        tamper = (
            "cd /tmp; export PATH=/nonexistent; "
            "base64() { echo AAAA; }; stat() { echo 1; }; ls() { echo fake; }; "
            "(/bin/sleep 0.3; echo late > /workspace/notes/late.txt) &"
        )
        _, _, _, _, info = env.step(tamper)
        assert info["action_valid"]
        _, reward, terminated, _, info = env.step("submit done")
        assert terminated
        assert info["outcome"]["success"], info["outcome"]["reason"]
        assert reward == 1.0
        # The background job died with the old shell: nothing lands after the episode ended.
        time.sleep(0.6)
        workspace = env.unwrapped._sandbox.workspace_host_path
        assert not (workspace / "notes" / "late.txt").exists()
    finally:
        env.close()
