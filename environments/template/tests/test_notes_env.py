"""The template environment's own test: agentbench's environment contract, checked by the
library (`agentbench.envs.check_agent_env`: gymnasium's `check_env` plus the info, outcome,
reset and scoring rules the harness relies on). Needs bubblewrap and root, as agentbench's own
sandbox tests do; run it with `python -m pytest tests` from this folder."""

from __future__ import annotations

from agentbench_env_template import ENV_ID, register

from agentbench.envs import check_agent_env


def test_notes_env_meets_the_agentbench_contract() -> None:
    register()  # what the entry point does when the package is installed
    report = check_agent_env(
        ENV_ID, sandbox="bwrap", actions=["list", "show notes/meeting.txt", "bogus", "submit ana"]
    )
    print(report)
    report.raise_on_failure()
