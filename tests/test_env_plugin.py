"""Environment plugins: the template package, installed into a temporary directory (never into
the venv), is found through its entry point and runs an episode in a real sandbox."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import require_backend

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "environments" / "template"

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import gymnasium
    import agentbench.envs as envs
    from agentbench.envs.plugins import load_plugins
    from agentbench.envs.runner import run_episode

    loads = {load.name: load for load in load_plugins()}
    template = loads["template"]
    assert template.ok, template.error
    assert template.env_ids == ("template/Notes-v0",), template.env_ids
    broken = loads["broken"]
    assert not broken.ok and "no_such_module_xyz" in broken.error, broken
    assert loads["byclass"].env_ids == ("template/NotesByClass-v0",), loads["byclass"]
    assert gymnasium.spec("template/Notes-v0").nondeterministic

    env = envs.make("template/Notes-v0", sandbox="bwrap")
    result = run_episode(env, ["list", "bogus", "show notes/meeting.txt", "submit ana"], seed=0)
    env.close()
    print(json.dumps({"success": result.success,
                      "observations": [s.observation for s in result.steps],
                      "invalid": result.outcome["invalid_actions"]}))
    """
)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("plugins")
    # --no-build-isolation: build with the venv's hatchling instead of fetching one
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(TEMPLATE)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # Two more distributions, written as installers write them: one broken, one naming an
    # AgentEnv subclass directly instead of a register function.
    for name, value in (
        ("broken", "no_such_module_xyz:register"),
        ("byclass", "agentbench_env_template.byclass:NotesByClass"),
    ):
        info = target / f"agentbench_{name}_plugin-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: agentbench-{name}-plugin\nVersion: 0.1\n"
        )
        (info / "entry_points.txt").write_text(f"[agentbench.environments]\n{name} = {value}\n")
    (target / "agentbench_env_template" / "byclass.py").write_text(
        "from agentbench_env_template.env import NotesEnv\n\n"
        "class NotesByClass(NotesEnv):\n    env_id = 'template/NotesByClass-v0'\n"
    )
    return target


def test_template_is_built_into_a_separate_directory(plugin_dir: Path) -> None:
    assert (plugin_dir / "agentbench_env_template" / "env.py").is_file()
    entry_points = list(plugin_dir.glob("agentbench_env_template-*.dist-info/entry_points.txt"))
    assert entry_points and "agentbench.environments" in entry_points[0].read_text()


def test_plugin_found_and_runs_an_episode(plugin_dir: Path) -> None:
    require_backend("bwrap")
    import json
    import os

    env = {**os.environ, "PYTHONPATH": str(plugin_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["success"] is True
    assert result["observations"][0].splitlines() == ["notes"]
    assert result["observations"][1].startswith("error: use: list")
    assert "ana owns the release" in result["observations"][2]
    assert result["invalid"] == 1


def test_the_templates_own_test_passes(plugin_dir: Path) -> None:
    """The template ships a test that runs `check_agent_env` on its env; it passes as shipped."""
    require_backend("bwrap")
    import os

    # the plugin first, then whatever agentbench this test runs (a checkout's PYTHONPATH)
    path = os.pathsep.join(p for p in (str(plugin_dir), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests"],
        env=env, cwd=TEMPLATE, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout and "FAILED" not in proc.stdout
    assert re.search(r"passed +scoring_reads_the_sandbox", proc.stdout), proc.stdout


def test_without_the_plugin_it_is_absent() -> None:
    code = (
        "from agentbench.envs.plugins import load_plugins; import gymnasium;"
        "load_plugins(); print('template/Notes-v0' in gymnasium.registry)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_cli_lists_plugin_envs(plugin_dir: Path) -> None:
    import os

    code = (
        "from typer.testing import CliRunner; from agentbench.cli.envs import app;"
        "r = CliRunner().invoke(app, ['list']); print(r.output); raise SystemExit(r.exit_code)"
    )
    env = {**os.environ, "PYTHONPATH": str(plugin_dir), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "template/Notes-v0" in proc.stdout and "plugin template" in proc.stdout
    assert "plugin broken" in proc.stdout and "failed" in proc.stdout
