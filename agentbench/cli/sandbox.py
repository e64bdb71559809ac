"""`agentbench sandbox`: build the root file system, inspect a sandbox, clean up leftovers."""

from __future__ import annotations

import typer
from rich.console import Console

from agentbench.cli.boundary import App, config_errors

console = Console()
app = App(help="Build and inspect the sandboxes agents run in.", no_args_is_help=True)


@app.command("build")
def build_command(
    docker: bool = typer.Option(False, "--docker", help="Also import the Docker image."),
    mirror: str | None = typer.Option(None, help="Debian mirror for debootstrap."),
) -> None:
    """Build the sandbox root file system (and the Docker image) from Debian packages."""
    from agentbench.sandbox.rootfs import ensure_rootfs

    console.print(f"root file system: {ensure_rootfs(mirror=mirror)}")  # RootfsError: exit 4
    if docker:
        from agentbench.sandbox.image import ensure_image

        console.print(f"docker image: {ensure_image()}")


@app.command("info")
def info_command(
    backend: str = typer.Option("bwrap", help="Sandbox backend: bwrap, docker, local."),
    unsafe_local: bool = typer.Option(False, help="Allow the unisolated 'local' backend."),
) -> None:
    """Start a sandbox, print what it enforces and what it looks like from inside."""
    from agentbench.sandbox import make_sandbox

    kwargs = {"allow_unsafe": True} if backend == "local" and unsafe_local else {}
    with config_errors():  # an unknown backend
        sandbox = make_sandbox(backend, **kwargs)
    with sandbox:  # SandboxStartError: an infrastructure error
        info = sandbox.info()
        console.print(f"backend: {info.backend}  image: {info.image}")
        for limit, enforced in sorted(info.limits_enforced.items()):
            mark = "[green]yes[/green]" if enforced else "[yellow]no[/yellow]"
            console.print(f"  {limit:<12} enforced: {mark}")
        result = sandbox.exec("id; hostname; ls /; getent group analysts")
        console.print(result.stdout)


@app.command("clean")
def clean_command(
    docker: bool = typer.Option(True, help="Also remove leftover Docker containers."),
) -> None:
    """Remove what killed runs left behind: workspace mounts and Docker containers."""
    from agentbench.sandbox.workspace import remove_stale_workspaces

    for path in remove_stale_workspaces():
        console.print(f"removed workspace {path}")
    if docker:
        try:
            from agentbench.sandbox.docker import remove_leftovers

            for container_id in remove_leftovers():
                console.print(f"removed container {container_id[:12]}")
        except Exception as exc:  # no SDK, no daemon: nothing of Docker's to clean
            console.print(f"docker: skipped ({type(exc).__name__}: {exc})")


@app.command("check")
def check_command(
    backend: str = typer.Argument("bwrap", help="Sandbox backend: bwrap, docker, local, a plugin."),
    check: list[str] = typer.Option([], "--check", help="Run only these checks (repeatable)."),
) -> None:
    """Run the sandbox contract checks (`agentbench.sandbox.self_check`) against a backend.

    Exits 1 when a check fails; naming `local` here is consent to run it unisolated.
    """
    from agentbench.sandbox.self_check import self_check

    with config_errors():  # an unknown backend or check
        report = self_check(backend, checks=check or None)  # SandboxStartError: exit 4
    console.print(str(report), markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)
