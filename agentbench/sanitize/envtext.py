"""Environment text: words the environment wrote, which are not teacher behaviour.

An observation is environment output, but much of it echoes what the teacher or the fixture
put there (a file's text, a command's output, the teacher's own command in an error): that
can carry a word the teacher hid in its action (``echo cm0= | base64 -d`` prints "rm"), so
observations are still scanned. What is masked is only the environment's *own fixed words*
that the student sees in its system prompt anyway:

- FileTool's old unknown-tool answer ``unknown tool 'x'; tools: list_dir, ..., delete_path,
  submit`` (the list is exactly the system prompt's tool names; the tool name the teacher
  typed, quoted before it, is still scanned);
- FileTool's old archive answer ``(original removed)`` after ``packed A into B``.

Both messages were reworded (no banned word) in `agentbench.envs.filetool`; the sanitizer
rewrites an older rollout's message to the new wording (`rewrite_env_text`), so the student
data reads as today's environment would have answered and holds no banned word. A trajectory
whose only matches were such text is kept and counted (`FilterReport.env_text_only`).
"""

from __future__ import annotations

import functools
import re


@functools.cache
def _patterns() -> tuple[re.Pattern[str], ...]:
    from agentbench.envs.filetool import TOOLS

    tool_list = ", ".join(TOOLS)
    return (
        re.compile(r"(?<='); tools: " + re.escape(tool_list)),
        re.compile(r"(?<=^packed )(.+? into .+?) \(original removed\)$", re.MULTILINE),
    )


TOOLS_ANSWER = "; the tools are listed in the system prompt"
ARCHIVE_ANSWER = "(the original is now only in the archive)"


def rewrite_env_text(observation: str) -> tuple[str, int]:
    """`observation` with the environment's old fixed words in today's wording; (text, n)."""
    if "tools: " not in observation and "(original removed)" not in observation:
        return observation, 0
    count = 0
    tools, archive = _patterns()
    text, n = tools.subn(TOOLS_ANSWER, observation)
    count += n
    text, n = archive.subn(r"\1 " + ARCHIVE_ANSWER, text)
    count += n
    return text, count
