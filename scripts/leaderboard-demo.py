"""A run's whole way onto the leaderboard page, through the project's own commands:
`agentbench bundle`, `agentbench verify`, `agentbench leaderboard add-user` and `serve`,
`agentbench submit --wait`, then the page opened in Debian's chromium (Playwright) and
screenshotted: the index with the entry, its detail page and one of its episodes.

    .venv/bin/python scripts/leaderboard-demo.py runs/smoke --suite suites/smoke.yaml \
        --track smoke-v1 --shots docs/img/smoke

Exits 0 when the server accepted the bundle and the page shows it, 1 otherwise (the failing
command's output is printed), 2 on bad arguments. Everything else (bundle, database, stored
bundles) goes to a temporary folder unless --workdir names one."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parent.parent


def _cli(*args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "agentbench.cli", *args], env=full_env,
                          capture_output=True, text=True, timeout=3600)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"agentbench {' '.join(args)} failed ({done.returncode}):\n"
                 f"{done.stdout}{done.stderr}")  # fmt: skip
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, server: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode} before it answered")
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"the server did not answer at {url} within {seconds:.0f} s")


def _screenshots(url: str, shots: Path, submitter: str) -> None:
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.goto(url)
        rows = page.locator("#board tbody tr", has_text=submitter)
        shown = rows.count()
        if shown == 0:
            sys.exit(f"the page at {url} shows no entry by {submitter}")
        page.screenshot(path=str(shots / "index.png"), full_page=True)
        rows.first.locator("a.detail-link").click()
        page.wait_for_selector("svg.plot")
        status = page.inner_text("#status")
        if status != "accepted":
            sys.exit(f"the detail page says {status!r}, not 'accepted'")
        page.locator("details.stage").first.locator("summary").click()
        page.screenshot(path=str(shots / "detail.png"), full_page=True)
        page.locator("a.episode-link").first.click()
        page.wait_for_selector("#episode-title")
        page.screenshot(path=str(shots / "episode.png"), full_page=True)
        browser.close()
    print(f"{shown} row(s) by {submitter} on the page; screenshots in {shots}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--suite", type=Path, required=True)
    parser.add_argument("--store", type=Path, help="the stage store the run used")
    parser.add_argument("--track", default="open")
    parser.add_argument("--submitter", default="agentbench-maintainers")
    parser.add_argument("--shots", type=Path, default=Path("leaderboard-shots"))
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if not (args.run_dir / "results.json").is_file():
        parser.error(f"{args.run_dir} has no results.json: run the suite first")
    if not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} is missing: apt-get install chromium")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="agentbench-lb-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    bundle = work / f"{args.run_dir.name}.bundle.tar.gz"
    started = time.monotonic()
    store = ["--store", str(args.store)] if args.store else []
    _cli("bundle", str(args.run_dir), "-o", str(bundle), "--submitter", args.submitter,
         "--suite", str(args.suite), "--track", args.track, *store)  # fmt: skip
    print(f"bundled {bundle} ({bundle.stat().st_size / 1e6:.1f} MB)")
    verdict = _cli("verify", str(bundle)).strip().splitlines()
    print("\n".join(line for line in verdict if line.startswith(("warning", "accepted"))))
    db, data = f"sqlite:///{work}/leaderboard.db", work / "data"
    token = _cli("leaderboard", "add-user", args.submitter, "--db", db, "--data", str(data))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "agentbench.cli", "leaderboard", "serve", "--db", db,
               "--data", str(data), "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        _wait_up(url, server)
        sent = _cli("submit", str(bundle), "--server", url, "--wait", "--timeout", "3000",
                    env={"AGENTBENCH_TOKEN": token.strip().splitlines()[-1]})  # fmt: skip
        print(sent.strip())
        if "accepted" not in sent:
            sys.exit("the server did not accept the bundle")
        _screenshots(url, args.shots, args.submitter)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print(f"bundle -> page in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
