"""Benchmarks that print figures (not tests): `agentbench bench ...`."""
