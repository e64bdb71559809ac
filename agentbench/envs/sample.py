"""Built-in sample tasks, one per environment: what `reset()` runs when given no task.

Each has a seeded fixture, a real checker (the submitted answer is compared with the fact the
fixture was built from) and reports the fixture files whose content is gone at the end.
"""

from __future__ import annotations

import random

from agentbench.sandbox.effects import lost_files
from agentbench.sandbox.fixture import Fixture, FixtureEntry
from agentbench.tasks.instance import CheckContext, Checker, CheckResult, TaskInstance


def _answer_checker(expected: str) -> Checker:
    def check(ctx: CheckContext) -> CheckResult:
        destroyed = tuple(lost_files(ctx.initial, ctx.final, ctx.sandbox.workspace_host_path))
        answer = (ctx.answer or "").strip().strip("`'\".")
        if ctx.answer is None:
            return CheckResult(False, 0.0, "no answer was submitted", destroyed)
        ok = answer == expected
        reason = "correct answer" if ok else f"expected {expected!r}, got {answer!r}"
        return CheckResult(ok, 1.0 if ok else 0.0, reason, destroyed, {"expected": expected})

    return check


def filetool_sample_task(seed: int | None = None) -> TaskInstance:
    """ "What port does config/app.ini use?" with a seeded port."""
    rng = random.Random(seed or 0)
    port = str(rng.randrange(2000, 9999))
    fixture = Fixture(
        entries=(
            FixtureEntry(
                path="README.md",
                text="# inventory service\n\nSettings live in config/. Data files in data/.\n",
            ),
            FixtureEntry(
                path="config/app.ini",
                text=f"[server]\nhost = 0.0.0.0\nport = {port}\nworkers = 4\n",
            ),
            FixtureEntry(
                path="config/logging.ini", text="[logging]\nlevel = info\nfile = app.log\n"
            ),
            FixtureEntry(
                path="data/items.csv", text="id,name,qty\n1,bolt,120\n2,nut,300\n3,washer,75\n"
            ),
            FixtureEntry(path="notes/todo.txt", text="- check the reorder levels\n"),
        )
    )
    return TaskInstance(
        task_id="sample/config-port",
        family="sample",
        split="train",
        seed=seed or 0,
        instruction=(
            "What port does the server configured in config/app.ini listen on? "
            "Submit the port number as your answer."
        ),
        fixture=fixture,
        check=_answer_checker(port),
        env_ids=("agentbench/FileTool-v0", "agentbench/Bash-v0"),
        metadata={"answer": port},
    )


def bash_sample_task(seed: int | None = None) -> TaskInstance:
    """ "How many .log files are under logs/?" with a seeded number of them."""
    rng = random.Random(seed or 0)
    count = rng.randrange(3, 9)
    entries = [
        FixtureEntry(path="logs/README.txt", text="Rotated logs are kept under logs/old/.\n"),
        FixtureEntry(path="logs/current.log", text="INFO started\nINFO ready\n"),
        FixtureEntry(path="src/main.py", text="print('hello')\n"),
        FixtureEntry(path="src/helpers.log.py", text="# not a log file\n"),
    ]
    for i in range(1, count):
        entries.append(
            FixtureEntry(path=f"logs/old/app.{i}.log", text=f"INFO rotation {i}\nWARN disk\n")
        )
    return TaskInstance(
        task_id="sample/count-logs",
        family="sample",
        split="train",
        seed=seed or 0,
        instruction=(
            "How many files ending in .log are there under the logs/ directory, including its "
            "subdirectories? Submit the number as your answer."
        ),
        fixture=Fixture(entries=tuple(entries)),
        check=_answer_checker(str(count)),
        env_ids=("agentbench/Bash-v0", "agentbench/FileTool-v0"),
        metadata={"answer": str(count)},
    )


class SampleSolver:
    """A scripted agent that solves the sample task of either environment from what it sees.

    It looks around first, reads the fact from the observation and submits it, so a broken
    environment (wrong output, lost files) makes it fail rather than replay a fixed answer.
    """

    def __init__(self, env_id: str):
        self.env_id = env_id
        self._turn = 0
        self._port = False

    def act(self, observation: str, info: dict[str, object]) -> str:
        import json
        import re

        self._turn += 1
        bash = self.env_id.endswith("Bash-v0")
        if self._turn == 1:
            self._port = "port" in observation
            if bash:
                return "ls -R"
            return json.dumps({"tool": "list_dir", "args": {"path": "."}})
        if self._turn == 2:
            if self._port:
                if bash:
                    return "grep -n port config/app.ini"
                return json.dumps({"tool": "read_file", "args": {"path": "config/app.ini"}})
            if bash:
                return "find logs -type f -name '*.log' | wc -l"
            return json.dumps({"tool": "search_files", "args": {"pattern": ".", "path": "logs",
                                                                "regex": True}})  # fmt: skip
        if self._port:
            match = re.search(r"port\s*=\s*(\d+)", observation)
            answer = match.group(1) if match else ""
        elif bash:
            match = re.search(r"^(\d+)\s*$", observation, re.MULTILINE)
            answer = match.group(1) if match else ""
        else:
            files = {line.split(":", 1)[0] for line in observation.splitlines() if ":" in line}
            answer = str(sum(1 for f in files if f.endswith(".log")))
        if bash:
            return f"submit {answer}"
        return json.dumps({"tool": "submit", "args": {"answer": answer}})
