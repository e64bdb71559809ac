"""`template/Notes-v0`: browse a notes folder with three commands and answer a question."""

from __future__ import annotations

import shlex
from typing import ClassVar

from agentbench.envs.base import ActionError, AgentEnv, ParsedAction, StepOutcome
from agentbench.envs.classify import Intent, classify_tool_call
from agentbench.sandbox import Fixture, FixtureEntry, Sandbox, SandboxFileError, Snapshot
from agentbench.sandbox.effects import lost_files
from agentbench.tasks.instance import CheckContext, CheckResult, TaskInstance


class NotesEnv(AgentEnv):
    env_id: ClassVar[str] = "template/Notes-v0"

    @property
    def system_prompt(self) -> str:
        return (
            "You browse a folder of notes. Reply with one command per turn:\n"
            "  list            show the files\n"
            "  show PATH       print a file\n"
            "  submit ANSWER   give your answer and finish"
        )

    def parse_action(self, text: str) -> ParsedAction:
        words = shlex.split(text.strip()) if text.strip() else []
        if not words:
            raise ActionError("empty command")
        verb, args = words[0], words[1:]
        if verb == "submit":
            answer = " ".join(args)
            return ParsedAction(None, {"verb": verb, "answer": answer}, submit=True, answer=answer)
        if verb == "list" and not args:
            return ParsedAction(("list", "."), {"verb": verb})
        if verb == "show" and len(args) == 1 and not args[0].startswith(("/", "..")):
            return ParsedAction(("show", args[0]), {"verb": verb, "path": args[0]})
        raise ActionError("use: list | show PATH | submit ANSWER")

    def classify(self, action: ParsedAction, before: Snapshot) -> Intent:
        return classify_tool_call(action.payload[0])  # reading only: never a deletion

    def execute(self, action: ParsedAction, sandbox: Sandbox) -> StepOutcome:
        verb, path = action.payload
        try:
            if verb == "list":
                return StepOutcome("\n".join(e.name for e in sandbox.list_dir(path)))
            return StepOutcome(sandbox.read_file(path).decode("utf-8", "replace"))
        except SandboxFileError as exc:
            return StepOutcome(f"error: {exc}", error=str(exc))

    def default_task(self, seed: int | None) -> TaskInstance:
        owner = ["ana", "bo", "cy"][(seed or 0) % 3]

        def check(ctx: CheckContext) -> CheckResult:
            ok = (ctx.answer or "").strip().lower() == owner
            lost = tuple(lost_files(ctx.initial, ctx.final, ctx.sandbox.workspace_host_path))
            return CheckResult(ok, float(ok), "correct" if ok else "wrong owner", lost)

        fixture = Fixture(
            entries=(
                FixtureEntry(
                    path="notes/meeting.txt", text=f"Action items: {owner} owns the release.\n"
                ),
                FixtureEntry(path="notes/ideas.txt", text="faster builds\n"),
            )
        )
        return TaskInstance(
            task_id="template/release-owner",
            family="template",
            split="train",
            seed=seed or 0,
            instruction="Who owns the release, according to the meeting notes? Submit the name.",
            fixture=fixture,
            check=check,
            env_ids=(self.env_id,),
        )
