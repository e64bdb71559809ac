"""The one-way layers (pyproject's import-linter contract) and what a light import loads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the `agentbench` package found under `package_parent` (run from
    there, so that it comes first on sys.path), with this checkout's pyproject.toml contract."""
    pytest.importorskip("importlinter", reason="import-linter is in the dev extra")
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    code = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    config = str(ROOT / "pyproject.toml")
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache", "--config", config],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_the_layers_contract_is_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The contract sees imports inside functions: a bottom module reaching for a recipe
    is reported (the check above can fail)."""
    copy = tmp_path / "agentbench"
    shutil.copytree(ROOT / "agentbench", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "chat.py").open("a") as handle:
        handle.write("\n\ndef _upward() -> None:\n    import agentbench.recipes.tiny  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "agentbench.chat is not allowed to import agentbench.recipes" in result.stdout


def test_the_http_policy_loads_no_recipe_sanitizer_or_rollouts() -> None:
    """An HTTP client for a served model needs the policy contract and chat types only."""
    code = (
        "import json, sys; import agentbench.policies.http; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('agentbench', 'torch', 'transformers'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT), "AGENTBENCH_NO_PLUGINS": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    loaded = json.loads(out.stdout)
    assert "agentbench.policies.http" in loaded
    heavy = ("agentbench.recipes", "agentbench.sanitize", "agentbench.rollouts",
             "agentbench.distill", "agentbench.models", "agentbench.experiments", "torch",
             "transformers")  # fmt: skip
    assert [m for m in loaded if m.startswith(heavy)] == []
