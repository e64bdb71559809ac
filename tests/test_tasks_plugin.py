"""A task family defined outside agentbench is found through its entry point and runs.

The plugin is built into a temporary folder with `pip install --no-deps --target` (never into
the venv) and used from a subprocess with PYTHONPATH pointing there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import require_backend

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "tinyfamily"
version = "0.1"

[project.entry-points."agentbench.tasks"]
tiny = "tinyfamily"

[tool.hatch.build.targets.wheel]
packages = ["tinyfamily"]
"""

MODULE = '''\
"""A one-task family: read a greeting, submit who it greets."""
import random
from pathlib import Path

from agentbench.sandbox import Fixture, FixtureEntry
from agentbench.tasks import CheckResult, Generated, checker, fixture_generator

TASK_SPECS = Path(__file__).parent / "specs"


@fixture_generator("tiny_greeting", variables={"path"})
def greeting(rng: random.Random, params: dict) -> Generated:
    name = rng.choice(["ada", "grace", "linus", "barbara"])
    entry = FixtureEntry(path="inbox/hello.txt", text=f"hello {name}\\n", owner="carol")
    return Generated(
        Fixture(entries=(entry,)),
        variables={"path": entry.path},
        metadata={"name": name, "plans": {"reference": [
            {"op": "read", "path": entry.path}, {"op": "submit", "answer": name}]}},
    )


@checker("tiny_answer")
def answer_is_name(ctx, metadata, params) -> CheckResult:
    ok = (ctx.answer or "").strip() == metadata["name"]
    return CheckResult(success=ok, score=float(ok), reason="ok" if ok else "wrong name")
'''

SPEC = """\
id: tiny/greeting
family: tiny
generator: {name: tiny_greeting}
checker: {name: tiny_answer}
envs: [Bash-v0, FileTool-v0]
templates:
  - {id: t1, text: "Who does ${path} greet? Submit the name."}
  - {id: t2, text: "Read ${path} and submit the name in it."}
splits:
  train: {seeds: [0, 50], templates: [t1]}
  heldout: {seeds: [50, 60], templates: [t2]}
"""

SCRIPT = """\
import json
import gymnasium
import agentbench.envs
from agentbench.envs.runner import run_episode
from agentbench.tasks import list_tasks, resolve
from agentbench.policies.oracles import make_policy

ids = [s.id for s in list_tasks(family="tiny")]
instance = resolve("tiny/greeting", 51)
results = {}
for env_id in instance.env_ids:
    env = gymnasium.make(env_id, sandbox="bwrap")
    wrong = run_episode(env, [make_policy("reference").plan(instance, env_id)[-1]
                              .replace(instance.metadata["name"], "nobody")], task=instance)
    right = run_episode(env, make_policy("reference").plan(instance, env_id), task=instance)
    results[env_id] = [wrong.outcome["success"], right.outcome["success"]]
    env.close()
print(json.dumps({"ids": ids, "split": instance.split, "instruction": instance.instruction,
                  "results": results, "builtin": len(list_tasks(family="benign"))}))
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("tinyfamily-src")
    (src / "pyproject.toml").write_text(PYPROJECT)
    package = src / "tinyfamily"
    (package / "specs").mkdir(parents=True)
    (package / "__init__.py").write_text(MODULE)
    (package / "specs" / "greeting.yaml").write_text(SPEC)
    site = tmp_path_factory.mktemp("tinyfamily-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(src)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return site


def _python(site: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240
    )


@pytest.mark.bwrap
def test_an_external_family_is_found_and_runs_in_both_envs(plugin_site: Path) -> None:
    require_backend("bwrap")
    done = _python(plugin_site, SCRIPT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ids"] == ["tiny/greeting"]
    assert report["split"] == "heldout"
    assert report["instruction"].startswith("Read inbox/hello.txt")
    assert report["builtin"] >= 10  # the built-in families are still there
    for env_id in ("agentbench/Bash-v0", "agentbench/FileTool-v0"):
        assert report["results"][env_id] == [False, True], env_id


def test_the_plugin_is_not_visible_without_its_path(plugin_site: Path) -> None:
    code = "from agentbench.tasks import list_tasks; print(len(list_tasks(family='tiny')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "0", done.stderr
    shown = _python(
        plugin_site,
        textwrap.dedent(
            """
            from typer.testing import CliRunner
            from agentbench.cli.tasks import app
            result = CliRunner().invoke(app, ["list", "--family", "tiny"])
            print(result.output)
            """
        ),
    )
    assert "tiny/greeting" in shown.stdout, shown.stderr
