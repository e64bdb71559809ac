"""Replay accepts a shell step whose concurrent processes printed the same bytes in another
order (seen on the smoke run: `find src -exec cat {} + | wc -l report.md` writes two error
lines from two processes, interleaved differently on each run), and nothing else."""

from __future__ import annotations

import pytest

from agentbench.bundle.replay import same_up_to_interleaving
from agentbench.envs.bash import format_result

PIPE = "find src -exec cat {} + | wc -l report.md"
FIND = "find: \u2018src\u2019: No such file or directory\n"
WC = "wc: report.md: No such file or directory\n"


def _obs(stderr: str, code: int = 1, stdout: str = "") -> str:
    return format_result(code, stdout, stderr)


def test_the_same_bytes_in_another_order_from_a_pipeline_are_accepted() -> None:
    recorded = _obs("wc: find: \u2018src\u2019: No such file or directory\nreport.md: No such "
                    "file or directory\n")  # fmt: skip
    assert same_up_to_interleaving(PIPE, recorded, _obs(FIND + WC))
    assert same_up_to_interleaving(PIPE, _obs(WC + FIND), _obs(FIND + WC))
    assert same_up_to_interleaving("sleep 1 & ls -l nope", _obs(WC + FIND), _obs(FIND + WC))


@pytest.mark.parametrize(
    ("action", "recorded", "replayed"),
    [
        ("ls nope; cat nope", _obs(WC + FIND), _obs(FIND + WC)),  # nothing runs at once
        (PIPE, _obs(WC + FIND), _obs(FIND + WC, code=2)),  # another exit code
        (PIPE, _obs(WC + FIND), _obs(FIND + WC + "x")),  # other bytes
        (PIPE, _obs(WC, stdout=FIND), _obs(FIND + WC)),  # bytes moved between streams
        (PIPE, _obs(FIND + WC), _obs(FIND + WC)),  # equal: not a tolerated difference
        (PIPE, format_result(1, "", WC + FIND, stderr_cut=True, limit=9),
         format_result(1, "", FIND + WC, stderr_cut=True, limit=9)),  # cut: bytes unknown
    ],
    ids=["sequential", "exit-code", "bytes", "streams", "equal", "cut"],
)  # fmt: skip
def test_any_other_difference_is_still_a_mismatch(
    action: str, recorded: str, replayed: str
) -> None:
    assert not same_up_to_interleaving(action, recorded, replayed)
