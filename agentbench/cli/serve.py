"""`agentbench serve MODEL`: a local model behind the OpenAI chat-completions API."""

from __future__ import annotations

from pathlib import Path

import typer

from agentbench.cli.boundary import config_errors


def serve_command(
    model: str = typer.Argument(..., help="Registry name, local model directory or hub id."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (no authentication!)."),
    port: int = typer.Option(8000, help="Port to bind."),
    served_model_name: str | None = typer.Option(
        None, help="Model id clients send (default: MODEL)."
    ),
    dtype: str = typer.Option("auto", help="auto, float32, bfloat16 or float16."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    adapter: Path | None = typer.Option(None, help="PEFT adapter directory to merge."),
    system_prompt_file: Path | None = typer.Option(
        None, help="Trait system prompt (a file), prepended to every system message."
    ),
    max_context: int | None = typer.Option(None, help="Context limit in tokens."),
    max_tokens: int = typer.Option(512, help="Default max_tokens of a request."),
    max_batch: int = typer.Option(32, help="Most requests decoded together."),
) -> None:
    """Serve a model behind the OpenAI chat-completions API (/v1/chat/completions)."""
    from rich.console import Console

    from agentbench.policies.hf import HFPolicy
    from agentbench.serve import create_app, make_server

    console = Console(stderr=True)
    # An unreadable prompt file is an OSError: the boundary names the file (a data error).
    system_prompt = system_prompt_file.read_text() if system_prompt_file is not None else None
    with config_errors():  # ModelError keeps its kind; a bad dtype or device is a ValueError
        policy = HFPolicy(
            model,
            dtype=dtype,
            device=device,
            adapter=adapter,
            system_prompt=system_prompt,
            max_context=max_context,
        )
    name = served_model_name or model
    app = create_app(policy, name, default_max_tokens=max_tokens, max_batch=max_batch)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning:[/yellow] serving on {host} without authentication")
    console.print(f"serving {name!r} at http://{host}:{port}/v1 ({policy.device})")
    make_server(app, host=host, port=port, log_level="info").run()
