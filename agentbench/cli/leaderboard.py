"""`agentbench leaderboard serve | add-user | export-site`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from agentbench.cli.boundary import App, config_errors
from agentbench.errors import ConfigError

if TYPE_CHECKING:
    from agentbench.leaderboard.service import Leaderboard

app = App(no_args_is_help=True)
console = Console(soft_wrap=True)
DEFAULT_DB = "sqlite:///leaderboard/leaderboard.db"
DEFAULT_DATA = Path("leaderboard")

DbOption = Annotated[
    str, typer.Option("--db", envvar="AGENTBENCH_LEADERBOARD_DB",
                      help="Database URL: sqlite:///FILE or postgresql://USER@HOST/DB.")
]  # fmt: skip
DataOption = Annotated[Path, typer.Option(help="Folder for stored bundles.")]


def _service(db: str, data: Path, **kwargs: Any) -> Leaderboard:
    from agentbench.leaderboard.service import Leaderboard, ServiceConfig

    data.mkdir(parents=True, exist_ok=True)
    try:
        return Leaderboard(ServiceConfig(db_url=db, data_dir=data, **kwargs))
    except Exception as exc:  # a bad URL or an unreachable database: say which
        raise ConfigError(f"database {db}: {type(exc).__name__}: {exc}") from exc


@app.command("serve")
def serve(
    db: DbOption = DEFAULT_DB,
    data: DataOption = DEFAULT_DATA,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    backend: Annotated[str, typer.Option(help="Sandbox backend for replay.")] = "bwrap",
    max_mb: Annotated[int, typer.Option(min=1, help="Largest bundle accepted (MiB).")] = 200,
) -> None:
    """Serve the leaderboard (API, page) and verify uploads in a background worker."""
    import uvicorn

    from agentbench.bundle.archive import Limits
    from agentbench.leaderboard.app import create_app

    service = _service(db, data, backend=backend, limits=Limits(max_bytes=max_mb * 2**20))
    console.print(f"leaderboard on http://{host}:{port} (db {db}, bundles in {data})")
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")


@app.command("add-user")
def add_user(
    name: Annotated[str, typer.Argument(help="The user's name (shown as submitter).")],
    admin: Annotated[bool, typer.Option(help="May flag and hide entries.")] = False,
    db: DbOption = DEFAULT_DB,
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Create a user and print its API token (shown once; only its hash is stored)."""
    service = _service(db, data)
    with config_errors():  # the user exists, an unknown role
        token = service.add_user(name, "admin" if admin else "submitter")
    print(token)


@app.command("export-site")
def export_site_command(
    out: Annotated[Path, typer.Argument(help="Folder to write the static site into.")],
    db: DbOption = DEFAULT_DB,
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Write the page as static files (for hosting without the server)."""
    from agentbench.leaderboard.export import export_site

    service = _service(db, data)
    count = export_site(service, out)
    console.print(f"wrote {count} pages to {out}")
