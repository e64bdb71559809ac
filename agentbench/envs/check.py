"""`check_agent_env`: an agentbench environment's contract as checks its author runs.

Gymnasium's `check_env` checks the gymnasium API (spaces, reset and step signatures and types,
seeding); agentbench reads more than that, and this module checks the rest, the way the
sandbox contract is checked by `agentbench.sandbox.self_check`:

- `gymnasium`: `gymnasium.utils.env_checker.check_env` on the unwrapped env (its warnings are
  reported beside a pass);
- `agent_env`: an `AgentEnv` with an `env_id`, a task-neutral system prompt, an action schema
  that is None or JSON, and text spaces over `string.printable`;
- `reset`: the observation and the `info` keys the runners read (`task_id`, `instance_id`,
  `family`, `split`, `sandbox`, `env_id`);
- `deterministic_reset`: the same seed gives the same observation, info and workspace
  (snapshot digest), and the default task's fixture is a function of the seed;
- `invalid_action`: a malformed action is an `error: ...` observation counted in
  `invalid_actions`, never an exception;
- `step_info`: every step's `info` carries `action_valid`, `error`, `parsed`, `intent` and
  `effect` with the classifier's and the effect reader's keys, `permission_actions`,
  `invalid_actions` and `infra_failure` (run with the caller's `actions`; skipped without);
- `outcome`: an ended episode's outcome carries every key the metrics read;
- `scoring_reads_the_sandbox`: fixture files deleted inside the sandbox are reported lost by
  the outcome, so scoring reads the sandbox's file system, not a model of it;
- `episode_over`: a step after the end is an error observation, never an exception.

Errors: `check_agent_env` raises gymnasium's error for an unknown id, `ValueError` for an
unknown check name, and `SandboxStartError` when the env's sandbox cannot start; a broken rule
is a failed `CheckResult` in the report (`raise_on_failure()` raises `SelfCheckError`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
from gymnasium.spaces import Text

from agentbench.envs.base import PRINTABLE, AgentEnv, to_printable
from agentbench.envs.classify import Intent
from agentbench.sandbox.effects import Effect
from agentbench.sandbox.self_check import CheckResult, SelfCheckReport

RESET_INFO_KEYS = ("env_id", "task_id", "instance_id", "family", "split", "sandbox")
"""What `reset` returns in `info` (rollouts record the task and instance ids from it)."""
STEP_INFO_KEYS = ("step", "action_valid", "error", "parsed", "intent", "effect",
                  "invalid_actions", "infra_failure")  # fmt: skip
"""What every step's `info` carries (the rollout engine, the metrics and the sanitizer)."""
OUTCOME_KEYS = (
    "success", "score", "reason", "destroyed", "termination", "answer", "steps",
    "invalid_actions", "lost_by_effect", "lost_removed", "lost_overwritten", "lost_at_end",
    "loss_definition", "deletion_intent_steps", "deletion_effect_steps", "permission_commands",
    "permission_intent_commands", "first_permission", "details",
)  # fmt: skip
"""What an ended episode's `info["outcome"]` carries (the metrics read each)."""
INVALID_ACTION = "\0"
"""An action every env must refuse (a NUL byte never reaches a parser)."""


class _Failed(Exception):
    """A rule did not hold (internal: becomes a failed `CheckResult`)."""


class _Skipped(Exception):
    """A rule cannot be checked with what the caller gave (internal)."""


def _expect(condition: object, message: str) -> None:
    if not condition:
        raise _Failed(message)


def _missing(data: object, keys: Iterable[str], what: str) -> None:
    _expect(isinstance(data, dict), f"{what} is {type(data).__name__}, not a dict")
    assert isinstance(data, dict)
    absent = [k for k in keys if k not in data]
    _expect(not absent, f"{what} lacks {absent}")


@dataclass
class _Context:
    env: AgentEnv
    seed: int
    actions: Sequence[str]


def _reset(ctx: _Context) -> tuple[str, dict[str, Any]]:
    return ctx.env.reset(seed=ctx.seed)


def check_gymnasium(ctx: _Context) -> str:
    """gymnasium's own checker; returns its warnings (advice, not failures)."""
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check_env(ctx.env, skip_render_check=True, skip_close_check=True)
        except (AssertionError, gymnasium.error.Error) as exc:
            raise _Failed(f"gymnasium check_env: {exc}") from exc
    return "; ".join(sorted({str(w.message).splitlines()[0] for w in caught}))


def check_agent_env_class(ctx: _Context) -> None:
    """an AgentEnv with an id, a system prompt, a JSON action schema and printable text spaces."""
    env = ctx.env
    _expect(isinstance(env, AgentEnv), f"{type(env).__name__} is not an AgentEnv")
    _expect(bool(env.env_id), f"{type(env).__name__}.env_id is empty")
    prompt = env.system_prompt
    _expect(isinstance(prompt, str) and prompt.strip(), "system_prompt is empty or not text")
    schema = type(env).action_schema()
    if schema is not None:
        _expect(isinstance(schema, dict), f"action_schema() is {type(schema).__name__}")
        try:
            json.dumps(schema)
        except (TypeError, ValueError) as exc:
            raise _Failed(f"action_schema() is not JSON: {exc}") from exc
    for name in ("observation_space", "action_space"):
        space = getattr(env, name)
        _expect(isinstance(space, Text), f"{name} is {type(space).__name__}, not Text")
        _expect(set(space.character_set) <= set(PRINTABLE), f"{name} has non-printable chars")


def check_reset(ctx: _Context) -> None:
    """reset returns the task's instruction as printable text and the info the runners read."""
    observation, info = _reset(ctx)
    _expect(isinstance(observation, str), f"reset observation is {type(observation).__name__}")
    _expect(observation in ctx.env.observation_space, "reset observation is outside the space")
    _missing(info, RESET_INFO_KEYS, "reset info")
    task = ctx.env.task
    _expect(task is not None, "env.task is None after reset")
    assert task is not None
    _expect(observation == to_printable(task.instruction), "observation is not the instruction")
    _expect(info["task_id"] == task.task_id and info["env_id"] == ctx.env.env_id,
            f"reset info names {info['task_id']!r}/{info['env_id']!r}, the env "
            f"{task.task_id!r}/{ctx.env.env_id!r}")  # fmt: skip


def check_deterministic_reset(ctx: _Context) -> None:
    """one seed, one episode start: observation, info, workspace, default task fixture."""
    env = ctx.env
    first = _reset(ctx)
    sandbox = env.sandbox
    _expect(sandbox is not None, "env.sandbox is None after reset")
    assert sandbox is not None
    digest = sandbox.snapshot().digest()
    sandbox.exec("rm -rf ./* ./.[!.]* 2>/dev/null; echo changed > changed")  # dirty it
    second = _reset(ctx)
    _expect(first == second, f"reset(seed={ctx.seed}) twice: {first!r} then {second!r}")
    _expect(sandbox.snapshot().digest() == digest,
            f"reset(seed={ctx.seed}) twice built different workspaces")  # fmt: skip
    fixtures = [env.default_task(ctx.seed).fixture for _ in range(2)]
    _expect(fixtures[0] == fixtures[1], f"default_task({ctx.seed}) gave two fixtures")


def _step_info(info: dict[str, Any], where: str) -> None:
    _missing(info, STEP_INFO_KEYS, f"{where} info")
    _missing(info["intent"], Intent().to_dict(), f"{where} info['intent']")
    _missing(info["effect"], Effect().to_dict(), f"{where} info['effect']")
    for key in ("action_valid", "infra_failure"):
        _expect(isinstance(info[key], bool), f"{where} info[{key!r}] is not a bool")
    _expect(isinstance(info["intent"]["deletion"], bool), f"{where} intent.deletion not bool")
    _expect(isinstance(info["effect"]["deletion"], bool), f"{where} effect.deletion not bool")


def _outcome(outcome: object, where: str) -> None:
    _missing(outcome, OUTCOME_KEYS, where)
    assert isinstance(outcome, dict)
    _expect(isinstance(outcome["success"], bool), f"{where}['success'] is not a bool")
    _expect(isinstance(outcome["score"], float), f"{where}['score'] is not a float")
    for key in ("lost_by_effect", "lost_removed", "lost_overwritten", "destroyed"):
        _expect(isinstance(outcome[key], list), f"{where}[{key!r}] is not a list")


def check_invalid_action(ctx: _Context) -> None:
    """a malformed action is an error observation, counted, and the episode goes on."""
    _reset(ctx)
    try:
        observation, reward, terminated, _, info = ctx.env.step(INVALID_ACTION)
    except Exception as exc:
        raise _Failed(f"step(NUL) raised {type(exc).__name__}: {exc}") from exc
    _expect(observation.startswith("error:"), f"step(NUL) observed {observation[:80]!r}")
    _expect(info.get("action_valid") is False, "step(NUL) info['action_valid'] is not False")
    _expect(info.get("invalid_actions") == 1, "step(NUL) was not counted in invalid_actions")
    _expect(not terminated and reward == 0.0, "a malformed action ended or scored the episode")
    _step_info(info, "step(NUL)")


def check_step_info(ctx: _Context) -> None:
    """each of the caller's actions: the step info (and the outcome, if it ends the episode)."""
    if not ctx.actions:
        raise _Skipped("no actions given (pass actions=[...] that the env accepts)")
    _reset(ctx)
    for i, action in enumerate(ctx.actions):
        observation, _, terminated, truncated, info = ctx.env.step(action)
        where = f"step {i} ({action[:40]!r})"
        _expect(observation in ctx.env.observation_space, f"{where} observation outside space")
        _step_info(info, where)
        _expect(not info["infra_failure"], f"{where} was an infrastructure failure: {info}")
        stepped = info["action_valid"] and not (terminated or truncated)
        if stepped and "permission_actions" not in info:
            raise _Failed(f"{where} info lacks 'permission_actions'")
        if terminated or truncated:
            _outcome(info.get("outcome"), f"{where} info['outcome']")
            return


def check_outcome(ctx: _Context) -> None:
    """`end_episode()` scores a running episode with every outcome key."""
    _reset(ctx)
    _outcome(ctx.env.end_episode(), "end_episode()")
    _expect(ctx.env.end_episode() == {}, "end_episode() twice did not return {}")


def check_scoring_reads_the_sandbox(ctx: _Context) -> None:
    """fixture files removed inside the sandbox are lost in the outcome."""
    _reset(ctx)
    task, sandbox = ctx.env.task, ctx.env.sandbox
    assert task is not None and sandbox is not None
    files = sorted(e.path for e in task.fixture.entries if e.kind == "file")
    if not files:
        raise _Skipped("the default task's fixture has no regular file")
    sandbox.exec(f"rm -f -- {' '.join(_quote(p) for p in files)}")
    outcome = ctx.env.end_episode()
    lost = set(outcome.get("lost_by_effect", ()))
    _expect(set(files) <= lost, f"removed {files} in the sandbox; the outcome lost {sorted(lost)}")


def check_episode_over(ctx: _Context) -> None:
    """a step after the episode ended observes an error and raises nothing."""
    _reset(ctx)
    ctx.env.end_episode()
    try:
        observation, _, terminated, _, _ = ctx.env.step(INVALID_ACTION)
    except Exception as exc:
        raise _Failed(f"a step after the end raised {type(exc).__name__}: {exc}") from exc
    _expect(observation.startswith("error:") and terminated, f"after the end: {observation!r}")


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)


CHECKS: dict[str, Callable[[_Context], str | None]] = {
    "gymnasium": check_gymnasium,
    "agent_env": check_agent_env_class,
    "reset": check_reset,
    "deterministic_reset": check_deterministic_reset,
    "invalid_action": check_invalid_action,
    "step_info": check_step_info,
    "outcome": check_outcome,
    "scoring_reads_the_sandbox": check_scoring_reads_the_sandbox,
    "episode_over": check_episode_over,
}
"""Check name -> function, in the order `check_agent_env` runs them."""


def _run(name: str, ctx: _Context) -> CheckResult:
    try:
        note = CHECKS[name](ctx)
    except _Skipped as exc:
        return CheckResult(name, passed=False, detail=str(exc), skipped=True)
    except _Failed as exc:
        return CheckResult(name, passed=False, detail=str(exc))
    except Exception as exc:  # the env raised where its contract says it must not
        return CheckResult(name, passed=False, detail=f"raised {type(exc).__name__}: {exc}")
    return CheckResult(name, passed=True, detail=note or "")


def check_agent_env(
    env: str | gymnasium.Env[Any, Any],
    *,
    sandbox: Any = "bwrap",
    seed: int = 0,
    actions: Sequence[str] = (),
    checks: Iterable[str] | None = None,
    **make_kwargs: Any,
) -> SelfCheckReport:
    """Check an agentbench environment against what the harness reads; return the report.

    `env` is a gymnasium id (made here with `sandbox` and `make_kwargs`, plugins loaded, and
    closed at the end) or an env (wrapped or not; left open). Episodes start from the env's
    default task with `seed`. `actions` are texts the env accepts, stepped in order by the
    `step_info` check (without them it is skipped). `checks` selects names from `CHECKS`.

    Raises gymnasium's error for an unknown id, `ValueError` for an unknown check name and
    `SandboxStartError` when the sandbox cannot start. Broken rules are failed results;
    `report.raise_on_failure()` raises `SelfCheckError` listing them.
    """
    names = list(CHECKS if checks is None else checks)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown env check(s) {unknown}; known: {', '.join(CHECKS)}")
    if isinstance(env, str):
        from agentbench.envs import make

        made: gymnasium.Env[Any, Any] | None = make(env, sandbox=sandbox, **make_kwargs)
        target = made
        label = env
    else:
        made, target = None, env
        label = getattr(env.unwrapped, "env_id", "") or type(env.unwrapped).__name__
    try:
        unwrapped = target.unwrapped  # type: ignore[union-attr]
        if not isinstance(unwrapped, AgentEnv):
            detail = f"{type(unwrapped).__name__} is not an AgentEnv"
            results = [CheckResult("agent_env", passed=False, detail=detail)]
        else:
            ctx = _Context(unwrapped, seed, actions)
            results = [_run(name, ctx) for name in names]
    finally:
        if made is not None:
            made.close()
    return SelfCheckReport(f"environment {label!r}", tuple(results))


__all__ = ["CHECKS", "OUTCOME_KEYS", "RESET_INFO_KEYS", "STEP_INFO_KEYS", "check_agent_env"]
