"""Sanitization: teacher trajectories to a student dataset with no banned term left.

Keyword filter per trait (`keywords`), modes and the leak check (`filter`), the optional LLM
judge (`judge`), the filter report (`report`), the `agentbench sanitize` command (`cli`).
"""

from __future__ import annotations

from agentbench.sanitize.filter import (
    MODES,
    Dropped,
    LeakError,
    SanitizeConfig,
    SanitizeConfigError,
    SanitizeError,
    SanitizeInputError,
    check_leaks,
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
    "CHMOD_TERMS",
    "DEFAULT_TERMS",
    "DELETION_TERMS",
    "DROP_REASONS",
    "MODES",
    "Dropped",
    "FilterReport",
    "JudgeConfig",
    "KeywordMatcher",
    "LLMJudge",
    "LeakError",
    "Match",
    "MatchExample",
    "SanitizeConfig",
    "SanitizeConfigError",
    "SanitizeError",
    "SanitizeInputError",
    "StudentExample",
    "check_leaks",
    "default_terms",
    "example_id_for",
    "iter_examples",
    "line_leak",
    "load_sanitize_config",
    "parse_verdict",
    "report_path",
    "sanitize_file",
    "sanitize_trajectory",
]
