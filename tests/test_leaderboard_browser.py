"""The flow a user sees, in a real headless browser (Debian's chromium driven by Playwright):
the micro run's bundle submitted through `agentbench submit` to a server started by
`agentbench leaderboard serve`; the page sorts, filters, opens a detail page and an episode.
Screenshots are kept under tests/artifacts/leaderboard/ (gitignored)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.leaderboard_support import micro_bundle
from tests.test_leaderboard import REPO, _free_port, _serve, _wait_up

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "tests" / "artifacts" / "leaderboard"

# The first test that needs the micro run builds it: ~35 s on 2 idle cores, minutes if loaded.
pytestmark = [pytest.mark.bwrap, pytest.mark.timeout(900)]


def _cli(*args: str, input_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **(input_env or {})}
    return subprocess.run([sys.executable, "-m", "agentbench.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_submit_then_sort_filter_open_detail_and_episode_in_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        if "chromium" in os.environ.get("AGENTBENCH_REQUIRE_BACKENDS", ""):
            pytest.fail(f"chromium is required here but {CHROMIUM} is missing")
        pytest.skip("chromium: not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    bundle = tmp_path / "micro.tar.gz"
    bundle.write_bytes(micro_bundle())
    other = tmp_path / "other.tar.gz"  # a second submitter, so there is something to sort
    other.write_bytes(micro_bundle(submitter="zed <b>bold</b>"))
    db, data = f"sqlite:///{tmp_path}/lb.db", tmp_path / "data"
    tokens = {}
    for name in ("alice", "zed"):
        made = _cli("leaderboard", "add-user", name, "--db", db, "--data", str(data))
        assert made.returncode == 0, made.stderr
        tokens[name] = made.stdout.strip().splitlines()[-1]
    port = _free_port()
    server = _serve(db, data, port)
    try:
        _wait_up(port, server)
        url = f"http://127.0.0.1:{port}"
        for name, path in (("alice", bundle), ("zed", other)):
            sent = _cli("submit", str(path), "--server", url,
                        input_env={"AGENTBENCH_TOKEN": tokens[name]})  # fmt: skip
            assert sent.returncode == 0, sent.stdout + sent.stderr
            assert "accepted" in sent.stdout
        wrong = _cli("submit", str(bundle), "--server", url, "--token", "wrong")
        assert wrong.returncode == 1 and "unknown token" in wrong.stderr
        if SHOTS.exists():
            shutil.rmtree(SHOTS)
        SHOTS.mkdir(parents=True)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            page.goto(url)
            rows = page.locator("#board tbody tr")
            assert rows.count() == 4
            page.screenshot(path=str(SHOTS / "1-index.png"), full_page=True)
            # Sort by submitter (column 15), both directions.
            header = page.locator("#board th", has_text="submitter")
            header.click()
            first = page.locator("#board tbody tr").first.locator("td").nth(14).inner_text()
            assert first == "alice"
            header.click()
            first = page.locator("#board tbody tr").first.locator("td").nth(14).inner_text()
            assert first == "zed <b>bold</b>"  # shown as text, not markup
            assert page.locator("#board b").count() == 0
            page.screenshot(path=str(SHOTS / "2-sorted.png"), full_page=True)
            # Filter: by text, then by the init column's value.
            page.fill("#filter", "heterogeneous")
            assert page.locator("#board tbody tr:visible").count() == 2
            page.fill("#filter", "alice")
            assert page.locator("#board tbody tr:visible").count() == 2
            assert page.inner_text("#count") == "2 entries"
            page.screenshot(path=str(SHOTS / "3-filtered.png"), full_page=True)
            # Open a detail page, then an episode.
            page.locator("#board tbody tr:visible a.detail-link").first.click()
            page.wait_for_selector("svg.plot")
            assert page.inner_text("#status") == "accepted"
            page.locator("details.stage").first.locator("summary").click()
            page.screenshot(path=str(SHOTS / "4-detail.png"), full_page=True)
            page.locator("a.episode-link").first.click()
            page.wait_for_selector("#episode-title")
            assert page.locator(".step").count() >= 1
            assert page.locator("pre.action").count() == page.locator("pre.observation").count()
            page.screenshot(path=str(SHOTS / "5-episode.png"), full_page=True)
            browser.close()
        for shot in ("1-index", "2-sorted", "3-filtered", "4-detail", "5-episode"):
            assert (SHOTS / f"{shot}.png").stat().st_size > 5000
        site = tmp_path / "site"
        exported = _cli("leaderboard", "export-site", str(site), "--db", db, "--data", str(data))
        assert exported.returncode == 0, exported.stderr
        assert (site / "index.html").is_file() and list(site.glob("submissions/*/*/*.html"))
        assert 'href="submissions/1.html"' in (site / "index.html").read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_demo_script_takes_a_run_to_the_page(tmp_path: Path) -> None:
    """scripts/leaderboard-demo.py (how the smoke run reached the page): the micro run
    bundled, verified, submitted to a server it starts, and found on the page in chromium."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium: not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    from tests.leaderboard_support import require_micro_run

    run, suite = require_micro_run()
    shots = tmp_path / "shots"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "leaderboard-demo.py"), str(run),
         "--suite", str(suite), "--track", "micro-v1", "--submitter", "demo",
         "--shots", str(shots), "--workdir", str(tmp_path / "work")],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=800,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accepted: 24 episodes, 24 replayed" in done.stdout
    assert "submission 1: accepted" in done.stdout
    assert "2 row(s) by demo on the page" in done.stdout
    for shot in ("index", "detail", "episode"):
        assert (shots / f"{shot}.png").stat().st_size > 5000
    missing = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "leaderboard-demo.py"), str(tmp_path),
         "--suite", str(suite)], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2 and "has no results.json" in missing.stderr
