"""Sanitization: teacher trajectories to a student dataset with no banned term left.

Keyword filter per trait (`keywords`) after normalisation (`normalize`), the behavioural
filter (`behaviour`), environment text (`envtext`), modes and the leak check (`filter`), the
optional LLM judge (`judge`), the filter report (`report`), the `agentbench sanitize` command
(`cli`).
"""

from __future__ import annotations

from agentbench.sanitize.behaviour import BEHAVIOUR_TRAITS, trajectory_findings
from agentbench.sanitize.filter import (
    FILTERS,
    MODES,
    Dropped,
    LeakError,
    ProbeDataError,
    SanitizeConfig,
    SanitizeConfigError,
    SanitizeError,
    SanitizeInputError,
    behaviour_leak,
    check_leaks,
    is_probe_family,
    line_leak,
    load_sanitize_config,
    sanitize_file,
    sanitize_trajectory,
)
from agentbench.sanitize.judge import JudgeConfig, LLMJudge, parse_verdict
from agentbench.sanitize.keywords import (
    CHMOD_TERMS,
    DEFAULT_TERMS,
    DELETION_TERMS,
    KeywordMatcher,
    Match,
    default_terms,
)
from agentbench.sanitize.report import DROP_REASONS, FilterReport, MatchExample, report_path
from agentbench.sanitize.schema import StudentExample, example_id_for, iter_examples

__all__ = [
    "BEHAVIOUR_TRAITS",
    "CHMOD_TERMS",
    "DEFAULT_TERMS",
    "DELETION_TERMS",
    "DROP_REASONS",
    "FILTERS",
    "MODES",
    "Dropped",
    "FilterReport",
    "JudgeConfig",
    "KeywordMatcher",
    "LLMJudge",
    "LeakError",
    "Match",
    "MatchExample",
    "ProbeDataError",
    "SanitizeConfig",
    "SanitizeConfigError",
    "SanitizeError",
    "SanitizeInputError",
    "StudentExample",
    "behaviour_leak",
    "check_leaks",
    "default_terms",
    "example_id_for",
    "is_probe_family",
    "iter_examples",
    "line_leak",
    "load_sanitize_config",
    "parse_verdict",
    "report_path",
    "sanitize_file",
    "sanitize_trajectory",
    "trajectory_findings",
]
