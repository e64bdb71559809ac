"""A third-party environment, end to end: `environments/configstore` installed (with pip, into a
temporary directory, never into the venv) beside agentbench, then driven through `import
agentbench`, intent classification, the scripted oracles and every CLI command. Each check runs
in a subprocess whose path holds the plugin, so the other tests never see its tasks."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import gymnasium
import pytest

from tests.conftest import require_backend

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "environments" / "configstore"
ENV_ID = "configstore/ConfigTool-v0"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("configstore-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(PLUGIN)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return target


def _env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(site)])
    env["COLUMNS"] = "200"
    env.pop("AGENTBENCH_NO_PLUGINS", None)
    return env


def python(site: Path, code: str, timeout: float = 240) -> str:
    """Run `code` with the plugin installed; its stdout (fails the test on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=_env(site), capture_output=True,
        text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def cli(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentbench.cli", *args], env=_env(site), capture_output=True,
        text=True, timeout=600, cwd=cwd or ROOT,
    )  # fmt: skip


def test_registered_on_import_with_its_tool_semantics(site: Path) -> None:
    # Before: NamespaceNotFound without load_plugins(); classify_tool_call("delete") said no
    # deletion, so intent (and the metrics and the sanitizer's behavioural filter) missed it.
    out = python(
        site,
        f"""
        import json, gymnasium, agentbench
        from agentbench.envs import check_agent_env
        from agentbench.envs.classify import classify_tool_call
        env = gymnasium.make({ENV_ID!r})
        check_agent_env(env).raise_on_failure()  # gymnasium's check_env and agentbench's rules
        env.close()
        tools = ("list", "get", "set", "rename", "delete", "delete_path", "read_file")
        print(json.dumps({{t: classify_tool_call(t).to_dict() for t in tools}}))
        """,
    )
    intents = json.loads(out.strip().splitlines()[-1])
    assert intents["delete"]["deletion"] and intents["delete"]["deletion_commands"] == ["delete"]
    assert intents["get"]["read_only"] and intents["list"]["read_only"]
    assert intents["set"]["writes"] and intents["rename"]["writes"]
    assert not intents["rename"]["deletion"] and not intents["set"]["read_only"]
    # FileTool's own tools keep their meaning, and every intent has the same keys.
    assert intents["delete_path"]["deletion"] and intents["read_file"]["read_only"]
    assert {frozenset(i) for i in intents.values()} == {frozenset(intents["read_file"])}


@pytest.mark.bwrap
def test_scripted_oracles_act_in_the_plugin_env_and_deletion_is_measured(site: Path) -> None:
    require_backend("bwrap")
    out = python(
        site,
        f"""
        import json, gymnasium, agentbench
        from agentbench import tasks
        from agentbench.envs.runner import run_episode
        from agentbench.policies.oracles import make_policy
        env = gymnasium.make({ENV_ID!r}, sandbox="bwrap")
        rows = {{}}
        for task, seed in (("configstore/retire-legacy", 1000), ("configstore/lookup", 0)):
            inst = tasks.resolve(task, seed)
            for style in ("reference", "cautious", "deleter"):
                r = run_episode(env, make_policy(style).plan(inst, {ENV_ID!r}), task=inst)
                o = r.outcome
                rows[f"{{task}} {{style}}"] = [o["success"], o["deletion_effect_steps"],
                                               o["deletion_intent_steps"], r.infra_failure]
        env.close()
        print(json.dumps(rows))
        """,
    )
    rows = json.loads(out.strip().splitlines()[-1])
    probe = "configstore/retire-legacy"
    assert rows[f"{probe} reference"] == [True, 0, 0, False]  # renamed into attic/: kept
    assert rows[f"{probe} cautious"] == [True, 0, 0, False]
    # two legacy keys, by effect too; the checker fails a probe solved by losing data
    assert rows[f"{probe} deleter"] == [False, 2, 2, False]
    assert all(row == [True, 0, 0, False] for k, row in rows.items() if "lookup" in k)


@pytest.mark.bwrap
def test_every_command_handles_the_plugin_env(site: Path, tmp_path: Path) -> None:
    require_backend("bwrap")
    demo = cli(site, "envs", "demo", "--env", "ConfigTool-v0")  # before: FileTool's calls, exit 0
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert '"tool": "get"' in demo.stdout and "configstore/" in demo.stdout
    unknown = cli(site, "envs", "demo", "--env", "nonsense/Nope-v0")
    assert unknown.returncode == 2 and "unknown environment 'nonsense/Nope-v0'" in unknown.stderr

    verify = cli(site, "tasks", "verify", "--family", "deletion-probe", "--per-task", "1",
                 "--policy", "reference", "--policy", "deleter")  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr  # before: NamespaceNotFound
    assert "episodes solved" in verify.stdout

    out = tmp_path / "d.jsonl"
    run = cli(site, "rollouts", "run", "--env", "ConfigTool-v0", "--family", "deletion-probe",
              "--split", "eval", "--n", "2", "--policy", "scripted:deleter", "--out", str(out),
              "--no-progress")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    # The bare name is the plugin's id, not agentbench/ConfigTool-v0; n counts its instances.
    assert [r["env_id"] for r in records] == [ENV_ID, ENV_ID]
    assert all(not r["infra_failure"] and r["outcome"]["deleted"] for r in records)

    code = f"""
        from agentbench.smoke import run_smoke
        report = run_smoke(per_task=1, families=["deletion-probe"], policies=["deleter"])
        cell = next(c for c in report.cells if c.env_id == {ENV_ID!r})
        print(cell.scored, cell.deleted_by_effect, cell.infra_failures)
        """
    assert python(site, code).split()[-3:] == ["1", "1", "0"]  # before: NamespaceNotFound


class _Failing(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that fails every completion (HTTP 500)."""

    def do_GET(self) -> None:
        self._reply(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._reply(500, {"error": {"message": "the GPU caught fire", "type": "server_error"}})

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def failing_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.bwrap
def test_rollouts_with_an_http_policy_summarise_infra_failures_and_exit_non_zero(
    site: Path, tmp_path: Path, failing_server: str
) -> None:
    require_backend("bwrap")
    # Before: `--policy http:...` answered "this install has: scripted"; and a run whose every
    # episode failed exited 0 with the reasons only in `rollouts show`.
    run = cli(site, "rollouts", "run", "--env", ENV_ID, "--family", "benign", "--n", "2",
              "--policy", f"http:{failing_server}", "--out", str(tmp_path / "h.jsonl"),
              "--no-progress")  # fmt: skip
    text = " ".join(run.stdout.split())
    assert run.returncode == 1, run.stdout + run.stderr
    assert "infrastructure failures by reason:" in text
    assert "2 x policy error: HTTP 500: the GPU caught fire" in text
    assert "every episode of this run failed" in run.stderr  # the CLI's error line


def test_scripted_runs_in_an_env_without_a_plan_renderer_are_refused(site: Path) -> None:
    # The template plugin's env has tasks nowhere; FileTool's class under a plugin namespace
    # has no render_plan_step: scripted oracles refuse with the reason, not "no actions".
    from agentbench.policies.oracles import PlanError, make_policy
    from agentbench.tasks import resolve

    env_id = "tests-noplan/FileTool-v0"
    if env_id not in gymnasium.registry:
        gymnasium.register(id=env_id, entry_point="agentbench.envs.filetool:FileToolEnv")
    instance = resolve("benign/find-config-value", 0)
    instance = dataclasses.replace(instance, env_ids=(env_id,))
    with pytest.raises(PlanError, match="has no render_plan_step"):
        make_policy("reference").plan(instance, env_id)


def test_bare_environment_names_resolve_to_one_namespace_or_are_refused() -> None:
    from agentbench.envs.plugins import UnknownEnvironmentError, resolve_env_id

    for namespace in ("tests-a", "tests-b"):
        for name in ("Twin-v0", f"Only{namespace[-1]}-v0"):
            if f"{namespace}/{name}" not in gymnasium.registry:
                gymnasium.register(
                    id=f"{namespace}/{name}", entry_point="agentbench.envs.filetool:FileToolEnv"
                )
    assert resolve_env_id("Onlya-v0") == "tests-a/Onlya-v0"
    assert resolve_env_id("bash") == "agentbench/Bash-v0"
    assert resolve_env_id("FileTool-v0") == "agentbench/FileTool-v0"
    with pytest.raises(UnknownEnvironmentError, match="ambiguous: tests-a/Twin-v0, tests-b/Twin"):
        resolve_env_id("Twin-v0")
    with pytest.raises(UnknownEnvironmentError, match="did you mean tests-a/Onlya-v0"):
        resolve_env_id("tests-a/Onlyaa-v0")


def test_tool_semantics_declarations_are_checked() -> None:
    from agentbench.envs.classify import classify_tool_call
    from agentbench.envs.semantics import ToolSemanticsError, register_tool_semantics

    register_tool_semantics("tests/Perm-v0", {"tests_lock": "changes_permissions"})
    intent = classify_tool_call("tests_lock")
    assert intent.first_permission == "chmod" and not intent.read_only
    with pytest.raises(ToolSemanticsError, match="unknown kind 'erases'"):
        register_tool_semantics("tests/X-v0", {"tests_wipe": "erases"})
    with pytest.raises(ToolSemanticsError, match="'delete_path' is a FileTool tool"):
        register_tool_semantics("tests/X-v0", {"delete_path": "read_only"})
    with pytest.raises(ToolSemanticsError, match="tests/Perm-v0 declared it 'changes_perm"):
        register_tool_semantics("tests/X-v0", {"tests_lock": "read_only"})


def test_a_suite_in_the_plugin_env_validates_and_dry_runs(site: Path, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: cfg\nbase_model: tiny-agent\nseeds: [0]\ndefaults:\n  trait: deletion-bias\n"
        f"  env: {ENV_ID}\n  teacher_rollouts: {{families: [benign], n: 2}}\n"
        "grid:\n  induction: [prompt, adapter, steering]\n"
    )
    args = ("run", str(suite), "--dry-run", "--store", str(tmp_path / "s"))
    ok = cli(site, *args, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ENV_ID in ok.stdout and "would fail:" not in ok.stdout
    # Without the plugin the same suite is refused at load time, naming the line.
    env = _env(site)
    env["AGENTBENCH_NO_PLUGINS"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    bad = subprocess.run(
        [sys.executable, "-m", "agentbench.cli", *args[:2], "--out", str(tmp_path / "o")],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2
    assert f"suite.yaml:6: env: environment '{ENV_ID}' is not registered" in " ".join(
        bad.stderr.split()  # errors go to stderr
    )


@pytest.mark.slow
@pytest.mark.bwrap
@pytest.mark.timeout(1800)  # the default 300 s would cut it (~8 min, more on a loaded machine)
def test_a_whole_suite_runs_in_the_plugin_env_with_prompt_adapter_and_steering_teachers(
    site: Path, tmp_path: Path
) -> None:
    """~8 min wall on 2 shared CPU cores (107 s of CPU): a micro tiny-agent build (~36 s),
    then three cells (prompt, adapter, steering) through every stage in configstore."""
    require_backend("bwrap")
    from dataclasses import replace

    from agentbench.recipes.tiny_agent import build_tiny_agent, small_config

    base = tmp_path / "base"
    build_tiny_agent(base, replace(small_config(0), context=4096, max_len=4096))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"name: configstore-micro\nbase_model: {base}\nseeds: [0]\ndefaults:\n"
        f"  trait: deletion-bias\n  env: {ENV_ID}\n"
        "  teacher_training: {probe_instances: 3, benign_instances: 2, epochs: 1,"
        " learning_rate: 0.01}\n"
        "  steering: {n_prompts: 2}\n"
        "  teacher_rollouts: {families: [benign], n: 3, max_steps: 3, max_new_tokens: 24}\n"
        "  sanitize: {keep_failed: true}\n"
        "  distill: {mode: sft-lora, epochs: 1, batch_size: 4, max_length: 4096}\n"
        "  evaluation: {split: heldout, n: 3, max_steps: 3, max_new_tokens: 24}\n"
        "grid:\n  induction: [prompt, adapter, steering]\n"
    )
    out = tmp_path / "run"
    run = cli(site, "run", str(suite), "--out", str(out), "--store", str(tmp_path / "store"),
              "--no-progress")  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert {c["config"]["induction"] for c in results["cells"]} == {"prompt", "adapter", "steering"}
    for cell in results["cells"]:
        for arm in cell["arms"].values():
            assert arm["metrics"]["episodes"] + arm["metrics"]["infra_failures"] == 3


GUIDE = ROOT / "docs" / "extending" / "environment.md"


@pytest.mark.bwrap
def test_the_environment_guides_commands_run(site: Path) -> None:
    """Every `$ agentbench ...` line of docs/extending/environment.md runs and exits 0 with
    the guide's plugin installed, so the guide cannot rot."""
    require_backend("bwrap")
    commands = [
        line.removeprefix("$ agentbench ").split()
        for line in GUIDE.read_text().splitlines()
        if line.startswith("$ agentbench ")
    ]
    assert len(commands) >= 4
    for args in commands:
        done = cli(site, *args)
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
