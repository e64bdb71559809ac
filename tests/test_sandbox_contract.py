"""The `Sandbox` contract, run against every backend (bwrap, docker, local) through the checks
a plugin author runs too (`agentbench.sandbox.self_check`), and those checks themselves."""

from __future__ import annotations

import pytest
from conftest import ALL_BACKENDS, SandboxFactory, backend_params, require_backend

from agentbench.errors import AgentbenchError
from agentbench.sandbox import ExecResult, Sandbox, SandboxConfig
from agentbench.sandbox.local import LocalSandbox
from agentbench.sandbox.self_check import (
    CHECK_NAMES,
    CHECKS,
    SelfCheckError,
    run_check,
    self_check,
)


@pytest.fixture(scope="module", params=backend_params(ALL_BACKENDS))
def sandbox(request: pytest.FixtureRequest, module_sandbox_factory: SandboxFactory) -> Sandbox:
    config = SandboxConfig(command_timeout_s=10, output_limit_bytes=4096)
    return module_sandbox_factory(request.param, config)


@pytest.mark.parametrize("check", list(CHECKS))
def test_contract(sandbox: Sandbox, check: str) -> None:
    result = run_check(sandbox, check)
    if result.skipped:
        pytest.skip(result.detail)
    assert result.passed, f"{sandbox.name}: {check}: {result.detail}"


@pytest.mark.parametrize("backend", backend_params(ALL_BACKENDS))
def test_lifecycle_and_close_twice(backend: str) -> None:
    require_backend(backend)
    self_check(backend, checks=["lifecycle"]).raise_on_failure()


def test_isolation_checks_skip_a_backend_without_isolation(sandbox_factory: SandboxFactory) -> None:
    local = sandbox_factory("local")
    for name in ("host_files_are_out_of_reach", "network_is_off", "other_users"):
        result = run_check(local, name)
        assert result.skipped and "does not claim" in result.detail, result


class _CorruptingSandbox(LocalSandbox):
    """A backend with two contract bugs: reads drop the last byte, and `exec` ignores the
    caller's output limit (the config's applies instead)."""

    name = "corrupting"

    def read_file(self, path: str) -> bytes:
        return super().read_file(path)[:-1]

    def exec(
        self, command: str, *, timeout: float | None = None, output_limit: int | None = None
    ) -> ExecResult:
        return super().exec(command, timeout=timeout, output_limit=None)


def test_self_check_reports_each_broken_rule() -> None:
    broken = _CorruptingSandbox(allow_unsafe=True)
    broken.start()
    try:
        report = self_check(broken, checks=["exit_codes_and_streams", "stdin_is_empty",
                                            "file_helpers_are_relative_to_the_workspace",
                                            "output_cap_sets_truncation_flags"])  # fmt: skip
    finally:
        broken.close()
    assert not report.ok
    assert [r.name for r in report.failures] == [
        "file_helpers_are_relative_to_the_workspace",
        "output_cap_sets_truncation_flags",
    ]
    assert "output_limit=1 did not cut" in report.result("output_cap_sets_truncation_flags").detail
    assert report.result("exit_codes_and_streams").passed
    assert "b'one\\ntwo\\x00'" in report.result("file_helpers_are_relative_to_the_workspace").detail
    assert "FAILED" in str(report) and "2 passed, 2 failed" in str(report)
    with pytest.raises(SelfCheckError, match="'corrupting' fails 2 contract check") as caught:
        report.raise_on_failure()
    assert isinstance(caught.value, AgentbenchError) and caught.value.exit_code == 1


def test_self_check_names_unknown_backends_and_checks() -> None:
    with pytest.raises(ValueError, match="bwrap"):
        self_check("no-such-backend")
    with pytest.raises(ValueError, match="known: exit_codes_and_streams"):
        self_check("local", checks=["no_such_check"])
    assert CHECK_NAMES[-1] == "lifecycle" and set(CHECKS) < set(CHECK_NAMES)


def test_cli_check() -> None:
    from typer.testing import CliRunner

    from agentbench.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["sandbox", "check", "local", "--check", "stdin_is_empty"])
    assert done.exit_code == 0, done.output
    assert "sandbox backend 'local'" in done.output and "passed  stdin_is_empty" in done.output
    unknown = runner.invoke(app, ["sandbox", "check", "nope"])
    assert unknown.exit_code == 2 and "bwrap" in unknown.output
