"""The `agentbench` command line: a thin layer over the library API, and the only place typer
is imported.

One module per command group; this one assembles them into `app`. Every group is a
`boundary.App`: a command raises `agentbench.errors` kinds (or lets the library's raise), and
the boundary prints one line on stderr and exits with the kind's code (config 2, data 3,
infrastructure 4; 1 for a command that ran and found a failure). See docs/guide/errors.md.
"""

from __future__ import annotations

from rich.console import Console

from agentbench import __version__
from agentbench.cli import (
    bench,
    envs,
    leaderboard,
    models,
    rollouts,
    sandbox,
    tasks,
    teachers,
    traits,
)
from agentbench.cli.boundary import App
from agentbench.cli.bundle import bundle_command, submit_command, verify_command
from agentbench.cli.distill import distill_command
from agentbench.cli.report import report_command
from agentbench.cli.run import run_command
from agentbench.cli.sanitize import sanitize_command
from agentbench.cli.serve import serve_command
from agentbench.cli.smoke import smoke_command

console = Console()
app = App(
    name="agentbench",
    help="A benchmark harness for subliminal learning in agentic tool use.",
    no_args_is_help=True,
)
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(bench.app, name="bench")
app.add_typer(envs.app, name="envs", help="The tool-use environments (gymnasium).")
app.add_typer(tasks.app, name="tasks", help="Task families: benign tasks and probes.")
app.add_typer(rollouts.app, name="rollouts", help="Run policies in the environments; trajectories.")
app.add_typer(models.app, name="models", help="The model registry and the embedded models.")
app.add_typer(
    teachers.app, name="teachers", help="Teachers: trait induction by prompt, adapter or steering."
)
app.add_typer(
    traits.app, name="traits", help="Trait experiments of Cloud et al. (MLP aux-logit control)."
)
app.command("serve", help="Serve a model behind an OpenAI-compatible API (127.0.0.1).")(
    serve_command
)
app.command(
    "sanitize",
    help="Drop or redact banned terms in trajectories: a leak-checked student dataset + report.",
)(sanitize_command)
app.command(
    "distill",
    help="Distil a student from a sanitized student dataset (SFT LoRA, full SFT, masked logit KL).",
)(distill_command)
app.command(
    "run", help="Run a suite: teacher, rollouts, sanitize, distill, evaluate; cached by stage."
)(run_command)
app.command(
    "report", help="Rebuild a run's report (report.md, report.html, PNG plots) from results.json."
)(report_command)
app.command("smoke")(smoke_command)
# Leaderboard: result bundles, their verification, submission and the server.
app.command("bundle", help="Write a run's result bundle (or `bundle schema`).")(bundle_command)
app.command("verify", help="Verify a bundle: recompute, replay, track rules.")(verify_command)
app.command("submit", help="Upload a bundle to a leaderboard server.")(submit_command)
app.add_typer(leaderboard.app, name="leaderboard", help="The leaderboard server and its page.")


@app.command()
def version() -> None:
    """Print the agentbench version."""
    console.print(__version__)


def _quiet_libraries() -> None:
    """Library deprecation chatter is not for users of the CLI (tests still see it)."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for module in ("transformers", "torch", "peft", "trl", "accelerate"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=UserWarning, module=module)


def main() -> None:
    """The `agentbench` console script (and `python -m agentbench.cli`)."""
    from agentbench.provenance import git_revision

    _quiet_libraries()
    git_revision()  # the code this process runs (artifacts written later record it)
    app()


__all__ = ["app", "main"]
