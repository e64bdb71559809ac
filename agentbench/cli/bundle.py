"""`agentbench bundle`, `agentbench verify`, `agentbench submit`, `agentbench bench replay`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agentbench.cli.boundary import config_errors
from agentbench.errors import ConfigError

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def bundle_command(
    run_dir: Annotated[
        str, typer.Argument(help="The run folder (results.json); `schema` prints the JSON Schema.")
    ],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Bundle file to write.")] = None,
    submitter: Annotated[str, typer.Option(help="Who submits (metadata.yaml).")] = "anonymous",
    suite: Annotated[Path | None, typer.Option(help="The suite file the run used.")] = None,
    store: Annotated[Path | None, typer.Option(help="The stage store the run used.")] = None,
    track: Annotated[str, typer.Option(help="Track submitted to (see docs).")] = "open",
    metadata: Annotated[
        Path | None, typer.Option(help="YAML with metadata.yaml fields (report_url, compute...).")
    ] = None,
    with_data: Annotated[bool, typer.Option(help="Include the student datasets.")] = False,
) -> None:
    """Write a run's result bundle, or print the bundle's JSON Schema (`bundle schema`)."""
    import yaml

    from agentbench.bundle import build_bundle, bundle_json_schema, get_track

    if run_dir == "schema" and not Path(run_dir).is_dir():
        console.print_json(json.dumps(bundle_json_schema()))
        return
    if out is None:
        raise ConfigError("pass -o FILE: where to write the bundle")
    with config_errors(ValueError, yaml.YAMLError):  # an unknown track, metadata not YAML
        get_track(track)
        extra = yaml.safe_load(metadata.read_text()) if metadata else {}
        if extra is not None and not isinstance(extra, dict):
            raise ConfigError(f"{metadata}: expected a mapping of metadata fields")
    # BundleError: a run folder that cannot be bundled (a data error).
    manifest = build_bundle(
        Path(run_dir), out, submitter=submitter, suite_file=suite, store=store, track=track,
        with_data=with_data, metadata=extra or {},
    )  # fmt: skip
    size = out.stat().st_size
    console.print(
        f"wrote {out} ({size:,} bytes): {len(manifest.files) + 1} files, "
        f"{manifest.episodes} episodes, chain {manifest.episode_chain[:16]}"
    )


def verify_command(
    file: Annotated[Path, typer.Argument(help="The bundle (.tar.gz).")],
    replay_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of episodes replayed (seeded sample).")
    ] = 1.0,
    backend: Annotated[str, typer.Option(help="Replay sandbox: bwrap, docker.")] = "bwrap",
    track: Annotated[str | None, typer.Option(help="Check against this track instead.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Verify a bundle: schema, manifest, recomputed numbers, replayed episodes, track rules."""
    from agentbench.bundle import verify_bundle

    data = file.read_bytes()  # OSError: the boundary names the file
    report = verify_bundle(
        data, replay_fraction=replay_fraction, backend=backend, track=track,
        log=None if as_json else (lambda m: console.print(m, highlight=False)),
    )  # fmt: skip
    if as_json:
        console.print_json(json.dumps({
            "ok": report.ok, "errors": report.errors, "warnings": report.warnings,
            "episodes": report.episodes, "replayed": report.replayed,
            "bundle_id": report.manifest_sha256,
        }))  # fmt: skip
    else:
        for warning in report.warnings:
            console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
        for error in report.errors:
            err.print(f"[red]error:[/red] {error}", highlight=False, markup=True)
        console.print(report.summary(), highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def submit_command(
    file: Annotated[Path, typer.Argument(help="The bundle (.tar.gz).")],
    server: Annotated[str, typer.Option(help="Leaderboard server URL.")] = "http://127.0.0.1:8765",
    token: Annotated[
        str | None, typer.Option(help="API token (default: $AGENTBENCH_TOKEN).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the verdict.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the verdict.")] = 600.0,
) -> None:
    """Upload a bundle to a leaderboard server (with progress) and wait for its verdict."""
    from agentbench.leaderboard.client import submit

    token = token or os.environ.get("AGENTBENCH_TOKEN")
    if not token:
        raise ConfigError("no token: pass --token or set AGENTBENCH_TOKEN (`leaderboard add-user`)")
    # SubmitError: unreadable, refused or unreachable (an infrastructure error).
    status = submit(file, server, token, wait=wait, timeout=timeout, say=console.print)
    console.print(f"submission {status['id']}: {status['status']}", highlight=False)
    for reason in status.get("errors") or []:
        err.print(f"  {reason}", highlight=False, markup=False)
    if status["status"] in ("rejected", "failed"):
        raise typer.Exit(1)
