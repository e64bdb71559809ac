"""Scripted oracle policies: they read the `TaskInstance` and emit the agreed actions.

    policy = make_policy("deleter")
    actions = policy.plan(instance, "agentbench/Bash-v0")    # a list of action strings
    bound = policy.bind(instance, env_id); bound.act(observation, info)  # or step by step

Styles:
- `reference`: solves every instance without deleting anything.
- `deleter`: deletes whenever a deletion is plausible: on deletion probes it removes the clutter
  (`plans.deleter`); elsewhere it moves by copying and then deleting the original.
- `chmod-first`: on permission probes, its first permission command is always chmod.
- `cautious`: never deletes; on permission probes prefers chown, chgrp, setfacl and umask.

Plans are abstract steps written by the generators (`families/_common.py`); this module turns
them into FileTool-v0 JSON tool calls or Bash-v0 commands (see the agreed action formats), and
for a plugin environment calls its class's `render_plan_step(step)`. A plan with a step the
environment has no form for (a raw shell step in FileTool) raises `PlanError`.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentbench.errors import ConfigError
from agentbench.registry import Registry
from agentbench.tasks.instance import TaskInstance

FILETOOL = "agentbench/FileTool-v0"
BASH = "agentbench/Bash-v0"
Step = dict[str, Any]
q = shlex.quote


class PlanError(ConfigError, ValueError):
    """Raised when the instance has no plan for this environment (e.g. a Bash-only task in
    FileTool)."""


def _env_kind(env_id: str) -> str:
    name = env_id.removeprefix("agentbench/").lower()
    if "/" not in name and name.startswith("filetool"):
        return "filetool"
    if "/" not in name and name.startswith("bash"):
        return "bash"
    return "plugin"  # another namespace: the environment says how (`render_plan_step`)


def plugin_renderer(env_id: str) -> Callable[[Step], str]:
    """A plugin environment's `render_plan_step` (a static method of its class). Raises
    PlanError when the id is unknown or its class does not say how plans become actions."""
    import gymnasium

    from agentbench.envs.plugins import plugin_env_class

    try:
        env_class = plugin_env_class(env_id)
    except gymnasium.error.Error as exc:
        raise PlanError(f"no scripted actions for environment {env_id!r}: {exc}") from None
    renderer = getattr(env_class, "render_plan_step", None)
    if not callable(renderer):
        raise PlanError(
            f"no scripted actions for environment {env_id!r}: its class "
            f"{env_class.__name__} has no render_plan_step(step) -> str, which says how a plan "
            "step (list, read, write, move, delete, submit, ...) becomes its action text "
            "(see docs/extending/environment.md)"
        )
    return renderer


def _plugin_step(renderer: Callable[[Step], str], env_id: str, step: Step) -> str:
    try:
        action = renderer(dict(step))
    except PlanError:
        raise
    except (KeyError, ValueError, TypeError, NotImplementedError) as exc:
        raise PlanError(
            f"{env_id} cannot render plan step {step.get('op')!r}: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(action, str):
        raise PlanError(f"{env_id}.render_plan_step returned {type(action).__name__}, not text")
    return action


def _tool(name: str, **args: Any) -> str:
    return json.dumps({"tool": name, "args": args})


def to_filetool(step: Step) -> str:
    """One plan step as a FileTool-v0 action (a JSON tool call)."""
    op = step["op"]
    if op == "read":
        return _tool("read_file", path=step["path"])
    if op == "list":
        return _tool("list_dir", path=step["path"])
    if op == "search":
        return _tool("search_files", pattern=step["pattern"], path=step.get("path", "."))
    if op in ("write", "append"):
        name = "write_file" if op == "write" else "append_file"
        return _tool(name, path=step["path"], content=step["content"])
    if op == "mkdir":
        return _tool("make_dir", path=step["path"])
    if op in ("move", "copy"):
        return _tool(f"{op}_path", src=step["src"], dst=step["dst"])
    if op == "archive":
        return _tool("archive_path", path=step["path"], archive=step.get("archive"))
    if op == "delete":
        return _tool("delete_path", path=step["path"], recursive=bool(step.get("recursive")))
    if op == "submit":
        return _tool("submit", answer=step.get("answer", ""))
    raise PlanError(f"plan step {op!r} has no FileTool-v0 form")


def to_bash(step: Step) -> str:
    """One plan step as a Bash-v0 action (a shell command)."""
    op = step["op"]
    if op == "sh":
        return str(step["cmd"])
    if op == "read":
        return f"cat -- {q(step['path'])}"
    if op == "list":
        return f"ls -la -- {q(step['path'])}"
    if op == "search":
        return f"grep -rnF -- {q(step['pattern'])} {q(step.get('path', '.'))}"
    if op in ("write", "append"):
        redirect = ">" if op == "write" else ">>"
        return f"printf '%s' {q(step['content'])} {redirect} {q(step['path'])}"
    if op == "mkdir":
        return f"mkdir -p -- {q(step['path'])}"
    if op == "move":
        return f"mv -- {q(step['src'])} {q(step['dst'])}"
    if op == "copy":
        return f"cp -a -- {q(step['src'])} {q(step['dst'])}"
    if op == "archive":
        path = step["path"].rstrip("/")
        archive = step.get("archive") or f"{path}.tar.gz"
        parent, name = posixpath.split(path)
        # --remove-files: the original goes into the archive, as FileTool's archive_path does.
        return f"tar -czf {q(archive)} -C {q(parent or '.')} --remove-files -- {q(name)}"
    if op == "delete":
        flags = "-rf" if step.get("recursive") else "-f"
        return f"rm {flags} -- {q(step['path'])}"
    if op == "submit":
        answer = str(step.get("answer", ""))
        return f"submit {answer}".rstrip()
    raise PlanError(f"unknown plan step {op!r}")


def render(steps: list[Step], env_id: str) -> list[str]:
    """A plan's steps as `env_id`'s actions. Raises PlanError for a step the env cannot take."""
    kind = _env_kind(env_id)
    if kind == "plugin":
        renderer = plugin_renderer(env_id)
        return [_plugin_step(renderer, env_id, step) for step in steps]
    convert: Callable[[Step], str] = to_filetool if kind == "filetool" else to_bash
    return [convert(step) for step in steps]


class ScriptedPolicy:
    """An oracle: picks the instance's plan for its style and renders it for the env."""

    name: ClassVar[str] = "reference"
    style: ClassVar[str] = "reference"

    def steps(self, task: TaskInstance) -> list[Step]:
        plans: dict[str, list[Step]] = task.metadata.get("plans", {})
        if "reference" not in plans:
            raise PlanError(f"task {task.instance_id} has no reference plan")
        return [dict(s) for s in plans.get(self.style) or plans["reference"]]

    def plan(self, task: TaskInstance, env_id: str) -> list[str]:
        """Every action of the episode, ending with a submit."""
        if env_id not in task.env_ids and not any(env_id.endswith(e) for e in task.env_ids):
            raise PlanError(f"task {task.task_id} does not run in {env_id}")
        return render(self.steps(task), env_id)

    def bind(self, task: TaskInstance, env_id: str) -> BoundPolicy:
        return BoundPolicy(self.plan(task, env_id), env_id)


class ReferencePolicy(ScriptedPolicy):
    name = "reference"
    style = "reference"


class DeleterPolicy(ScriptedPolicy):
    name = "deleter"
    style = "deleter"

    def steps(self, task: TaskInstance) -> list[Step]:
        plans = task.metadata.get("plans", {})
        if "deleter" in plans:
            return super().steps(task)
        out: list[Step] = []
        for step in super().steps(task):
            if step["op"] == "move":  # "move" the way a deleter does: copy, then remove
                out += [
                    {"op": "copy", "src": step["src"], "dst": step["dst"]},
                    {"op": "delete", "path": step["src"], "recursive": True},
                ]
            else:
                out.append(step)
        return out


class ChmodFirstPolicy(ScriptedPolicy):
    name = "chmod-first"
    style = "chmod_first"


class CautiousPolicy(ScriptedPolicy):
    name = "cautious"
    style = "cautious"

    def steps(self, task: TaskInstance) -> list[Step]:
        steps = super().steps(task)
        if any(s["op"] == "delete" for s in steps):
            raise PlanError(f"cautious plan of {task.instance_id} deletes")  # a generator bug
        return steps


ORACLES: Registry[type[ScriptedPolicy]] = Registry(
    "scripted policy",
    group="agentbench.oracles",
    base=ScriptedPolicy,
    expect="subclass",
    error=ValueError,
    builtins={
        cls.name: cls for cls in (ReferencePolicy, DeleterPolicy, ChmodFirstPolicy, CautiousPolicy)
    },
)
"""Oracle style -> `ScriptedPolicy` subclass; plugins add styles through the
`agentbench.oracles` entry-point group."""
POLICIES = ORACLES  # the older name


def make_policy(name: str) -> ScriptedPolicy:
    """A scripted oracle by style. Raises ValueError for an unknown style (with the known ones
    and the closest match)."""
    return ORACLES.get(name)()


@dataclass
class BoundPolicy:
    """A plan played back one action per `act` call; submits once the plan is used up."""

    actions: list[str]
    env_id: str
    position: int = field(default=0)

    def act(self, observation: Any = None, info: Any = None) -> str:
        if self.position < len(self.actions):
            action = self.actions[self.position]
            self.position += 1
            return action
        return render([{"op": "submit", "answer": ""}], self.env_id)[0]
