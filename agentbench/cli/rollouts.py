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

from agentbench.cli.boundary import App, config_errors
from agentbench.cli.options import (
    ConfigFileOption,
    SetOption,
    ShowConfigOption,
    field_help,
    resolve,
    show,
)
from agentbench.errors import AgentbenchError, ConfigError
from agentbench.policies.base import SamplingParams
from agentbench.policies.spec import policy_from_spec
from agentbench.rollouts.config import RolloutCommandConfig
from agentbench.rollouts.schema import Trajectory
from agentbench.rollouts.store import iter_trajectories

app = App(
    help="Run policies in the environments and inspect the trajectories.", no_args_is_help=True
)
console = Console()


def env_id(name: str) -> str:
    """`bash`, `Bash-v0`, `agentbench/Bash-v0`, a plugin's id or its bare name (when one
    namespace holds it) -> the gymnasium id. Raises ValueError for an unknown environment."""
    from agentbench.envs.plugins import resolve_env_id

    return resolve_env_id(name)


@app.command("run")
def run_command(
    out: Annotated[
        Path | None, typer.Option(help="The trajectory file (JSON lines); required to run.")
    ] = None,
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
    family: Annotated[
        list[str] | None,
        typer.Option(
            help=field_help(RolloutCommandConfig, "families", "Task family; repeat for several.")
        ),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help=field_help(RolloutCommandConfig, "split"))
    ] = None,
    n: Annotated[
        int | None,
        typer.Option(
            help=field_help(
                RolloutCommandConfig, "n", "Task instances per family (of those that run in --env)."
            )
        ),
    ] = None,
    repeats: Annotated[
        int | None, typer.Option(help=field_help(RolloutCommandConfig, "repeats"))
    ] = None,
    parallel: Annotated[
        int | None, typer.Option(help=field_help(RolloutCommandConfig, "parallel"))
    ] = None,
    sandbox: Annotated[str, typer.Option(help="Sandbox backend: bwrap, docker, local.")] = "bwrap",
    unsafe_local: Annotated[bool, typer.Option(help="Allow the unisolated 'local' backend.")] = (
        False
    ),
    max_steps: Annotated[
        int | None, typer.Option(help=field_help(RolloutCommandConfig, "max_steps"))
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help=field_help(RolloutCommandConfig, "temperature"))
    ] = None,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling mass.")] = 1.0,
    max_new_tokens: Annotated[
        int | None, typer.Option(help=field_help(RolloutCommandConfig, "max_new_tokens"))
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (per turn: derived).")] = None,
    constrained: Annotated[
        bool | None,
        typer.Option(
            "--constrained/--no-constrained",
            help=field_help(RolloutCommandConfig, "constrained"),
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Skip episodes already in --out; --no-resume starts it over.")
    ] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    config: ConfigFileOption = None,
    sets: SetOption = None,
    show_config: ShowConfigOption = False,
) -> None:
    """Run a policy on task instances and append one trajectory per episode to --out.

    The config is `RolloutCommandConfig` (a suite's `teacher_rollouts` section): --config FILE,
    then the options, then each --set KEY=VALUE; --show-config prints it and exits."""
    from agentbench.policies.http import BackendUnavailableError
    from agentbench.rollouts.engine import make_jobs, run_rollouts

    flags: dict[str, Any] = {
        "families": tuple(family) if family else None, "split": split, "n": n,
        "repeats": repeats, "parallel": parallel, "max_steps": max_steps,
        "temperature": temperature, "max_new_tokens": max_new_tokens, "constrained": constrained,
    }  # fmt: skip
    cfg = resolve(RolloutCommandConfig, file=config, flags=flags, sets=sets)
    if show_config:
        show(cfg)
    if out is None:
        raise ConfigError("--out is required: the trajectory file the episodes are appended to")
    if sandbox == "local" and not unsafe_local:
        raise ConfigError(
            "the 'local' backend is not isolated; pass --unsafe-local to use it anyway"
        )
    with config_errors(ValueError, TypeError, KeyError):
        params = SamplingParams(
            temperature=cfg.temperature, top_p=top_p, max_new_tokens=cfg.max_new_tokens,
            seed=seed, constrained=cfg.constrained,
        )  # fmt: skip
        env_ids = [env_id(e) for e in env] if env else None
        instances = _instances(cfg, env_ids)
        jobs = make_jobs(instances, env_ids, cfg.repeats)
        if not jobs:
            raise ValueError(
                f"no jobs: {len(instances)} instance(s) of families {list(cfg.families)} "
                f"split={cfg.split}, none in {env_ids or 'any environment'}"
            )
        _check_envs(jobs)
        if policy.startswith("scripted:"):
            _check_scripted(policy.partition(":")[2], jobs)
        chosen = policy_from_spec(policy)  # a model that cannot load: ModelError, a config error
    reasons: Counter[str] = Counter()

    def note(record: Trajectory, _: Any) -> None:
        if record.infra_failure:
            reasons[_reason_kind(record.infra_reason or "no reason recorded")] += 1

    try:
        with config_errors():  # a bad sandbox name: a config error
            summary = run_rollouts(
                chosen, jobs, out_path=out, parallel=cfg.parallel, sandbox=sandbox,
                params=params, max_steps=cfg.max_steps, progress=progress, resume=resume,
                on_episode=note,
                sandbox_kwargs={"allow_unsafe": True} if sandbox == "local" else None,
            )  # fmt: skip
    except BackendUnavailableError as exc:  # the HTTP server went down mid-run
        raise BackendUnavailableError(
            f"{exc} (episodes written so far are kept; rerun to resume)"
        ) from exc
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
    if summary.episodes and summary.infra_failures == summary.episodes:  # ran, and failed: 1
        raise AgentbenchError("every episode of this run failed (see the reasons above)")


def _instances(cfg: RolloutCommandConfig, env_ids: list[str] | None) -> list[Any]:
    """The first `cfg.n` instances of each family's split that run in one of `env_ids` (any
    environment if None), family by family: the suite's selection for one environment.
    Raises ValueError for an unknown family."""
    from agentbench import tasks

    known = tasks.list_families()
    out: list[Any] = []
    for family in cfg.families:
        if family not in known:
            raise ValueError(f"unknown family {family!r}; known: {known}")
        source = tasks.iter_instances(family, cfg.split)
        if env_ids:  # n instances that run in the chosen environments, not n then filtered
            source = (i for i in source if any(e in i.env_ids for e in env_ids))
        out += itertools.islice(source, cfg.n)
    return out


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
    with config_errors():  # no such episode or index; a bad file is a data error (StoreError)
        t = _pick(file, episode, index)
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
