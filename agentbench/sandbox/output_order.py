"""A canonical order for the error output of commands whose processes run at the same time.

In `chmod -R a | wcargs` both sides of the pipe write to one stderr pipe, so their lines come
back in whichever order the kernel scheduled the writers: on a loaded machine, or under another
executor, the same command gives the same lines in another order. The agent's next action then
reads a different observation, and a seeded episode stops being reproducible from there. So
when a command can run processes concurrently (a pipeline, a background job, a process
substitution, a coprocess), its stderr is returned in a canonical order: split into records (a
line and the indented lines after it, so a traceback's frames stay with their header), sorted
by text. Each record's own text is untouched; only the order between records is chosen.

Sorting whole lines needs whole lines: glibc writes an unbuffered stderr in pieces (`chmod: `,
then `missing operand`), so two racing processes could splice their lines. A concurrent
command is therefore run with coreutils' `libstdbuf` preloaded and `_STDBUF_E=L` (what `stdbuf
-eL` does), as temporary assignments on its `eval`: every stdio stderr line is then one
`write`, which a pipe never splits, and the shell's own environment is left as it was. Where
the sandbox root has no `libstdbuf`, the command runs as written.

Commands without concurrency keep their stderr as written, since one process's lines are in a
meaningful order. Stdout is never reordered: in a pipeline only the last process writes it,
and reordering a background job's output would scramble file contents.

The check is textual (quotes and backslashes honoured, no expansion), which is enough here: a
false positive only sorts one command's error lines; a concurrent writer it misses (a script
that runs its own pipeline) keeps today's behaviour.
"""

from __future__ import annotations

import re
import shlex

LIBSTDBUF = "/usr/libexec/coreutils/libstdbuf.so"
"""Where Debian's coreutils puts the library `stdbuf` preloads (inside the sandbox)."""
_CONTINUATION = re.compile(r"[ \t]")
_COPROC = re.compile(r"coproc\b")


def may_run_concurrently(command: str) -> bool:
    """Whether `command` can start processes that run at the same time: an unquoted `|` that
    is not `||`, an `&` that is not `&&` nor part of a redirection (`>&`, `<&`, `&>`), a
    process substitution `<(` / `>(`, or the `coproc` keyword."""
    quote: str | None = None
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        if quote == "'":
            if c == "'":
                quote = None
        elif c == "\\":
            i += 1  # the escaped character is literal, inside double quotes or out
        elif quote == '"':
            if c == '"':
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "|":
            if command.startswith("||", i):
                i += 1
            else:
                return True
        elif c == "&":
            if command.startswith("&&", i):
                i += 1
            elif not (command.startswith("&>", i) or (i > 0 and command[i - 1] in "<>")):
                return True
        elif _starts_concurrent_word(command, i):
            return True
        i += 1
    return False


def _starts_concurrent_word(command: str, i: int) -> bool:
    """A process substitution (`<(`, `>(`) or the `coproc` keyword starts at `i`."""
    if command[i] in "<>":
        return command.startswith("(", i + 1)
    return bool(_COPROC.match(command, i)) and (i == 0 or command[i - 1] in " \t\n;&|(")


def canonical_order(text: str) -> str:
    """`text`'s records (a line plus the indented lines that follow it) sorted by their text;
    a trailing newline stays trailing. Deterministic for any interleaving of whole records."""
    if not text:
        return text
    ends_with_newline = text.endswith("\n")
    lines = text[:-1].split("\n") if ends_with_newline else text.split("\n")
    records: list[list[str]] = []
    for line in lines:
        if records and _CONTINUATION.match(line):
            records[-1].append(line)
        else:
            records.append([line])
    ordered = "\n".join("\n".join(r) for r in sorted(records))
    return ordered + "\n" if ends_with_newline else ordered


def plain_eval(command: str) -> str:
    """Shell text that runs `command` in the current shell (`eval`, quoted)."""
    return "eval " + shlex.quote(command)


def line_buffered_eval(command: str) -> str:
    """Shell text that runs `command` in the current shell with every stdio stderr line
    written whole (libstdbuf, `_STDBUF_E=L`), or as written where the library is missing."""
    quoted = shlex.quote(command)
    return (
        f"if [[ -e {LIBSTDBUF} ]]; then "
        f'LD_PRELOAD={LIBSTDBUF}"${{LD_PRELOAD:+:$LD_PRELOAD}}" _STDBUF_E=L eval {quoted}; '
        f"else eval {quoted}; fi"
    )
