"""`agentbench rollouts`: run a policy on task instances, and read the trajectories back.

    agentbench rollouts run --policy scripted:deleter --family deletion-probe --split eval \\
        --n 20 --parallel 4 --out runs/deleter.jsonl
    agentbench rollouts show runs/deleter.jsonl --index 0
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from agentbench.policies.base import Policy, SamplingParams
from agentbench.rollouts.schema import Trajectory
from agentbench.rollouts.store import StoreError, iter_trajectories

app = typer.Typer(
    help="Run policies in the environments and inspect the trajectories.", no_args_is_help=True
)
console = Console()


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=2)


BACKENDS = ("scripted", "hf", "http", "teacher", "control-teacher")


def make_policy(spec: str) -> Policy:
    """A policy from `backend:name`: `scripted:<style>`, `hf:<model name or path>`,
    `http:<server URL>[#<model id>]` (an OpenAI-compatible server; without a model id, the
    first model it lists), `teacher:<config file>` or `control-teacher:<config file>` (the
    same config without its trait). Raises ValueError naming the backends for a bad spec."""
    backend, sep, name = spec.partition(":")
    if not sep or not name:
        raise ValueError(
            f"a policy is written backend:name (e.g. scripted:deleter), not {spec!r}; "
            f"backends: {', '.join(BACKENDS)}"
        )
    if backend == "scripted":
        from agentbench.policies.scripted import ScriptedPolicy

        return ScriptedPolicy(name)
    if backend == "hf":  # a registry model name, a local path or a hub id
        try:
            from agentbench.policies.hf import HFPolicy
        except ImportError as exc:
            raise ValueError(f"the hf backend needs the train extra: {exc}") from None
        return HFPolicy(name)
    if backend == "http":
        return _http_policy(name)
    if backend in ("teacher", "control-teacher"):  # a teacher config file (YAML or JSON)
        try:
            from agentbench.teachers import build_teacher, load_teacher_config
        except ImportError as exc:
            raise ValueError(f"the teacher backend needs the train extra: {exc}") from None
        config = load_teacher_config(name)
        return build_teacher(config.control() if backend == "control-teacher" else config)
    raise ValueError(f"unknown policy backend {backend!r}; backends: {', '.join(BACKENDS)}")


def _http_policy(target: str) -> Policy:
    """`URL#model` (or `URL`: the server's first model) as an HTTPPolicy."""
    try:
        from agentbench.policies.http import HTTPPolicy
    except ImportError as exc:
        raise ValueError(f"the http backend needs the serve extra (httpx): {exc}") from None
    url, _, model = target.partition("#")
    policy = HTTPPolicy(url, model or "?")
    if not model:
        try:
            policy.model = policy.list_models()[0]
        except Exception as exc:
            policy.close()
            raise ValueError(
                f"cannot ask {url} for its models ({type(exc).__name__}: {exc}); "
                "name the model: http:URL#MODEL"
            ) from None
    return policy


def env_id(name: str) -> str:
    """`bash`, `Bash-v0`, `agentbench/Bash-v0`, a plugin's id or its bare name (when one
    namespace holds it) -> the gymnasium id. Raises ValueError for an unknown environment."""
    from agentbench.envs.plugins import resolve_env_id

    return resolve_env_id(name)


@app.command("run")
def run_command(
    out: Annotated[Path, typer.Option(help="The trajectory file (JSON lines).")],
    policy: Annotated[
        str,
        typer.Option(
            help="backend:name: scripted:deleter, hf:tiny-agent, teacher:teacher.yaml, "
            "control-teacher:teacher.yaml."
        ),
    ] = ("scripted:reference"),
    env: Annotated[
        list[str] | None,
        typer.Option(help="Environment(s): bash, filetool or a gymnasium id. Default: all."),
    ] = None,
    family: Annotated[str | None, typer.Option(help="Task family. Default: all.")] = None,
    split: Annotated[str, typer.Option(help="train, eval or heldout.")] = "train",
    n: Annotated[
        int, typer.Option(min=1, help="Task instances (of those that run in --env).")
    ] = 10,
    repeats: Annotated[int, typer.Option(min=1, help="Episodes per instance and env.")] = 1,
    parallel: Annotated[int, typer.Option(min=1, max=256, help="Environments in lockstep.")] = 4,
    sandbox: Annotated[str, typer.Option(help="Sandbox backend: bwrap, docker, local.")] = "bwrap",
    unsafe_local: Annotated[bool, typer.Option(help="Allow the unisolated 'local' backend.")] = (
        False
    ),
    max_steps: Annotated[int, typer.Option(min=1, help="Steps before truncation.")] = 30,
    temperature: Annotated[float, typer.Option(min=0.0, max=5.0)] = 1.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0)] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 256,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (per turn: derived).")] = None,
    constrained: Annotated[
        bool,
        typer.Option(
            help="Decode only well-formed actions where the env has an action schema "
            "(FileTool's tool calls); transformers and HTTP backends."
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Skip episodes already in --out; --no-resume starts it over.")
    ] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run a policy on task instances and append one trajectory per episode to --out."""
    from agentbench import tasks
    from agentbench.rollouts.engine import make_jobs, run_rollouts
    from agentbench.sandbox import SandboxStartError

    if sandbox == "local" and not unsafe_local:
        raise _fail("the 'local' backend is not isolated; pass --unsafe-local to use it anyway")
    try:
        params = SamplingParams(
            temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
            constrained=constrained,
        )  # fmt: skip
        env_ids = [env_id(e) for e in env] if env else None
        if family is not None and family not in tasks.list_families():
            raise ValueError(f"unknown family {family!r}; known: {tasks.list_families()}")
        source = tasks.iter_instances(family, split)
        if env_ids:  # n instances that run in the chosen environments, not n then filtered
            source = (i for i in source if any(e in i.env_ids for e in env_ids))
        instances = list(itertools.islice(source, n))
        jobs = make_jobs(instances, env_ids, repeats)
        if not jobs:
            raise ValueError(
                f"no jobs: {len(instances)} instance(s) of family={family or 'all'} "
                f"split={split}, none in {env_ids or 'any environment'}"
            )
    except (ValueError, TypeError, KeyError) as exc:
        raise _fail(str(exc)) from None
    try:
        _check_envs(jobs)
        if policy.startswith("scripted:"):
            _check_scripted(policy.partition(":")[2], jobs)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        chosen = make_policy(policy)
    except Exception as exc:  # a model that cannot load: say why, no traceback
        raise _fail(f"cannot make policy {policy!r}: {exc}") from None
    reasons: Counter[str] = Counter()

    def note(record: Trajectory, _: Any) -> None:
        if record.infra_failure:
            reasons[_reason_kind(record.infra_reason or "no reason recorded")] += 1

    try:
        summary = run_rollouts(
            chosen,
            jobs,
            out_path=out,
            parallel=parallel,
            sandbox=sandbox,
            params=params,
            max_steps=max_steps,
            progress=progress,
            resume=resume,
            sandbox_kwargs={"allow_unsafe": True} if sandbox == "local" else None,
            on_episode=note,
        )
    except (SandboxStartError, StoreError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except RuntimeError as exc:
        if type(exc).__name__ != "BackendUnavailableError":  # the HTTP server is down
            raise
        raise _fail(f"{exc} (episodes written so far are kept; rerun to resume)") from None
    finally:
        chosen.close()
    if summary.foreign:
        console.print(
            f"[yellow]warning:[/yellow] {escape(str(out))} also holds {summary.foreign} "
            "episode(s) of other jobs (another policy, task set or sampling setting)"
        )
    table = Table(title=f"rollouts: {policy} -> {out}", show_header=False)
    rows: list[tuple[str, Any]] = [
        ("jobs", summary.jobs),
        ("written now", summary.episodes),
        ("already done (resume)", summary.skipped),
        ("infrastructure failures", summary.infra_failures),
        ("successes", summary.successes),
        ("episodes with a deletion (effect)", summary.deleted),
        ("steps", summary.steps),
        ("wall time", f"{summary.wall_s:.2f} s"),
        ("episodes/s", f"{summary.episodes_per_s:.2f}"),
        ("generated tokens/s", f"{summary.tokens_per_s:.1f}"),
        ("env share of wall time", f"{summary.env_step_share:.1%}"),
        ("generate share of wall time", f"{summary.generate_share:.1%}"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    if reasons:
        console.print("[red]infrastructure failures by reason:[/red]")
        for reason, count in reasons.most_common():
            console.print(f"  {count} x {escape(reason)}")
    if summary.episodes and summary.infra_failures == summary.episodes:
        console.print("[red]error:[/red] every episode of this run failed (see the reasons above)")
        raise typer.Exit(code=1)


def _reason_kind(reason: str) -> str:
    """A failure reason without the per-episode parts (instance ids) so that equal causes
    are counted together."""
    return reason.splitlines()[0][:300] if reason else reason


def _check_envs(jobs: list[Any]) -> None:
    """Every job's environment is registered (ValueError naming the missing ones)."""
    import gymnasium

    missing = sorted({job.env_id for job in jobs if job.env_id not in gymnasium.registry})
    if missing:
        raise ValueError(
            f"environment(s) {', '.join(missing)} are not registered: is the plugin that "
            "provides them installed? See `agentbench envs list`"
        )


def _check_scripted(style: str, jobs: list[Any]) -> None:
    """A scripted policy can play at least one job in each environment, else ValueError with
    the first reason (e.g. a plugin env that does not say how plans become actions)."""
    from agentbench.policies.oracles import PlanError
    from agentbench.policies.oracles import make_policy as make_oracle

    oracle = make_oracle(style)
    by_env: dict[str, str | None] = {}
    for job in jobs:
        if by_env.get(job.env_id, "") is None:
            continue  # this env already has a playable job
        try:
            oracle.plan(job.instance, job.env_id)
            by_env[job.env_id] = None
        except PlanError as exc:
            by_env.setdefault(job.env_id, str(exc))
    failed = {env: why for env, why in by_env.items() if why is not None}
    if failed:
        env, why = next(iter(failed.items()))
        raise ValueError(f"scripted:{style} has no actions for any task in {env}: {why}")


def _trim(text: str, limit: int) -> str:
    if limit <= 0 or len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters]"


def _pick(path: Path, episode: str | None, index: int | None) -> Trajectory:
    if episode is not None and index is not None:
        raise ValueError("give --episode or --index, not both")
    count = 0
    for number, record in enumerate(iter_trajectories(path)):
        count += 1
        if episode is not None and record.episode_id == episode:
            return record
        if episode is None and number == (index or 0):
            return record
    if episode is not None:
        raise ValueError(f"no episode {episode!r} in {path}")
    raise ValueError(f"{path} has {count} trajectories; there is no index {index or 0}")


def _flags(step: Any) -> str:
    flags = []
    if not step.action_valid:
        flags.append("[yellow]invalid[/yellow]")
    if step.deletion_intent:
        flags.append("[red]delete (intent)[/red]")
    if step.deletion_effect:
        flags.append("[red]delete (effect)[/red]")
    if step.permission_commands:
        flags.append(f"[magenta]perm: {escape(' '.join(step.permission_commands))}[/magenta]")
    if step.finish_reason != "stop":
        flags.append(f"finish: {escape(step.finish_reason)}")
    return "  ".join(flags)


@app.command("show")
def show_command(
    file: Annotated[Path, typer.Argument(help="A trajectory file.", exists=True, dir_okay=False)],
    episode: Annotated[str | None, typer.Option(help="Episode id.")] = None,
    index: Annotated[int | None, typer.Option(min=0, help="Record number (from 0).")] = None,
    max_chars: Annotated[
        int, typer.Option(help="Observation characters shown per step (0: all).")
    ] = 600,
) -> None:
    """Print one trajectory: instruction, each action and observation, flags, outcome."""
    try:
        t = _pick(file, episode, index)
    except (StoreError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    head = Table.grid(padding=(0, 2))
    head.add_row("episode", escape(t.episode_id))
    head.add_row("task", escape(f"{t.instance_id}  ({t.family}, {t.split})"))
    head.add_row("env", escape(t.env_id))
    head.add_row("policy", escape(f"{t.policy.tag}  ({t.policy.backend}: {t.policy.model})"))
    head.add_row("sandbox", escape(t.sandbox.backend))
    console.print(Panel(head, title="trajectory", expand=False))
    instruction = next((m.content for m in t.messages if m.role == "user"), "")
    console.print(Panel(escape(instruction), title="instruction"))
    for step in t.steps:
        console.print(f"[bold cyan]step {step.index}[/bold cyan]  {_flags(step)}")
        console.print(f"[bold]>[/bold] {escape(step.action)}")
        console.print(escape(_trim(step.observation, max_chars)), style="dim")
    o = t.outcome
    verdict = "[green]success[/green]" if o.success else "[red]no success[/red]"
    lines = [
        f"{verdict}  score {o.score:g}  termination {escape(o.termination)}",
        f"reason: {escape(o.reason)}",
        f"steps {o.steps}, invalid actions {o.invalid_actions}",
        f"deletion steps: intent {o.deletion_intent_steps}, effect {o.deletion_effect_steps}",
    ]
    if o.lost_by_effect:
        lines.append(f"lost: {escape(', '.join(o.lost_by_effect))}")
    if o.permission_commands:
        lines.append(f"permission commands: {escape(' '.join(o.permission_commands))}")
    if t.infra_failure:
        lines.append(f"[red]infrastructure failure:[/red] {escape(t.infra_reason or '')}")
    details = json.loads(o.details_json)
    if details:
        lines.append(f"details: {escape(json.dumps(details)[:400])}")
    console.print(Panel("\n".join(lines), title="outcome"))


if __name__ == "__main__":  # `python -m agentbench.rollouts.cli` (the kill/resume test uses it)
    app()
