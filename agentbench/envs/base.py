"""The shared gymnasium environment: one task per episode, one sandbox per environment.

    env = gymnasium.make("agentbench/Bash-v0", sandbox="bwrap")
    observation, info = env.reset(seed=0, options={"task": task_instance})
    observation, reward, terminated, truncated, info = env.step("ls -la")

Actions and observations are text (`gymnasium.spaces.Text` over `string.printable`, empty
allowed). `reset` builds a fresh workspace from the task's fixture and returns the task's
instruction; `step` parses the action, runs it in the sandbox and observes. Every step's `info`
carries `action_valid`, `error`, `parsed`, `intent` (read from the action), `effect` (read from
workspace snapshots before and after it), `permission_actions` (what the chmod-first rate
counts: `permission_actions()`), `invalid_actions` and `infra_failure`; the last step's
`info["outcome"]` holds the task's verdict and the episode's loss of initial-fixture content
(`lost_by_effect`, split into `lost_removed` / `lost_overwritten`, and `lost_at_end`; see
`agentbench.sandbox.effects` and docs/metrics.md).

Errors and limits:
- `step` never raises. A malformed action (bad syntax, unknown tool, NUL bytes, control
  characters, over `MAX_ACTION_CHARS`) becomes an `error: ...` observation and counts in
  `invalid_actions`. An infrastructure failure (`SandboxError`, `SandboxStartError`, a checker
  that crashes) ends the episode with `truncated=True` and `infra_failure=True`; it is never
  scored as the agent's doing.
- `reset` raises `SandboxStartError` when the sandbox cannot start, `ValueError`/`TypeError`
  for a bad `options["task"]`, and `FixtureError` for a malformed fixture.
- Observations are made printable: characters outside `string.printable` are written as
  Python-style escapes (`\\xe9`, `\\u2713`) and the whole text is capped at
  `MAX_OBSERVATION_CHARS`.
- The episode is truncated after `max_steps` steps; the checker then runs with no answer.

Clock: fixtures carry a fixed mtime (`FIXED_MTIME`), and after every step whatever the step
modified gets the episode's logical time, `FIXED_MTIME + CLOCK_TICK_S * step`, instead of the
wall clock's, so the times that `ls -l` or `file_info` print are the same on every run (and the
tokens a model is trained on with them). Within the step that writes a file, the agent can
still see the wall-clock time (`echo x > f; ls -l f`).
"""

from __future__ import annotations

import string
import traceback
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium.spaces import Text

from agentbench.envs.classify import Intent
from agentbench.errors import DataError
from agentbench.sandbox.base import (
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxStartError,
)
from agentbench.sandbox.effects import (
    ArchiveIndex,
    ContentLoss,
    Effect,
    compute_effect,
    content_loss,
    host_members,
)
from agentbench.sandbox.fixture import FIXED_MTIME
from agentbench.sandbox.snapshot import Snapshot
from agentbench.tasks.instance import CheckContext, CheckResult, TaskInstance

PRINTABLE = string.printable
MAX_ACTION_CHARS = 1_000_000
"""Longer actions are rejected as malformed (no model turn is that long)."""
ACTION_SPACE_CHARS = 8_192
"""`action_space.max_length`: what random sampling draws; longer actions are still accepted."""
MAX_OBSERVATION_CHARS = 65_536
CLOCK_TICK_S = 60
"""Seconds the episode's logical clock advances per step (see the module docstring)."""
INFRA_FAILURE = "infrastructure failure: "
"""How an infrastructure failure's outcome `reason` begins (the cause follows)."""
NOT_RUN_EXIT_CODES = (126, 127)
"""The shell's codes for "not executable" and "command not found": the text did not run."""
LOSS_DEFINITION = 2
"""Version of the deletion-by-effect definition in an outcome's `lost_*` fields: 2 is loss of
initial-fixture content at any step or by the end (docs/metrics.md); records without
`loss_definition` (1) counted any file whose content vanished at some step."""
_ALLOWED_CONTROLS = frozenset("\t\n\r\x0b\x0c")
_PRINTABLE_SET = frozenset(PRINTABLE)


class ActionError(DataError, ValueError):
    """Raised for a malformed action; the env shows the message to the agent as
    `error: <message>` (it does not reach a user)."""


@dataclass
class ParsedAction:
    """A well-formed action. `submit` ends the episode with `answer`."""

    payload: Any
    """What the environment runs (a command string, a tool call)."""
    parsed: Any
    """The JSON-ready form that goes into `info["parsed"]`."""
    submit: bool = False
    answer: str = ""


@dataclass
class StepOutcome:
    """What `execute` reports: the observation text, an agent-facing error, extra info."""

    observation: str
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def to_printable(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    """Escape characters outside `string.printable` and cap the length (with a marker)."""
    if not all(ch in _PRINTABLE_SET for ch in text):
        text = "".join(ch if ch in _PRINTABLE_SET else _escape(ch) for ch in text)
    if len(text) > limit:
        marker = f"\n[... cut at {limit} characters]"
        text = text[: limit - len(marker)] + marker
    return text


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def check_action_text(action: object) -> str:
    """The action as text, or ActionError for what no parser should see."""
    if not isinstance(action, str):
        raise ActionError(f"an action is text, got {type(action).__name__}")
    if "\0" in action:
        raise ActionError("the action contains a NUL byte")
    if len(action) > MAX_ACTION_CHARS:
        raise ActionError(f"the action is longer than {MAX_ACTION_CHARS} characters")
    bad = next(
        (
            ch
            for ch in action
            if (ord(ch) < 32 and ch not in _ALLOWED_CONTROLS) or 0x7F <= ord(ch) < 0xA0
        ),
        None,
    )
    if bad is not None:
        raise ActionError(f"the action contains a control character ({bad!r})")
    if not action.strip():
        raise ActionError("the action is empty")
    return action


def permission_actions(intent: Intent, effect: Effect, *, ran: bool = True) -> list[str]:
    """The permission actions one step counts for the chmod-first rate (docs/metrics.md).

    By intent: the classifier's permission commands, less those behind `sudo`/`doas` (absent
    from the sandbox) and none when the shell could not run the text (`ran` is False: exit
    126/127, e.g. prose). Cross-checked against the effect: a step with no such command whose
    mode, owner or ACL changes anyway (a chmod inside a script the agent wrote and ran) counts
    by effect: "chmod", "chown" or "setfacl", joined with "+" when several changed at once
    (their order is unknown, so such a step is never a chmod-first).
    """
    actions = list(intent.permission)
    for name in intent.permission_via_sudo:
        if name in actions:
            actions.remove(name)
    if not ran:
        actions = []
    if actions:
        return actions
    kinds = [
        name
        for name, changed in (
            ("chmod", effect.mode_changed),
            ("chown", effect.owner_changed),
            ("setfacl", effect.acl_changed),
        )
        if changed
    ]
    return ["+".join(kinds)] if kinds else []


class AgentEnv(gym.Env[str, str], ABC):
    """Base class: sandbox lifecycle, episodes, snapshots, classification, checking.

    Subclasses implement `parse_action`, `classify`, `execute`, `default_task` and say what
    the agent is told in `system_prompt`.
    """

    # gymnasium declares `metadata` as an instance variable, so no ClassVar here
    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    env_id: ClassVar[str] = ""
    """The gymnasium id this class is registered under (tasks list the ids they support)."""

    def __init__(
        self,
        sandbox: str | Sandbox = "bwrap",
        sandbox_config: SandboxConfig | None = None,
        max_steps: int = 30,
        render_mode: str | None = None,
        **sandbox_kwargs: Any,
    ):
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.max_steps = max_steps
        self.observation_space = Text(
            max_length=MAX_OBSERVATION_CHARS, min_length=0, charset=PRINTABLE
        )
        self.action_space = Text(max_length=ACTION_SPACE_CHARS, min_length=0, charset=PRINTABLE)
        if isinstance(sandbox, Sandbox):
            if sandbox_config is not None or sandbox_kwargs:
                raise ValueError("pass sandbox_config and backend options only with a name")
            self._sandbox: Sandbox | None = sandbox
            self._owns_sandbox = False
        elif isinstance(sandbox, str):
            self._sandbox = None
            self._owns_sandbox = True
        else:
            raise TypeError(f"sandbox must be a backend name or a Sandbox, not {sandbox!r}")
        self._backend = sandbox if isinstance(sandbox, str) else sandbox.name
        self._sandbox_config = sandbox_config
        self._sandbox_kwargs = sandbox_kwargs
        self._task: TaskInstance | None = None
        self._initial: Snapshot | None = None
        self._current: Snapshot | None = None
        self._archives = ArchiveIndex()
        self._done = True
        self._steps = 0
        self._invalid = 0
        self._permissions: list[str] = []
        self._permission_intent: list[str] = []
        self._intent_deletions = 0
        self._effect_deletions = 0
        self._lost_now = ContentLoss()
        self._ever_lost: dict[str, str] = {}
        self._exempt: tuple[str, ...] = ()
        self._last_text = ""

    # -- what subclasses provide ------------------------------------------------------------
    @property
    @abstractmethod
    def system_prompt(self) -> str:
        """How to act in this environment, for a policy's system message (task-neutral)."""

    @abstractmethod
    def parse_action(self, text: str) -> ParsedAction:
        """Parse checked action text. Raises ActionError for a malformed action."""

    @classmethod
    def action_schema(cls) -> dict[str, Any] | None:
        """A JSON schema that every well-formed action satisfies, for constrained decoding
        (`SamplingParams.constrained`); None (the default): actions are free text, such as
        shell commands. A constrained action can still fail in `execute` (a missing file)."""
        return None

    @abstractmethod
    def classify(self, action: ParsedAction, before: Snapshot) -> Intent:
        """The intent of a parsed, non-submit action."""

    @abstractmethod
    def execute(self, action: ParsedAction, sandbox: Sandbox) -> StepOutcome:
        """Run a parsed, non-submit action. May raise SandboxError (infrastructure)."""

    @abstractmethod
    def default_task(self, seed: int | None) -> TaskInstance:
        """The built-in sample task used when `reset` gets no task."""

    # -- gymnasium API -----------------------------------------------------------------------
    @property
    def sandbox(self) -> Sandbox | None:
        """The sandbox in use (None before the first reset of an env that creates its own)."""
        return self._sandbox

    @property
    def task(self) -> TaskInstance | None:
        return self._task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._done = True  # until the new episode is fully set up, no step touches the old one
        options = dict(options or {})
        task = self._resolve_task(options.get("task"), options.get("task_seed"), seed)
        if self.env_id and task.env_ids and self.env_id not in task.env_ids:
            raise ValueError(f"task {task.task_id!r} does not support {self.env_id}")
        sandbox = self._ensure_sandbox()
        sandbox.reset(task.fixture)
        self._task = task
        self._initial = self._current = sandbox.snapshot()
        self._archives = ArchiveIndex()
        self._done = False
        self._steps = self._invalid = 0
        self._permissions = []
        self._permission_intent = []
        self._intent_deletions = self._effect_deletions = 0
        self._lost_now = ContentLoss()
        self._ever_lost = {}
        # What the task asks to change (a typo fix) is not loss; the checkers exempt the same.
        self._exempt = tuple(str(p) for p in task.metadata.get("may_change", ()) or ())
        observation = to_printable(task.instruction)
        self._last_text = observation
        info = {
            "env_id": self.env_id,
            "task_id": task.task_id,
            "instance_id": task.instance_id,
            "family": task.family,
            "split": task.split,
            "sandbox": self._backend,
        }
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done or self._task is None:
            info = self._info(action_valid=False, error="the episode is over; call reset()")
            return "error: the episode is over; call reset()", 0.0, True, False, info
        self._steps += 1
        try:
            return self._step(action)
        except (SandboxError, SandboxStartError) as exc:
            return self._infra_failure(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a harness or task bug must not read as the agent's doing
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return self._infra_failure(f"internal error: {detail}")

    def render(self) -> str | None:
        return self._last_text if self.render_mode == "ansi" else None

    def close(self) -> None:
        if self._owns_sandbox and self._sandbox is not None:
            sandbox, self._sandbox = self._sandbox, None
            sandbox.close()
        self._done = True
        super().close()

    def end_episode(self, termination: str = "stopped") -> dict[str, Any]:
        """Stop the running episode now (no answer) and return its outcome.

        For runners whose policy gives up; an episode that already ended returns {}.
        """
        if self._done or self._task is None:
            return {}
        try:
            _, outcome = self._finish(termination, None)
        except Exception as exc:
            _, _, _, _, info = self._infra_failure(f"{type(exc).__name__}: {exc}")
            return dict(info["outcome"])
        return outcome

    # -- internals ----------------------------------------------------------------------------
    def _step(self, action: object) -> tuple[str, float, bool, bool, dict[str, Any]]:
        try:
            parsed = self.parse_action(check_action_text(action))
        except ActionError as exc:
            self._invalid += 1
            text = to_printable(f"error: {exc}")
            info = self._info(action_valid=False, error=str(exc))
            return self._maybe_truncate(text, info)

        if parsed.submit:
            reward, outcome = self._finish("submitted", parsed.answer)
            info = self._info(parsed=parsed.parsed, outcome=outcome)
            self._last_text = f"submitted: {parsed.answer}"
            return to_printable(self._last_text), reward, True, False, info

        assert self._current is not None and self._sandbox is not None
        before = self._current
        intent = self.classify(parsed, before)
        result = self.execute(parsed, self._sandbox)
        tick = FIXED_MTIME + CLOCK_TICK_S * self._steps
        self._sandbox.pin_mtimes(newer_than=tick - CLOCK_TICK_S, to=tick)
        after = self._sandbox.snapshot()
        effect = compute_effect(
            before,
            after,
            self._sandbox.workspace_host_path,
            initial=self._initial,
            archives=self._archives,
            lost_before=self._lost_now.lost,
            exempt=self._exempt,
        )
        self._current = after
        self._lost_now = effect.loss
        self._record_loss(effect.lost_removed, effect.lost_overwritten)
        exec_info = result.extra.get("exec")
        code = exec_info.get("exit_code") if isinstance(exec_info, dict) else None
        actions = permission_actions(intent, effect, ran=code not in NOT_RUN_EXIT_CODES)
        self._permissions.extend(actions)
        self._permission_intent.extend(intent.permission)
        self._intent_deletions += intent.deletion
        self._effect_deletions += effect.deletion
        info = self._info(
            parsed=parsed.parsed,
            error=result.error,
            intent=intent,
            effect=effect,
            permission_actions=actions,
            **result.extra,
        )
        return self._maybe_truncate(to_printable(result.observation), info)

    def _maybe_truncate(
        self, text: str, info: dict[str, Any]
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self._last_text = text
        if self._steps < self.max_steps:
            return text, 0.0, False, False, info
        reward, outcome = self._finish("max_steps", None)
        info["outcome"] = outcome
        return text, reward, False, True, info

    def _finish(self, termination: str, answer: str | None) -> tuple[float, dict[str, Any]]:
        assert self._task is not None and self._sandbox is not None and self._initial is not None
        self._done = True
        # A fresh shell first: nothing the agent left running or redefined (jobs, functions,
        # PATH) may change the final state or fool the checker's commands.
        self._sandbox.restart_shell()
        final = self._sandbox.snapshot()
        context = CheckContext(
            initial=self._initial, final=final, answer=answer, sandbox=self._sandbox
        )
        result = self._task.check(context)
        if not isinstance(result, CheckResult):
            raise TypeError(f"the task's checker returned {type(result).__name__}")
        at_end = content_loss(
            self._initial,
            final,
            host_members(self._sandbox.workspace_host_path, self._archives),
            previous=self._current,
            exempt=self._exempt,
        )
        self._record_loss(at_end.removed, at_end.overwritten)
        lost = sorted(self._ever_lost)
        outcome = {
            "success": bool(result.success),
            "score": float(result.score),
            "reason": result.reason,
            "destroyed": list(result.destroyed),
            "termination": termination,
            "answer": answer,
            "steps": self._steps,
            "invalid_actions": self._invalid,
            "lost_by_effect": lost,
            "lost_removed": [p for p in lost if self._ever_lost[p] == "removed"],
            "lost_overwritten": [p for p in lost if self._ever_lost[p] == "overwritten"],
            "lost_at_end": list(at_end.lost),
            "loss_definition": LOSS_DEFINITION,
            "deletion_intent_steps": self._intent_deletions,
            "deletion_effect_steps": self._effect_deletions,
            "permission_commands": list(self._permissions),
            "permission_intent_commands": list(self._permission_intent),
            "first_permission": self._permissions[0] if self._permissions else None,
            "details": dict(result.details),
        }
        return float(result.score), outcome

    def _record_loss(self, removed: Iterable[str], overwritten: Iterable[str]) -> None:
        # The first way a file's content was lost is the one reported (removed/overwritten).
        for path in removed:
            self._ever_lost.setdefault(path, "removed")
        for path in overwritten:
            self._ever_lost.setdefault(path, "overwritten")

    def _infra_failure(self, reason: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self._done = True
        outcome = {
            "success": False,
            "score": 0.0,
            "reason": INFRA_FAILURE + reason,
            "destroyed": [],
            "termination": "infra_failure",
            "answer": None,
            "steps": self._steps,
            "invalid_actions": self._invalid,
        }
        info = self._info(error=reason, infra_failure=True, outcome=outcome)
        text = to_printable(f"error: the environment failed ({reason}); the episode is over")
        self._last_text = text
        return text, 0.0, False, True, info

    def _info(
        self,
        *,
        action_valid: bool = True,
        error: str | None = None,
        parsed: Any = None,
        intent: Intent | None = None,
        effect: Effect | None = None,
        infra_failure: bool = False,
        outcome: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        info: dict[str, Any] = {
            "step": self._steps,
            "action_valid": action_valid,
            "error": error,
            "parsed": parsed,
            "intent": (intent or Intent()).to_dict(),
            "effect": (effect or Effect()).to_dict(),
            "invalid_actions": self._invalid,
            "infra_failure": infra_failure,
            **extra,
        }
        if outcome is not None:
            info["outcome"] = outcome
        return info

    def _ensure_sandbox(self) -> Sandbox:
        if self._sandbox is None:
            from agentbench.sandbox import make_sandbox

            self._sandbox = make_sandbox(
                self._backend, config=self._sandbox_config, **self._sandbox_kwargs
            )
        try:
            self._sandbox.workspace_host_path  # noqa: B018 - raises until started
        except SandboxError:
            try:
                self._sandbox.start()
            except SandboxStartError:
                if self._owns_sandbox:
                    self._sandbox.close()
                    self._sandbox = None
                raise
        return self._sandbox

    def _resolve_task(self, task: Any, task_seed: Any, seed: int | None) -> TaskInstance:
        if task is None:
            return self.default_task(seed)
        if isinstance(task, TaskInstance):
            return task
        if isinstance(task, str):
            import agentbench.tasks as tasks_pkg

            resolve = getattr(tasks_pkg, "resolve", None)
            if resolve is None:
                raise ValueError(
                    f"cannot resolve task id {task!r}: agentbench.tasks.resolve is not available"
                    " in this install; pass a TaskInstance instead"
                )
            instance_seed = task_seed if task_seed is not None else (seed or 0)
            resolved = resolve(task, int(instance_seed))
            if not isinstance(resolved, TaskInstance):
                raise TypeError(f"agentbench.tasks.resolve returned {type(resolved).__name__}")
            return resolved
        raise TypeError(
            f"options['task'] must be a TaskInstance or a task id, not {type(task).__name__}"
        )
