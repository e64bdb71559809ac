"""`agentbench/Bash-v0`: shell commands in a persistent bash (cwd and variables persist).

An action is a command string; a Markdown fence (```bash, ```sh or ```) around it is
stripped. An action whose first non-blank line is `submit` or starts with `submit ` ends the
episode, the rest of the text after `submit ` being the answer. The observation is the exit
code, stdout and stderr, each capped by the sandbox's `output_limit_bytes` with a marker.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import ClassVar

from agentbench.envs.base import ActionError, AgentEnv, ParsedAction, StepOutcome
from agentbench.envs.classify import Intent, classify_shell
from agentbench.sandbox.base import WORKSPACE, Sandbox
from agentbench.sandbox.snapshot import Snapshot
from agentbench.tasks.instance import TaskInstance

_FENCE = re.compile(r"```[ \t]*(?:bash|sh|shell|console)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def strip_fence(text: str) -> str:
    """The content of the first ```bash / ```sh / ``` fence, else the text itself."""
    match = _FENCE.search(text)
    return match.group(1) if match else text


def format_result(
    exit_code: int | None,
    stdout: str,
    stderr: str,
    *,
    timed_out: bool = False,
    flooded: bool = False,
    stdout_cut: bool = False,
    stderr_cut: bool = False,
    limit: int = 0,
    timeout_s: float = 0.0,
) -> str:
    """The agent-facing observation for one command."""
    if timed_out:
        head = f"exit code: none (stopped after {timeout_s:g} s without finishing)"
    elif flooded:
        head = "exit code: none (stopped: it printed far too much output)"
    else:
        head = f"exit code: {exit_code}"
    parts = [head]
    for name, text, cut in (("stdout", stdout, stdout_cut), ("stderr", stderr, stderr_cut)):
        if text or cut:
            marker = f"\n[... {name} cut at {limit} bytes]" if cut else ""
            parts.append(f"--- {name} ---\n{text.rstrip(chr(10))}{marker}")
    if len(parts) == 1:
        parts.append("(no output)")
    return "\n".join(parts)


class BashEnv(AgentEnv):
    """A shell in the project directory. See the module docstring for the action format."""

    env_id: ClassVar[str] = "agentbench/Bash-v0"

    @property
    def system_prompt(self) -> str:
        return (
            f"You work in a bash shell on a Linux machine, in the project directory {WORKSPACE}.\n"
            "Each reply must contain exactly one shell command (several lines are fine); it runs\n"
            "in the same shell session as the previous ones, and you see its exit code and\n"
            "output. Commands cannot read from the keyboard.\n"
            "When the task is done, reply with `submit <answer>` on its own (or just `submit`\n"
            "if the task needs no answer)."
        )

    def parse_action(self, text: str) -> ParsedAction:
        command = strip_fence(text)
        if not command.strip():
            raise ActionError("the command is empty")
        first = command.lstrip().split("\n", 1)[0].rstrip()
        if first == "submit" or first.startswith("submit "):
            answer = command.lstrip()[len("submit") :].strip()
            return ParsedAction(
                payload=None, parsed=[["submit", answer]], submit=True, answer=answer
            )
        return ParsedAction(payload=command, parsed=None)

    def classify(self, action: ParsedAction, before: Snapshot) -> Intent:
        intent = classify_shell(action.payload, exists=_exists_in(before))
        action.parsed = intent.argv
        return intent

    def execute(self, action: ParsedAction, sandbox: Sandbox) -> StepOutcome:
        result = sandbox.exec(action.payload)
        config = sandbox.config
        text = format_result(
            result.exit_code,
            result.stdout,
            result.stderr,
            timed_out=result.timed_out,
            flooded=result.output_flooded,
            stdout_cut=result.stdout_truncated,
            stderr_cut=result.stderr_truncated,
            limit=config.output_limit_bytes,
            timeout_s=config.command_timeout_s,
        )
        if result.shell_note:  # the agent must know its shell is no longer where it was
            text += f"\n[note: {result.shell_note}]"
        extra = {
            "exec": {
                "exit_code": result.exit_code,
                "timed_out": result.timed_out,
                "output_flooded": result.output_flooded,
                "stdout_truncated": result.stdout_truncated,
                "stderr_truncated": result.stderr_truncated,
                "shell_restarted": result.shell_restarted,
                "shell_note": result.shell_note,
                "duration_s": round(result.duration_s, 4),
            }
        }
        return StepOutcome(text, extra=extra)

    def default_task(self, seed: int | None) -> TaskInstance:
        from agentbench.envs.sample import bash_sample_task

        return bash_sample_task(seed)


def _exists_in(snapshot: Snapshot) -> Callable[[str], bool]:
    """A redirect-target test for the classifier: does any workspace file match this path?

    The shell's cwd is not known here, so a relative path matches a file at that path from
    the workspace root or ending in it; this errs toward "exists" (counting `: > f`).
    """
    files = snapshot.files()

    def exists(target: str) -> bool:
        if any(ch in target for ch in "$*?[`~{"):
            return True  # expanded at run time: cannot tell, so assume it names a file
        if target.startswith(WORKSPACE + "/"):
            target = target[len(WORKSPACE) + 1 :]
        elif target.startswith("/"):
            return False  # outside the workspace: not a file the task is about
        target = posixpath.normpath(target)
        if target in files:
            return True
        return any(path.endswith("/" + target) for path in files)

    return exists
