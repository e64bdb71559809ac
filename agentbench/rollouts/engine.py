"""The batched rollout engine: N environments in lockstep, one `generate` call per step.

    summary = run_rollouts(ScriptedPolicy("deleter"), make_jobs(instances), parallel=4,
                           out_path="runs/teacher.jsonl")

Each step, every live episode's turn goes to the policy in one `generate` call (so a model
backend batches them), then the environments step concurrently: a sandbox call is bound by a
subprocess, not by Python. A finished episode is written to the store at once and its slot
takes the next job.

Threads: each slot has one dedicated long-lived worker thread that creates, resets, steps and
closes its sandbox and environments. A bubblewrap sandbox is started with `--die-with-parent`,
which ties it to the *thread* that spawned it, so a short-lived pool thread would kill it.

Context: a turn with finish_reason "context" (the conversation has outgrown the model's
context window) ends its episode there, unanswered: the checker scores the workspace as it is,
with termination "context_limit", like an episode cut at `max_steps`. Running out of room is
the agent's own doing (its long outputs, its many reads), so the episode stays in every
denominator.

Failures: a sandbox that cannot start or breaks, a checker that crashes, a task that cannot be
set up, and a policy turn with finish_reason "error" are recorded as infrastructure failures
(`infra_failure=True` and the reason), never as agent behaviour; the slot's sandbox is rebuilt
after a sandbox failure. Raises `SandboxStartError` when no slot's sandbox can start at all,
`StoreError` for an unusable output file, `ValueError` for duplicate jobs, and whatever
`Policy.generate` raises when the backend as a whole fails (finished episodes stay on disk;
rerun to resume).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar

from agentbench import __version__
from agentbench.chat import Message
from agentbench.envs.base import INFRA_FAILURE
from agentbench.policies.base import Generation, Policy, SamplingParams, Turn
from agentbench.rollouts.schema import (
    OutcomeRecord,
    PolicyRecord,
    SamplingRecord,
    SandboxRecord,
    StepRecord,
    Trajectory,
    to_json,
)
from agentbench.rollouts.store import TrajectoryStore
from agentbench.sandbox.base import Sandbox, SandboxConfig, SandboxStartError
from agentbench.tasks.instance import TaskInstance

T = TypeVar("T")
CONTEXT_LIMIT = "context_limit"
"""The termination of an episode whose conversation outgrew the model's context."""
_STANDARD_INFO = frozenset(
    {"step", "action_valid", "error", "parsed", "intent", "effect", "invalid_actions",
     "infra_failure", "outcome"}
)  # fmt: skip
_WORKER_JOIN_S = 30.0


@dataclass(frozen=True)
class RolloutJob:
    """One episode to run: a task instance in an environment, the `repeat`-th time."""

    instance: TaskInstance
    env_id: str
    repeat: int = 0

    def episode_id(self, policy_tag: str) -> str:
        return f"{self.instance.instance_id}|{self.env_id}|{policy_tag}|r{self.repeat}"


def make_jobs(
    instances: Iterable[TaskInstance], env_ids: Sequence[str] | None = None, repeats: int = 1
) -> list[RolloutJob]:
    """Jobs for each instance in each of `env_ids` it supports (all of its own if None)."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    jobs: list[RolloutJob] = []
    for instance in instances:
        for env_id in env_ids if env_ids is not None else instance.env_ids:
            if env_id in instance.env_ids:
                jobs.extend(RolloutJob(instance, env_id, k) for k in range(repeats))
    return jobs


def default_policy_tag(policy: Policy, params: SamplingParams) -> str:
    """A policy's `tag` attribute if it has one, else backend:model plus a provenance hash."""
    tag = getattr(policy, "tag", None)
    if isinstance(tag, str) and tag:
        return tag
    prov = policy.provenance(params)
    digest = hashlib.sha256(prov.model_dump_json().encode()).hexdigest()[:8]
    name = Path(prov.model).name or prov.model
    return f"{prov.backend}:{name}-{digest}"


@dataclass
class RolloutSummary:
    """What a run did. Times are wall-clock seconds of this run (resumed episodes excluded)."""

    out_path: str
    jobs: int
    episodes: int = 0
    """Written by this run."""
    skipped: int = 0
    """Already in the file (resume)."""
    foreign: int = 0
    """Records in the file that belong to none of these jobs (another policy or task set)."""
    infra_failures: int = 0
    successes: int = 0
    deleted: int = 0
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    parallel: int = 0
    wall_s: float = 0.0
    generate_s: float = 0.0
    """Time inside `policy.generate`."""
    env_s: float = 0.0
    """Time in the environment phases (resets and steps, all slots at once)."""
    sandbox_start_s: float = 0.0
    env_step_share: float = 0.0
    """env_s / wall_s: how much of the run waits on sandboxes rather than the policy."""
    generate_share: float = 0.0
    episodes_per_s: float = 0.0
    tokens_per_s: float = 0.0
    """Completion tokens per second of wall time."""
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- slots -----------------------------------------------------------------------------------


class _SlotWorker:
    """One thread that owns one sandbox and the environments sharing it."""

    def __init__(
        self,
        index: int,
        backend: str,
        config: SandboxConfig | None,
        sandbox_kwargs: dict[str, Any],
        max_steps: int,
    ):
        self.index = index
        self._backend = backend
        self._config = config
        self._sandbox_kwargs = sandbox_kwargs
        self._max_steps = max_steps
        self._sandbox: Sandbox | None = None
        self._envs: dict[str, Any] = {}
        self.record: SandboxRecord | None = None
        self._queue: SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = SimpleQueue()
        self._thread = threading.Thread(
            target=self._loop, name=f"rollout-slot-{index}", daemon=True
        )
        self._thread.start()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return future

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    # -- run on the worker thread only ----------------------------------------------------
    def start(self) -> float:
        """Create and start the sandbox if there is none; return the seconds it took."""
        if self._sandbox is not None:
            return 0.0
        from agentbench.sandbox import make_sandbox

        began = time.monotonic()
        sandbox = make_sandbox(self._backend, config=self._config, **self._sandbox_kwargs)
        try:
            sandbox.start()
        except BaseException:
            sandbox.close()
            raise
        info = sandbox.info()
        self._sandbox = sandbox
        self.record = SandboxRecord(
            backend=info.backend,
            image=info.image,
            limits_json=to_json(sandbox.config.model_dump()),
            enforced_json=to_json(info.limits_enforced),
        )
        return time.monotonic() - began

    def reset(self, job: RolloutJob) -> tuple[str, str, SandboxRecord, float]:
        """(instruction, system prompt, sandbox record, seconds) for a new episode."""
        import agentbench.envs as envs

        began = time.monotonic()
        self.start()
        assert self._sandbox is not None and self.record is not None
        env = self._envs.get(job.env_id)
        if env is None:
            # Environments share the slot's sandbox: each reset rebuilds its workspace.
            env = envs.make(job.env_id, sandbox=self._sandbox, max_steps=self._max_steps)
            self._envs[job.env_id] = env
        observation, _ = env.reset(seed=job.instance.seed, options={"task": job.instance})
        system_prompt = str(getattr(env.unwrapped, "system_prompt", ""))
        return observation, system_prompt, self.record, time.monotonic() - began

    def step(
        self, env_id: str, action: str
    ) -> tuple[str, float, bool, bool, dict[str, Any], float]:
        began = time.monotonic()
        observation, reward, terminated, truncated, info = self._envs[env_id].step(action)
        elapsed = time.monotonic() - began
        return observation, float(reward), bool(terminated), bool(truncated), info, elapsed

    def end_episode(self, env_id: str, termination: str) -> dict[str, Any]:
        """Stop the episode running in `env_id` and return its outcome (the checker's verdict
        on the workspace as it is; an infra-failure outcome if the checker failed)."""
        return dict(self._envs[env_id].unwrapped.end_episode(termination))

    def discard(self) -> None:
        """Close the environments and the sandbox (after a failure, or at the end)."""
        envs, self._envs = self._envs, {}
        for env in envs.values():
            with contextlib.suppress(Exception):
                env.close()
        sandbox, self._sandbox = self._sandbox, None
        self.record = None
        if sandbox is not None:
            with contextlib.suppress(Exception):  # best effort: the run goes on without it
                sandbox.close()

    # -- from the engine thread -----------------------------------------------------------
    def shutdown(self) -> None:
        done = self.submit(self.discard)
        self._queue.put(None)
        with contextlib.suppress(Exception):
            done.result(timeout=_WORKER_JOIN_S)
        self._thread.join(timeout=_WORKER_JOIN_S)


# -- episodes --------------------------------------------------------------------------------


@dataclass
class _Live:
    job: RolloutJob
    episode_id: str
    slot: _SlotWorker
    sandbox: SandboxRecord
    started_at: str
    began: float
    reset_s: float
    messages: list[Message]
    steps: list[StepRecord] = field(default_factory=list)
    reward: float = 0.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _reason(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class _Run:
    """The state of one `run_rollouts` call."""

    def __init__(
        self,
        policy: Policy,
        params: SamplingParams,
        tag: str,
        store: TrajectoryStore,
        summary: RolloutSummary,
        max_steps: int,
        on_episode: Callable[[Trajectory, RolloutSummary], None] | None,
    ):
        self.policy = policy
        self.params = params
        self.store = store
        self.summary = summary
        self.max_steps = max_steps
        self.on_episode = on_episode
        self.policy_record = PolicyRecord.from_provenance(policy.provenance(params), tag)
        self.sampling_record = SamplingRecord.from_params(params)
        self.began = time.monotonic()
        self.bar: _ProgressBar | None = None

    def write(
        self,
        job: RolloutJob,
        episode_id: str,
        *,
        live: _Live | None,
        outcome: dict[str, Any],
        infra_reason: str | None,
        sandbox: SandboxRecord | None = None,
        started_at: str = "",
        began: float | None = None,
    ) -> None:
        inst = job.instance
        reward = live.reward if live else 0.0
        if infra_reason is not None:
            outcome = {
                "termination": "infra_failure",
                "reason": INFRA_FAILURE + infra_reason,
                **{k: v for k, v in outcome.items() if k not in ("termination", "reason")},
            }
            outcome["success"] = False
        began = live.began if live else began
        record = Trajectory(
            episode_id=episode_id,
            repeat=job.repeat,
            env_id=job.env_id,
            task_id=inst.task_id,
            family=inst.family,
            split=inst.split,
            seed=inst.seed,
            instance_id=inst.instance_id,
            fixture_sha256=inst.fixture.digest(),
            policy=self.policy_record,
            sampling=self.sampling_record,
            sandbox=live.sandbox if live else (sandbox or SandboxRecord(backend="unknown")),
            max_steps=self.max_steps,
            messages=live.messages if live else [],
            steps=live.steps if live else [],
            outcome=OutcomeRecord.from_info(outcome, reward),
            infra_failure=infra_reason is not None,
            infra_reason=infra_reason,
            started_at=live.started_at if live else started_at,
            reset_s=round(live.reset_s, 6) if live else 0.0,
            wall_s=round(time.monotonic() - began, 6) if began is not None else 0.0,
            agentbench_version=__version__,
        )
        self.store.append(record)
        s = self.summary
        s.episodes += 1
        s.infra_failures += record.infra_failure
        s.successes += record.outcome.success and not record.infra_failure
        s.deleted += record.outcome.deleted and not record.infra_failure
        if self.bar is not None:
            self.bar.advance(s, time.monotonic() - self.began)
        if self.on_episode is not None:
            self.on_episode(record, s)


def run_rollouts(
    policy: Policy,
    jobs: Sequence[RolloutJob],
    *,
    out_path: str | Path,
    parallel: int = 4,
    sandbox: str = "bwrap",
    params: SamplingParams | None = None,
    max_steps: int = 30,
    progress: bool = True,
    resume: bool = True,
    policy_tag: str | None = None,
    sandbox_config: SandboxConfig | None = None,
    sandbox_kwargs: dict[str, Any] | None = None,
    on_episode: Callable[[Trajectory, RolloutSummary], None] | None = None,
) -> RolloutSummary:
    """Run `jobs` with `policy`, appending one trajectory per episode to `out_path`.

    `resume=True` skips episodes already in the file (after dropping a torn last line);
    `resume=False` starts the file over. See the module docstring for errors.
    """
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    from agentbench.sandbox import BACKENDS

    if sandbox not in BACKENDS:
        raise ValueError(BACKENDS.unknown_message(sandbox))
    params = params or SamplingParams()
    if params.constrained and not policy.supports_constrained:
        raise ValueError(
            f"{type(policy).__name__} cannot decode constrained actions "
            "(SamplingParams.constrained); use the transformers or HTTP backend, or drop the "
            "option"
        )
    tag = policy_tag or default_policy_tag(policy, params)
    ids = [job.episode_id(tag) for job in jobs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"two jobs have the same episode id {dup!r}")

    began = time.monotonic()
    with TrajectoryStore(out_path, resume=resume, overwrite=not resume) as store:
        pending = deque(
            (job, eid) for job, eid in zip(jobs, ids, strict=True) if eid not in store.done
        )
        summary = RolloutSummary(out_path=str(out_path), jobs=len(jobs))
        summary.skipped = len(jobs) - len(pending)
        summary.foreign = len(store.done - set(ids))
        summary.parallel = min(parallel, len(pending))
        if pending:
            run = _Run(policy, params, tag, store, summary, max_steps, on_episode)
            run.bar = _ProgressBar(len(pending)) if progress else None
            try:
                if run.bar is not None:
                    run.bar.start()
                _loop(run, pending, summary.parallel, sandbox, sandbox_config,
                      dict(sandbox_kwargs or {}))  # fmt: skip
            finally:
                if run.bar is not None:
                    run.bar.stop()
    _finish_summary(summary, time.monotonic() - began)
    return summary


def _finish_summary(s: RolloutSummary, wall: float) -> None:
    s.wall_s = round(wall, 4)
    if wall > 0:
        s.env_step_share = round(s.env_s / wall, 4)
        s.generate_share = round(s.generate_s / wall, 4)
        s.episodes_per_s = round(s.episodes / wall, 4)
        s.tokens_per_s = round(s.completion_tokens / wall, 2)
    s.env_s = round(s.env_s, 4)
    s.generate_s = round(s.generate_s, 4)
    s.sandbox_start_s = round(s.sandbox_start_s, 4)


def _loop(
    run: _Run,
    pending: deque[tuple[RolloutJob, str]],
    n_slots: int,
    backend: str,
    config: SandboxConfig | None,
    sandbox_kwargs: dict[str, Any],
) -> None:
    summary = run.summary
    slots = [_SlotWorker(i, backend, config, sandbox_kwargs, run.max_steps) for i in range(n_slots)]
    try:
        # Start every sandbox at once; if none starts the configuration is wrong: raise.
        t0 = time.monotonic()
        starts = [(slot, slot.submit(slot.start)) for slot in slots]
        errors = []
        for slot, fut in starts:
            try:
                fut.result()
            except Exception as exc:
                errors.append(exc)
                slot.submit(slot.discard).result()
        summary.sandbox_start_s += time.monotonic() - t0
        if len(errors) == len(slots):
            first = errors[0]
            if isinstance(first, SandboxStartError):
                raise first
            raise SandboxStartError(f"no sandbox could start: {_reason(first)}") from first

        idle: deque[_SlotWorker] = deque(slots)
        live: list[_Live] = []
        while pending or live:
            t0 = time.monotonic()
            _fill(run, pending, idle, live)
            summary.env_s += time.monotonic() - t0
            if not live:
                continue
            turns = [
                Turn(e.episode_id, e.job.env_id, len(e.steps), tuple(e.messages), e.job.instance)
                for e in live
            ]
            t0 = time.monotonic()
            generations = run.policy.generate(turns, run.params)
            gen_s = time.monotonic() - t0
            summary.generate_s += gen_s
            if len(generations) != len(turns):
                raise RuntimeError(
                    f"the policy returned {len(generations)} generations for {len(turns)} turns"
                )
            t0 = time.monotonic()
            stepping: list[tuple[_Live, Generation, Future[Any]]] = []
            failed: list[tuple[_Live, Generation]] = []
            out_of_room: list[tuple[_Live, Future[dict[str, Any]]]] = []
            for episode, gen in zip(live, generations, strict=True):
                if not isinstance(gen.text, str):  # a backend bug; not the agent's doing
                    gen = Generation("", finish_reason="error", error="generation is not text")
                if gen.finish_reason == "context":  # nothing was computed for this turn
                    end = partial(episode.slot.end_episode, episode.job.env_id, CONTEXT_LIMIT)
                    out_of_room.append((episode, episode.slot.submit(end)))
                    continue
                summary.prompt_tokens += gen.prompt_tokens
                summary.completion_tokens += gen.completion_tokens
                if gen.finish_reason == "error":
                    failed.append((episode, gen))
                else:
                    step = partial(episode.slot.step, episode.job.env_id, gen.text)
                    stepping.append((episode, gen, episode.slot.submit(step)))
            for _, _, fut in stepping:
                fut.exception()  # wait for all before recording anything
            for _, ended in out_of_room:
                ended.exception()
            summary.env_s += time.monotonic() - t0

            per_turn = gen_s / len(turns)
            finished: list[_Live] = []
            for episode, gen in failed:
                run.write(
                    episode.job, episode.episode_id, live=episode, outcome={},
                    infra_reason=f"policy error: {gen.error or 'no reason given'}",
                )  # fmt: skip
                finished.append(episode)
            for episode, ended in out_of_room:
                _record_context_limit(run, episode, ended)
                finished.append(episode)
            for episode, gen, fut in stepping:
                if _record_step(run, episode, gen, fut, per_turn):
                    finished.append(episode)
            for episode in finished:
                live.remove(episode)
                idle.append(episode.slot)
    finally:
        for slot in slots:
            slot.shutdown()


def _fill(
    run: _Run,
    pending: deque[tuple[RolloutJob, str]],
    idle: deque[_SlotWorker],
    live: list[_Live],
) -> None:
    """Give each idle slot the next job; resets run concurrently, failures are recorded."""
    while idle and pending:
        batch = []
        while idle and pending:
            slot = idle.popleft()
            job, eid = pending.popleft()
            reset = slot.submit(partial(slot.reset, job))
            batch.append((slot, job, eid, _now(), time.monotonic(), reset))
        for slot, job, eid, started_at, began, fut in batch:
            try:
                instruction, system_prompt, record, reset_s = fut.result()
            except Exception as exc:
                # The slot's sandbox may be broken: rebuild it for the next job.
                sandbox = slot.record
                slot.submit(slot.discard).result()
                run.write(
                    job, eid, live=None, outcome={}, sandbox=sandbox, started_at=started_at,
                    began=began, infra_reason=f"reset failed: {_reason(exc)}",
                )  # fmt: skip
                idle.append(slot)
                continue
            live.append(
                _Live(
                    job=job,
                    episode_id=eid,
                    slot=slot,
                    sandbox=record,
                    started_at=started_at,
                    began=began,
                    reset_s=reset_s,
                    messages=[
                        Message(role="system", content=system_prompt),
                        Message(role="user", content=instruction),
                    ],
                )
            )


def _record_context_limit(run: _Run, episode: _Live, ended: Future[dict[str, Any]]) -> None:
    """Write an episode that ran out of context: scored as it stands, unless scoring failed."""
    try:
        outcome = ended.result()
    except Exception as exc:  # end_episode never raises by contract; a wrapper bug did
        outcome = {"termination": "infra_failure", "reason": _reason(exc)}
    infra_reason = None
    if outcome.get("termination") == "infra_failure":
        reason = str(outcome.get("reason", "")).removeprefix(INFRA_FAILURE)
        infra_reason = f"scoring at the context limit failed: {reason}"
        episode.slot.submit(episode.slot.discard).result()
    else:  # the verdict's score is the episode's last reward, as at max_steps
        episode.reward += float(outcome.get("score") or 0.0)
    run.write(
        episode.job, episode.episode_id, live=episode, outcome=outcome,
        infra_reason=infra_reason,
    )  # fmt: skip


def _record_step(
    run: _Run, episode: _Live, gen: Generation, fut: Future[Any], generate_s: float
) -> bool:
    """Add one step to its episode; write the episode if it ended. True if it ended."""
    run.summary.steps += 1
    try:
        observation, reward, terminated, truncated, info, step_s = fut.result()
    except Exception as exc:  # env.step never raises by contract; a wrapper or harness bug did
        episode.slot.submit(episode.slot.discard).result()
        run.write(
            episode.job, episode.episode_id, live=episode, outcome={},
            infra_reason=f"env step raised: {_reason(exc)}",
        )  # fmt: skip
        return True
    intent = info.get("intent") or {}
    effect = info.get("effect") or {}
    episode.reward += reward
    episode.steps.append(
        StepRecord(
            index=len(episode.steps),
            action=gen.text,
            observation=observation,
            action_valid=bool(info.get("action_valid", True)),
            error=None if info.get("error") is None else str(info["error"]),
            parsed_json=to_json(info.get("parsed")),
            intent_json=to_json(intent),
            effect_json=to_json(effect),
            deletion_intent=bool(intent.get("deletion")),
            deletion_effect=bool(effect.get("deletion")),
            permission_commands=[str(p) for p in intent.get("permission") or []],
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            finish_reason=gen.finish_reason,
            token_ids=list(gen.token_ids),
            logprobs=list(gen.logprobs),
            generate_s=round(generate_s, 6),
            env_step_s=round(step_s, 6),
            extra_json=to_json({k: v for k, v in info.items() if k not in _STANDARD_INFO}),
        )
    )
    episode.messages.append(Message(role="assistant", content=gen.text))
    episode.messages.append(Message(role="user", content=observation))
    if not (terminated or truncated):
        return False
    infra = bool(info.get("infra_failure"))
    reason = str(info.get("error") or "the environment reported a failure") if infra else None
    if infra:
        episode.slot.submit(episode.slot.discard).result()
    run.write(
        episode.job, episode.episode_id, live=episode, outcome=dict(info.get("outcome") or {}),
        infra_reason=reason,
    )  # fmt: skip
    return True


class _ProgressBar:
    """A rich progress bar with episodes/s and generated tokens/s."""

    def __init__(self, total: int):
        from agentbench.progress import step_bar

        self._progress = step_bar("rollouts", "{task.fields[rates]}")
        self._task = self._progress.add_task("rollouts", total=total, rates="")

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    def advance(self, s: RolloutSummary, elapsed: float) -> None:
        eps = s.episodes / elapsed if elapsed > 0 else 0.0
        tps = s.completion_tokens / elapsed if elapsed > 0 else 0.0
        rates = f"{eps:.2f} ep/s  {tps:.0f} tok/s  infra {s.infra_failures}"
        self._progress.update(self._task, completed=s.episodes, rates=rates)
