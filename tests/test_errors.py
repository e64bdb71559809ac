"""The error root: every error agentbench raises on purpose has one kind under
`AgentbenchError`, keeps its `ValueError` / `RuntimeError` base, and says when it is raised."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from agentbench import errors
from agentbench.errors import AgentbenchError, ConfigError, DataError, InfrastructureError

ROOT = Path(__file__).resolve().parents[1] / "agentbench"

# module:class -> (kind, the builtin base callers may still catch it by)
EXPECTED = {
    "sanitize.schema:StudentDataError": (DataError, ValueError),
    "sanitize.filter:SanitizeError": (AgentbenchError, ValueError),
    "sanitize.filter:SanitizeConfigError": (ConfigError, ValueError),
    "sanitize.filter:SanitizeInputError": (DataError, ValueError),
    "sanitize.filter:ProbeDataError": (DataError, ValueError),
    "sanitize.filter:LeakError": (DataError, ValueError),
    "sandbox.fixture:FixtureError": (ConfigError, ValueError),
    "sandbox.rootfs:RootfsError": (InfrastructureError, RuntimeError),
    "sandbox.base:SandboxStartError": (InfrastructureError, RuntimeError),
    "sandbox.base:SandboxError": (InfrastructureError, RuntimeError),
    "sandbox.base:SandboxFileError": (DataError, Exception),
    "traits.mlp:MLPConfigError": (ConfigError, ValueError),
    "tasks.spec:TaskSpecError": (ConfigError, ValueError),
    "policies.oracles:PlanError": (ConfigError, ValueError),
    "bundle.archive:BundleError": (DataError, ValueError),
    "policies.http:BackendUnavailableError": (InfrastructureError, RuntimeError),
    "envs.plugins:UnknownEnvironmentError": (ConfigError, ValueError),
    "envs.base:ActionError": (DataError, ValueError),
    "envs.semantics:ToolSemanticsError": (ConfigError, ValueError),
    "models:ModelError": (ConfigError, RuntimeError),
    "experiments.report:ReportError": (DataError, ValueError),
    "experiments.executor:StageFailed": (AgentbenchError, RuntimeError),
    "experiments.yamlconf:ConfigError": (ConfigError, ValueError),
    "rollouts.store:StoreError": (DataError, RuntimeError),
    "distill.config:DistillConfigError": (ConfigError, ValueError),
    "distill.data:DistillDataError": (DataError, ValueError),
    "distill.sft:DistillError": (ConfigError, RuntimeError),
    "teachers.steering:SteeringError": (ConfigError, ValueError),
    "teachers.config:TeacherConfigError": (ConfigError, ValueError),
    "leaderboard.client:SubmitError": (AgentbenchError, RuntimeError),
    "leaderboard.service:AuthError": (ConfigError, PermissionError),
    "leaderboard.service:NotFound": (DataError, LookupError),
}


def _load(name: str) -> type[BaseException]:
    module, _, attr = name.partition(":")
    cls = getattr(importlib.import_module(f"agentbench.{module}"), attr)
    assert isinstance(cls, type) and issubclass(cls, BaseException)
    return cls


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_error_has_its_kind_and_keeps_its_builtin_base(name: str) -> None:
    cls = _load(name)
    kind, builtin = EXPECTED[name]
    assert issubclass(cls, kind) and issubclass(cls, builtin)
    # The kind decides the exit code: the class carries its kind's, not another's.
    assert cls.exit_code == kind.exit_code  # type: ignore[attr-defined]
    assert (cls.__doc__ or "").strip().startswith(("Raised", "Base of")), cls.__doc__


def test_the_kinds_have_distinct_exit_codes() -> None:
    codes = {kind: kind.exit_code for kind in errors.KINDS}
    assert codes == {AgentbenchError: 1, ConfigError: 2, DataError: 3, InfrastructureError: 4}
    for kind in (ConfigError, DataError, InfrastructureError):
        assert issubclass(kind, AgentbenchError) and kind.__doc__


def test_errors_is_a_bottom_module() -> None:
    tree = ast.parse(inspect.getsource(errors))
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert not [name for name in imported if name and name.startswith("agentbench")]


def test_every_public_error_class_is_rooted() -> None:
    """A new error class in the library gets a kind too (private control-flow ones aside)."""
    unrooted = []
    for path in ROOT.rglob("*.py"):
        if "cli" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = {ast.unparse(b) for b in node.bases}
            if bases & {"Exception", "ValueError", "RuntimeError", "LookupError"}:
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                cls = _load(f"{module.removesuffix('.__init__')}:{node.name}")
                if not issubclass(cls, AgentbenchError):
                    unrooted.append(f"{module}:{node.name}")
    assert not unrooted, unrooted
