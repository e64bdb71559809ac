"""One long-lived bash per episode, each command framed by a random sentinel.

Spawning a process (or a `docker exec`) per step costs 3-80 ms; writing to a shell that is
already running costs about 2 ms. The framing:

    builtin true; { eval '<command>'; } </dev/null; __ab_rc=$?;
    printf '\\n<nonce> rc cwd\\n'; printf ... >&2

is sent as one logical line (wrapped here), so bash has parsed the sentinel before the command
runs, and the command reads /dev/null, so it cannot swallow the framing. The nonce is fresh per
command and never enters the command's environment. A command that outlives its time limit,
floods output or ends the shell (`exit`, `exec`) gets the whole sandbox process tree killed by
the backend's `kill` callback; the shell is then restarted in the last working directory it
reported. When that directory is gone (the agent deleted or moved it: its own doing, never an
infrastructure failure), the shell starts in the workspace root instead (`home_dir`, created if
needed), and the result's `shell_note` says so, for the agent's observation.

The stderr of a command whose processes run at the same time (a pipeline, a background job)
comes back in a canonical order (`agentbench.sandbox.output_order`), so that a seeded episode
does not depend on how the kernel scheduled the writers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentbench.sandbox.base import ExecResult, SandboxError, SandboxStartError
from agentbench.sandbox.output_order import (
    canonical_order,
    line_buffered_eval,
    may_run_concurrently,
    plain_eval,
)

START_TIMEOUT_S = 15.0
_WINDOW = 8192  # bytes of recent output searched for the sentinel


@dataclass
class _Stream:
    """Collects one pipe's output: the first `limit` bytes, plus a window to find the marker."""

    limit: int
    marker: bytes
    kept: bytearray
    window: bytearray
    total: int = 0
    marker_at: int | None = None  # offset in the stream where the marker starts
    marker_line: bytes = b""

    @classmethod
    def new(cls, limit: int, marker: bytes) -> _Stream:
        return cls(limit=limit, marker=marker, kept=bytearray(), window=bytearray())

    def feed(self, data: bytes) -> None:
        if self.marker_at is not None:
            return  # late output after the marker (a background job) is dropped
        start_of_window = self.total - len(self.window)
        self.total += len(data)
        if len(self.kept) < self.limit:
            self.kept += data[: self.limit - len(self.kept)]
        self.window += data
        idx = self.window.find(self.marker)
        if idx >= 0:
            end = self.window.find(b"\n", idx + len(self.marker))
            if end < 0:
                return  # the marker line is not complete yet
            self.marker_at = start_of_window + idx
            self.marker_line = bytes(self.window[idx + len(self.marker) : end])
        elif len(self.window) > _WINDOW:
            del self.window[: len(self.window) - _WINDOW]

    @property
    def done(self) -> bool:
        return self.marker_at is not None

    def output(self) -> tuple[str, bool]:
        size = self.marker_at if self.marker_at is not None else self.total
        text = bytes(self.kept[: min(size, self.limit)]).decode("utf-8", errors="replace")
        return text, size > self.limit


class PersistentShell:
    """A bash process reached through pipes. Not thread-safe: one command at a time."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        kill: Callable[[subprocess.Popen[bytes]], None] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        initial_dir: str | None = None,
    ):
        self.argv = list(argv)
        self._kill = kill or _kill_process_group
        self._env = env
        self._cwd = cwd
        self.last_dir = initial_dir
        self.home_dir = initial_dir
        """Where a restart falls back to when `last_dir` is gone (the workspace root)."""
        self.note: str | None = None
        """Set by a start that could not return to `last_dir`; taken by the next result."""
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Spawn the shell and wait until it answers. Raises SandboxStartError."""
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env=self._env,
                cwd=self._cwd,
                bufsize=0,
            )
        except OSError as exc:
            raise SandboxStartError(f"cannot start {self.argv[0]!r}: {exc}") from exc
        for stream in (self._proc.stdout, self._proc.stderr):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
        target = self.last_dir  # (a probe's reply updates last_dir to wherever bash is)
        setup = "cd -- " + shlex.quote(target) if target else "true"
        probe = self.run(setup, timeout=START_TIMEOUT_S, output_limit=4096, _restart=False)
        if probe.exit_code == 1 and self.home_dir and target != self.home_dir and self.alive:
            # The last directory is gone or unusable: come back at the workspace root.
            gone, home = target, shlex.quote(self.home_dir)
            probe = self.run(
                f"mkdir -p -- {home} && cd -- {home}",
                timeout=START_TIMEOUT_S,
                output_limit=4096,
                _restart=False,
            )
            if probe.exit_code == 0:
                self.last_dir = self.home_dir
                self.note = (
                    f"the shell was restarted in {self.home_dir}: the working directory {gone}"
                    " no longer exists"
                )
        if probe.exit_code != 0:
            self.stop()
            raise SandboxStartError(
                f"sandbox shell did not start ({' '.join(self.argv[:3])} ...): "
                f"exit={probe.exit_code} timed_out={probe.timed_out} "
                f"stderr={probe.stderr.strip()[-800:]!r}"
            )

    def stop(self) -> None:
        """Kill the shell and everything the backend's kill callback reaches."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            self._kill(proc)
        finally:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def run(
        self,
        command: str,
        *,
        timeout: float,
        output_limit: int,
        output_kill: int = 32 * 2**20,
        _restart: bool = True,
    ) -> ExecResult:
        """Run one command. See the module docstring for what happens on timeout or flood."""
        if self._proc is None or self._proc.poll() is not None:
            if not _restart:
                return ExecResult(None, "", "shell is not running", 0.0)
            self._restart()
        proc = self._proc
        assert proc is not None and proc.stdin and proc.stdout and proc.stderr
        nonce = secrets.token_hex(16).encode()
        marker = b"\n" + nonce + b" "
        # The leading `builtin true;`: after an eval ends in a quoting error ("unexpected EOF
        # while looking for matching `''"), bash 5.2 fails to see the next line's first word as a
        # reserved word, so a line starting with `{` would be a syntax error that ends the shell.
        concurrent = may_run_concurrently(command)
        line = (
            "builtin true; { "
            + (line_buffered_eval if concurrent else plain_eval)(command.replace("\0", ""))
            + "; } </dev/null; __ab_rc=$?; "
            f'builtin printf \'\\n%s %s %s\\n\' {nonce.decode()} "$__ab_rc" "${{PWD@Q}}"; '
            f"builtin printf '\\n%s \\n' {nonce.decode()} >&2\n"
        )
        out, err = _Stream.new(output_limit, marker), _Stream.new(output_limit, marker)
        started = time.monotonic()
        deadline = started + timeout
        timed_out = flooded = shell_died = False
        try:
            # A lone surrogate (JSON allows "\ud800") cannot be UTF-8; it becomes "?".
            proc.stdin.write(line.encode("utf-8", errors="replace"))
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            shell_died = True

        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        try:
            while not shell_died and not (out.done and err.done):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _ in selector.select(timeout=min(remaining, 1.0)):
                    stream: _Stream = key.data
                    try:
                        chunk = os.read(key.fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        shell_died = True
                        break
                    stream.feed(chunk)
                if out.total + err.total > output_kill:
                    flooded = True
                    break
        finally:
            selector.close()

        duration = time.monotonic() - started
        exit_code: int | None = None
        restarted = False
        if out.done and err.done:
            fields = out.marker_line.decode(errors="replace").split(" ", 1)
            exit_code = int(fields[0]) if fields[0].lstrip("-").isdigit() else None
            if len(fields) > 1:
                self.last_dir = _unquote_dir(fields[1]) or self.last_dir
        else:
            if shell_died:
                # `exit N` / `exec ...`: report the shell's status, then come back.
                try:
                    exit_code = proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    exit_code = None
            if _restart:
                self._restart()
                restarted = True
        stdout, stdout_cut = out.output()
        stderr, stderr_cut = err.output()
        if concurrent:
            stderr = canonical_order(stderr)  # its writers raced: see output_order
        note, self.note = self.note, None  # from a restart before or after this command
        return ExecResult(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            duration_s=duration,
            timed_out=timed_out,
            stdout_truncated=stdout_cut,
            stderr_truncated=stderr_cut,
            output_flooded=flooded,
            shell_restarted=restarted,
            shell_note=note,
        )

    def _restart(self) -> None:
        self.stop()
        try:
            self.start()
        except SandboxStartError as exc:
            raise SandboxError(f"sandbox shell could not be restarted: {exc}") from exc


def _kill_process_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _unquote_dir(quoted: str) -> str | None:
    """Undo bash's ${PWD@Q} quoting ('...' or $'...')."""
    try:
        parts = shlex.split(quoted.removeprefix("$"))
    except ValueError:
        return None
    if len(parts) != 1:
        return None
    value = parts[0]
    if quoted.startswith("$'"):
        value = value.encode("latin-1", "backslashreplace").decode("unicode_escape")
    return value
