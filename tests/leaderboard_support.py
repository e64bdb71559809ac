"""Shared by the bundle, verify and leaderboard tests: one real micro run (built once per
test process, ~35 s on 2 cores: two pipeline-size tiny-agent models, then the micro suite of
tests/test_experiments_run.py end to end in bwrap), its bundle, and helpers that edit a
bundle the way a cheater or a broken upload would."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from agentbench.bundle.archive import read_archive, write_archive
from agentbench.bundle.schema import MANIFEST
from agentbench.bundle.writer import make_manifest
from tests.conftest import require_backend

Files = dict[str, bytes]


@functools.cache
def micro_run() -> tuple[Path, Path]:
    """(run folder, suite file) of a finished micro suite run. $AGENTBENCH_TEST_MICRO_RUN may
    name a folder where one was made before (run/, micro.yaml, store/), to iterate faster."""
    import os
    from dataclasses import replace

    made = os.environ.get("AGENTBENCH_TEST_MICRO_RUN")
    if made:
        return Path(made) / "run", Path(made) / "micro.yaml"

    from typer.testing import CliRunner

    from agentbench.cli import app
    from agentbench.recipes.tiny_agent import build_tiny_agent, small_config
    from tests.test_experiments_run import SUITE

    root = Path(tempfile.mkdtemp(prefix="agentbench-lb-"))
    atexit.register(shutil.rmtree, root, True)
    base, other = root / "base", root / "other"
    config = replace(small_config(0), context=4096, max_len=4096)
    build_tiny_agent(base, config)
    build_tiny_agent(other, replace(config, init_seed=1, tokenizer_from=str(base)))
    suite = root / "micro.yaml"
    suite.write_text(SUITE.format(base=base, other=other))
    args = ["run", str(suite), "--out", str(root / "run"), "--store", str(root / "store"),
            "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return root / "run", suite


def require_micro_run() -> tuple[Path, Path]:
    require_backend("bwrap")
    return micro_run()


@functools.cache
def _bundle(with_data: bool, track: str, submitter: str) -> bytes:
    from agentbench.bundle import build_bundle

    run, suite = micro_run()
    out = run.parent / f"bundle-{with_data}-{track}-{abs(hash(submitter))}.tar.gz"
    build_bundle(run, out, submitter=submitter, suite_file=suite, track=track,
                 with_data=with_data)  # fmt: skip
    return out.read_bytes()


def micro_bundle(
    with_data: bool = False, track: str = "micro-v1", submitter: str = "alice"
) -> bytes:
    """The micro run's bundle (bytes), built once per variant."""
    require_micro_run()
    return _bundle(with_data, track, submitter)


def edit_bundle(data: bytes, edit: Callable[[Files], None], *, remanifest: bool = True) -> bytes:
    """`data` with `edit` applied to its files; with `remanifest` the manifest is rebuilt, so
    that the edit must be caught by the deeper checks (recompute, replay, rules)."""
    files = read_archive(data)
    edit(files)
    if remanifest:
        files.pop(MANIFEST, None)
        files[MANIFEST] = make_manifest(files).model_dump_json().encode()
    out = Path(tempfile.mkdtemp(prefix="agentbench-edit-")) / "b.tar.gz"
    write_archive(files, out)
    blob = out.read_bytes()
    shutil.rmtree(out.parent)
    return blob


def edit_episode(files: Files, change: Callable[[dict], None], *, index: int = 0) -> str:
    """Apply `change` to one episode record (the first stage's `index`-th); its episode id."""
    name = sorted(n for n in files if n.startswith("episodes/"))[0]
    lines = files[name].decode().splitlines()
    record = json.loads(lines[index])
    change(record)
    lines[index] = json.dumps(record, separators=(",", ":"))
    files[name] = ("\n".join(lines) + "\n").encode()
    return str(record["episode_id"])


# -- PostgreSQL: a throwaway cluster per test process ------------------------------------------


@functools.cache
def _postgres_server() -> str:
    """A base URL (no database) of a PostgreSQL server: $AGENTBENCH_TEST_POSTGRES_URL, or a
    cluster this process starts from Debian's packages in a temporary folder (unix socket
    only, trust auth) and stops at exit. Skips when PostgreSQL is not installed, unless
    $AGENTBENCH_REQUIRE_BACKENDS names `postgres`."""
    import glob
    import os
    import socket
    import subprocess

    given = os.environ.get("AGENTBENCH_TEST_POSTGRES_URL")
    if given:
        return given.rstrip("/")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        import pytest

        if "postgres" in os.environ.get("AGENTBENCH_REQUIRE_BACKENDS", ""):
            pytest.fail("postgres is required here but /usr/lib/postgresql is not installed")
        pytest.skip("postgres: not installed (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="agentbench-pg-"))
    root.chmod(0o755)
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres account
        shutil.chown(root, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                    "postgres", "--no-sync"], check=True, capture_output=True)  # fmt: skip
    opts = f"-k {root} -p {port} -c listen_addresses='' -c fsync=off"
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l",
                    str(root / "log"), "start"], check=True, capture_output=True)  # fmt: skip

    def stop() -> None:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    return f"postgresql+psycopg://postgres@/?host={root}&port={port}"


def postgres_database() -> str:
    """The URL of a new, empty database on the test server."""
    import uuid

    import psycopg

    base = _postgres_server()
    name = f"lb_{uuid.uuid4().hex[:12]}"
    url, _, query = base.partition("?")
    dsn = url.replace("postgresql+psycopg://", "postgresql://").rstrip("/") + "/postgres"
    with psycopg.connect(dsn + ("?" + query if query else ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{url.rstrip('/')}/{name}" + ("?" + query if query else "")
