"""The leaderboard server on real databases (SQLite and a throwaway PostgreSQL cluster): the
Alembic schema, uploads verified by the worker, duplicates, tokens and roles, size limits,
injection in every text field, 50 concurrent submissions, and a server killed mid-load."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select

from agentbench.bundle.archive import Limits
from agentbench.leaderboard.app import create_app
from agentbench.leaderboard.db import Entry, Submission, User
from agentbench.leaderboard.page import Links, render_episode
from agentbench.leaderboard.service import Leaderboard, ServiceConfig
from tests.leaderboard_support import Files, edit_bundle, micro_bundle, postgres_database

REPO = Path(__file__).resolve().parents[1]
# The first test that needs the micro run builds it: ~35 s on 2 idle cores, minutes if loaded.
pytestmark = pytest.mark.timeout(900)
EVIL = "<script>alert('x')</script>\"'; DROP TABLE users; --"


@pytest.fixture(params=["sqlite", "postgres"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Leaderboard]:
    url = f"sqlite:///{tmp_path}/lb.db" if request.param == "sqlite" else postgres_database()
    lb = Leaderboard(ServiceConfig(db_url=url, data_dir=tmp_path / "data", poll_s=0.1))
    yield lb
    lb.stop_worker()
    lb.engine.dispose()


def _count(lb: Leaderboard, model: Any) -> int:
    with lb.Session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _with_metadata(data: bytes, **fields: Any) -> bytes:
    import yaml

    def edit(files: Files) -> None:
        meta = yaml.safe_load(files["metadata.yaml"])
        meta.update(fields)
        files["metadata.yaml"] = yaml.safe_dump(meta).encode()

    return edit_bundle(data, edit)


def test_the_migrations_make_exactly_the_models_schema(service: Leaderboard) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from agentbench.leaderboard.db import Base

    with service.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert {"users", "submissions", "entries", "alembic_version"} <= set(
        inspect(service.engine).get_table_names()
    )


@pytest.mark.bwrap
def test_upload_is_verified_by_the_worker_and_shown_once(service: Leaderboard) -> None:
    token = service.add_user("alice")
    user = service.authenticate(token)
    status, duplicate = service.upload(user, micro_bundle())
    assert status["status"] == "pending" and not duplicate
    again, duplicate = service.upload(user, micro_bundle())
    assert duplicate and again["id"] == status["id"]
    assert service.work_once() and not service.work_once()
    done = service.status(status["id"])
    assert done["status"] == "accepted", done["errors"]
    assert done["replayed"] == done["episodes"] == 24
    rows = service.rows()
    assert {(r["student_init"], r["trait"], r["track"]) for r in rows} == {
        ("homogeneous", "deletion-bias", "micro-v1"), ("heterogeneous", "deletion-bias", "micro-v1")
    }  # fmt: skip
    for row in rows:
        assert row["treated"]["n"] == row["control"]["n"] == 3
        assert row["submitter"] == "alice" and row["verified"]
        # The report's MDE (towards the teacher's side; None when nothing is detectable).
        assert row["mde"] is None or row["mde"] != 0
        assert row["seeds"] == [0] and row["p_value"] is not None
        assert row["cost_usd"] is None and row["compute_hours"] is not None
    # Equal differences within one trait and track cannot be separated: one shared rank.
    assert {r["rank"] for r in rows} == {1}
    assert _count(service, Submission) == 1 and _count(service, Entry) == 2


@pytest.mark.bwrap
def test_a_bad_bundle_is_rejected_with_its_reasons(service: Leaderboard) -> None:
    def edit(files: Files) -> None:
        results = json.loads(files["results.json"])
        results["cells"][0]["arms"]["teacher"]["metrics"]["rates"]["p_del"]["k"] = 2
        files["results.json"] = json.dumps(results).encode()

    user = service.authenticate(service.add_user("mallory"))
    status, _ = service.upload(user, edit_bundle(micro_bundle(), edit))
    service.work_once()
    done = service.status(status["id"])
    assert done["status"] == "rejected"
    assert any("arm teacher: rates p_del k: recorded 2" in e for e in done["errors"])
    assert service.rows() == [] and _count(service, Entry) == 0


def test_api_tokens_roles_limits_and_openapi(service: Leaderboard) -> None:
    token = service.add_user("bob")
    admin = service.add_user("root", "admin")
    with service.Session() as s:  # tokens are stored hashed, never as given
        stored = {u.token_sha256 for u in s.scalars(select(User))}
    assert token not in stored and admin not in stored
    service.config = ServiceConfig(**{**service.config.__dict__,
                                      "limits": Limits(max_bytes=4096)})  # fmt: skip
    client = TestClient(create_app(service, worker=False))
    url = "/api/submissions"
    assert client.post(url, content=b"x").status_code == 401
    wrong = client.post(url, content=b"x", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "unknown token"
    auth = {"Authorization": f"Bearer {token}"}
    bad = client.post(url, content=b"not a bundle", headers=auth)
    assert bad.status_code == 400 and "not a gzip-compressed tar" in bad.json()["detail"]
    big = client.post(url, content=b"\x1f\x8b" + bytes(5000), headers=auth)
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    assert client.post(url, content=b"", headers=auth).status_code == 400
    flag = client.post(f"{url}/1/flag", json={"reason": "x"}, headers=auth)
    assert flag.status_code == 403 and "admin role" in flag.json()["detail"]
    missing = client.post(f"{url}/99/flag", json={"reason": "x"},
                          headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
    assert missing.status_code == 404
    spec = client.get("/openapi.json").json()
    assert {"/api/submissions", "/api/submissions/{sub_id}", "/api/entries",
            "/api/submissions/{sub_id}/flag"} <= set(spec["paths"])  # fmt: skip
    assert _count(service, Submission) == 0


@pytest.mark.bwrap
def test_injection_in_every_text_field_is_stored_as_text_and_escaped(
    service: Leaderboard, tmp_path: Path
) -> None:
    data = _with_metadata(
        micro_bundle(), submitter=EVIL, notes=EVIL, report_url=EVIL,
        teacher={"name": EVIL}, student={"name": EVIL}, induction=EVIL,
    )  # fmt: skip
    user = service.authenticate(service.add_user(EVIL))
    status, _ = service.upload(user, data)
    service.work_once()
    assert service.status(status["id"])["status"] == "accepted"
    admin = service.add_user("root", "admin")
    client = TestClient(create_app(service, worker=False))
    flagged = client.post(f"/api/submissions/{status['id']}/flag", json={"reason": EVIL},
                          headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
    assert flagged.status_code == 200
    pages = [client.get("/").text, client.get(f"/submissions/{status['id']}").text]
    for page in pages:
        assert "<script>alert" not in page and "&lt;script&gt;alert(" in page
    assert _count(service, User) == 2  # the users table is still there, with both users
    assert service.rows()[0]["submitter"] == EVIL and service.rows()[0]["flag_reason"] == EVIL
    from agentbench.leaderboard.export import export_site

    export_site(service, tmp_path / "site")
    for page in (tmp_path / "site").rglob("*.html"):
        assert "<script>alert" not in page.read_text()
    episode = {"episode_id": EVIL, "task_id": EVIL, "messages": [{"role": "user", "content": EVIL}],
               "steps": [{"index": 0, "action": EVIL, "observation": EVIL, "action_valid": True,
                          "intent_json": json.dumps({"x": EVIL}), "effect_json": "{}"}],
               "outcome": {}, "policy": {"tag": EVIL}}  # fmt: skip
    html = render_episode(1, "k", 0, episode, Links())
    assert "<script>alert" not in html and html.count("&lt;script&gt;") >= 5
    hidden = client.post(f"/api/submissions/{status['id']}/flag",
                         json={"reason": "withdrawn", "hidden": True},
                         headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
    assert hidden.json()["hidden"] and client.get("/api/entries").json() == []
    assert client.get(f"/submissions/{status['id']}").status_code == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.bwrap
def test_50_concurrent_submissions_none_lost_or_duplicated(service: Leaderboard) -> None:
    import uvicorn

    token = service.add_user("crowd")
    bundles = [_with_metadata(micro_bundle(), notes=f"copy {i}") for i in range(50)]
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service, worker=False), port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:

        def send(data: bytes) -> dict[str, Any]:
            r = httpx.post(f"http://127.0.0.1:{port}/api/submissions", content=data,
                           headers={"Authorization": f"Bearer {token}"}, timeout=120)  # fmt: skip
            assert r.status_code in (200, 202), r.text
            return dict(r.json())

        # Every bundle twice, all at once: 100 requests, 50 submissions.
        with ThreadPoolExecutor(max_workers=25) as pool:
            answers = list(pool.map(send, bundles + bundles))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    ids = {a["id"] for a in answers}
    assert len(ids) == 50 and sum(a["duplicate"] for a in answers) == 50
    assert _count(service, Submission) == 50
    by_bundle = {a["bundle_id"]: a["id"] for a in answers}
    assert len(by_bundle) == 50


def _serve(db: str, data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "agentbench.cli", "leaderboard", "serve", "--db", db,
         "--data", str(data), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def _wait_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError("the server did not start")


@pytest.mark.bwrap
def test_a_server_killed_mid_verification_resumes_without_partial_rows(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/lb.db"
    lb = Leaderboard(ServiceConfig(db_url=db, data_dir=tmp_path / "data"))
    token = lb.add_user("alice")
    port = _free_port()
    proc = _serve(db, tmp_path / "data", port)
    try:
        _wait_up(port, proc)
        r = httpx.post(f"http://127.0.0.1:{port}/api/submissions", content=micro_bundle(),
                       headers={"Authorization": f"Bearer {token}"}, timeout=60)  # fmt: skip
        sub = r.json()["id"]
        deadline = time.monotonic() + 60
        while lb.status(sub)["status"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lb.status(sub)["status"] == "verifying"  # replay takes seconds: kill in it
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert lb.status(sub)["status"] == "verifying" and _count(lb, Entry) == 0
        proc = _serve(db, tmp_path / "data", port)
        _wait_up(port, proc)
        deadline = time.monotonic() + 240
        while lb.status(sub)["status"] in ("pending", "verifying"):
            assert time.monotonic() < deadline, lb.status(sub)
            time.sleep(0.3)
        done = lb.status(sub)
        assert done["status"] == "accepted", done["errors"]
        assert _count(lb, Entry) == 2 and _count(lb, Submission) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def test_work_interrupted_too_often_is_marked_failed(tmp_path: Path) -> None:
    from sqlalchemy import update

    lb = Leaderboard(ServiceConfig(db_url=f"sqlite:///{tmp_path}/lb.db", data_dir=tmp_path))
    user = lb.authenticate(lb.add_user("alice"))
    with lb.Session.begin() as s:
        s.add(Submission(bundle_id="a" * 64, file_sha256="b" * 64, size=1, user_id=user.id,
                         status="verifying", attempts=3))  # fmt: skip
        s.add(Submission(bundle_id="c" * 64, file_sha256="d" * 64, size=1, user_id=user.id,
                         status="verifying", attempts=1))  # fmt: skip
    lb.recover()
    first, second = lb.status(1), lb.status(2)
    assert first["status"] == "failed" and "interrupted 3 times" in first["errors"][0]
    assert second["status"] == "pending"
    with lb.Session.begin() as s:  # the stored file is gone: failed, with the reason
        s.execute(update(Submission).where(Submission.id == 2).values(status="pending"))
    assert lb.work_once()
    assert lb.status(2)["status"] == "failed"
    assert "stored bundle unreadable" in lb.status(2)["errors"][0]


@pytest.mark.bwrap
def test_a_verifier_without_its_sandbox_fails_the_work_rather_than_rejecting(
    tmp_path: Path,
) -> None:
    lb = Leaderboard(ServiceConfig(db_url=f"sqlite:///{tmp_path}/lb.db", data_dir=tmp_path,
                                   backend="no-such-backend"))  # fmt: skip
    user = lb.authenticate(lb.add_user("alice"))
    status, _ = lb.upload(user, micro_bundle())
    assert lb.work_once()
    done = lb.status(status["id"])
    assert done["status"] == "failed" and "sandbox could not start" in done["errors"][0]


def test_cli_errors_are_clear_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from agentbench.cli import app

    monkeypatch.delenv("AGENTBENCH_TOKEN", raising=False)
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(b"whatever")
    runner = CliRunner()
    result = runner.invoke(app, ["submit", str(bundle)])
    assert result.exit_code == 2 and "no token" in result.output  # a config error
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    result = runner.invoke(app, ["submit", str(bundle), "--server", url, "--token", "t"])
    assert result.exit_code == 1 and f"cannot reach {url}" in result.output
    result = runner.invoke(app, ["submit", str(tmp_path / "none"), "--token", "t"])
    assert result.exit_code == 1 and "cannot read" in result.output
    result = runner.invoke(app, ["leaderboard", "add-user", "x", "--db", "nope://x",
                                 "--data", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2 and "database nope://x" in result.output
    db = f"sqlite:///{tmp_path}/lb.db"
    args = ["leaderboard", "add-user", "x", "--db", db, "--data", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "user 'x' exists" in again.output
