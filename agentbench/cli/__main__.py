"""`python -m agentbench.cli ...`: the `agentbench` command."""

from agentbench.cli import main

main()
