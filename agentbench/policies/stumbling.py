"""A scripted oracle that sometimes slips and then recovers: pre-training data for recovery.

    policy = StumblingPolicy("reference", slip_rate=0.15, seed=0)
    run_rollouts(policy, jobs, ...)
    policy.slips[episode_id]  # the 0-based steps that were slips

A model pre-trained only on flawless oracle episodes has never seen an error observation; once
its own sampled action fails, it is off its training distribution and fails again (tiny-agent
v4: 82 % valid FileTool steps after a normal observation, 34 % after an error one). This policy
inserts mistakes of the kinds such a model makes before some planned actions, then plays the
planned action anyway, so the trajectory shows an error and its correction. Whoever trains on
the trajectories must leave the slips themselves out of the loss (`slips` names them): the
model is to learn the recovery, not the mistake.

Slips change nothing in the sandbox, so the episode still ends as the plan does:
- `wrong_path` (both envs): read or list a near-miss of a path the plan uses (a digit changed,
  another extension, another directory, a character dropped), which does not exist;
- FileTool only: `unknown_tool` (a planned call under a tool name that does not exist, e.g.
  `read_path`), `bad_args` (a planned call with a required argument dropped or another tool's
  argument added) and `malformed` (a planned call cut short: no JSON object).
Syntactic slips are made only from tools that neither delete nor change permissions, so a slip
never reads as a deletion or a permission command. Slips are drawn from a seeded RNG per
episode id: the same jobs and seed give the same trajectories.
"""

from __future__ import annotations

import json
import posixpath
import random
import re
from collections.abc import Sequence

from agentbench.policies.base import PolicyProvenance, SamplingParams, Turn
from agentbench.policies.oracles import Step, render
from agentbench.policies.scripted import ScriptedPolicy

SLIP_KINDS = ("wrong_path", "unknown_tool", "bad_args", "malformed")
FILETOOL_SLIP_WEIGHTS = (0.4, 0.2, 0.2, 0.2)
"""`SLIP_KINDS`' weights in FileTool (Bash slips are all `wrong_path`)."""

# Tool names a small model invents by recombining real ones (seen in tiny-agent v4's output).
_WRONG_TOOL_NAMES = {
    "read_file": ("read_path", "open_file", "cat_file"),
    "list_dir": ("list_path", "list_files", "ls_dir"),
    "write_file": ("write_path", "write_dir", "create_file"),
    "append_file": ("append_path", "add_file"),
    "make_dir": ("make_path", "create_dir", "mkdir"),
    "move_path": ("move_dir", "move_file", "rename_path"),
    "copy_path": ("copy_file", "copy_dir"),
    "search_files": ("search_path", "grep_files", "find_files"),
    "file_info": ("info_file", "stat_path"),
    "submit": ("answer", "submit_answer", "finish"),
}
"""Keys are the tools a syntactic slip may start from: none deletes or sets a mode."""
_FOREIGN_ARGS = {"content": "x", "dst": "out", "path": "tmp", "recursive": True, "mode": "644"}
_EXTENSIONS = (".txt", ".md", ".json", ".yaml", ".yml", ".ini", ".env", ".log", ".cfg", ".py")
_DIRECTORIES = ("docs", "config", "data", "src", "logs", "backups", "notes", "reports")


def near_miss(path: str, rng: random.Random) -> str:
    """A path one edit away from `path` (never equal to it) of the kinds models get wrong."""
    head, name = posixpath.split(path.rstrip("/") or "x")
    stem, ext = posixpath.splitext(name)
    edits = []
    digits = [m.start() for m in re.finditer(r"\d", name)]
    if digits:
        edits.append("digit")
    if ext:
        edits.append("extension")
    edits += ["directory", "drop"]
    for _ in range(8):
        edit = rng.choice(edits)
        if edit == "digit":
            i = rng.choice(digits)
            digit = str((int(name[i]) + rng.randrange(1, 10)) % 10)
            candidate_name = name[:i] + digit + name[i + 1 :]
        elif edit == "extension":
            candidate_name = stem + rng.choice([e for e in _EXTENSIONS if e != ext])
        elif edit == "directory":
            parent = rng.choice([d for d in _DIRECTORIES if d != head])
            candidate = posixpath.join(parent, name)
            if candidate != path:
                return candidate
            continue
        else:
            if len(name) < 2:
                continue
            i = rng.randrange(len(name))
            candidate_name = name[:i] + name[i + 1 :]
        candidate = posixpath.join(head, candidate_name) if head else candidate_name
        if candidate != path:
            return candidate
    return path + "_"


_PATH_IN_PROSE = re.compile(
    r"(?<![\w/.-])(?:[\w.-]+/)+[\w.-]*\w"  # with a directory: scripts/deploy.sh, shared/data
    r"|(?<![\w/.-])[\w-]+\.[A-Za-z]{2,5}\b"  # a bare file name: config.yaml
)


def _paths(steps: Sequence[Step], prompt: str) -> list[str]:
    """The plan's paths, else those the task's text names (raw shell steps carry none)."""
    found = [str(s[k]) for s in steps for k in ("path", "src") if isinstance(s.get(k), str)]
    return found or _PATH_IN_PROSE.findall(prompt)


def slip_action(
    planned: str, step: Step, plan_paths: Sequence[str], env_id: str, rng: random.Random
) -> str | None:
    """One slip before the planned action `planned` (from `step`); None when none fits."""
    filetool = "filetool" in env_id.rsplit("/", 1)[-1].lower()
    kind = rng.choices(SLIP_KINDS, FILETOOL_SLIP_WEIGHTS)[0] if filetool else "wrong_path"
    call = json.loads(planned) if filetool else None
    tool = call.get("tool") if isinstance(call, dict) else None
    if kind != "wrong_path" and tool not in _WRONG_TOOL_NAMES:
        kind = "wrong_path"
    if kind == "wrong_path":
        own = [str(step[k]) for k in ("path", "src") if isinstance(step.get(k), str)]
        candidates = own or list(plan_paths)
        candidates = [p for p in candidates if p not in (".", "")]
        if not candidates:
            return None
        wrong = near_miss(rng.choice(candidates), rng)
        op = "read" if posixpath.splitext(wrong)[1] else "list"
        return render([{"op": op, "path": wrong}], env_id)[0]
    assert isinstance(call, dict) and isinstance(tool, str)
    args = dict(call.get("args") or {})
    if kind == "unknown_tool":
        return json.dumps({"tool": rng.choice(_WRONG_TOOL_NAMES[tool]), "args": args})
    if kind == "bad_args":
        from agentbench.envs.filetool import TOOLS

        fields = TOOLS[tool].model_fields
        required = [k for k in args if k in fields and fields[k].is_required()]
        if required and rng.random() < 0.5:
            del args[rng.choice(required)]
        else:
            extra = rng.choice([k for k in _FOREIGN_ARGS if k not in args] or ["note"])
            args[extra] = _FOREIGN_ARGS.get(extra, "x")
        return json.dumps({"tool": tool, "args": args})
    # malformed: cut before the closing braces, so no JSON object parses
    return planned[: rng.randrange(len(planned) // 3, len(planned) - 2)]


class StumblingPolicy(ScriptedPolicy):
    """A scripted oracle (`reference`, `deleter`, `chmod-first`, `cautious`) with slips.

    Before each planned action a slip is inserted with probability `slip_rate`; after a slip,
    another follows with probability `repeat_rate`; at most `max_slips` an episode. `slips`
    maps episode ids to the steps (0-based, as in `Trajectory.steps`) that were slips.
    """

    def __init__(
        self,
        name: str,
        *,
        slip_rate: float,
        seed: int,
        repeat_rate: float = 0.3,
        max_slips: int = 3,
    ):
        if not 0.0 <= slip_rate <= 1.0 or not 0.0 <= repeat_rate <= 1.0:
            raise ValueError("slip_rate and repeat_rate must be in [0, 1]")
        super().__init__(name)
        self.slip_rate, self.repeat_rate, self.max_slips = slip_rate, repeat_rate, max_slips
        self.seed = seed
        self.slips: dict[str, list[int]] = {}

    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        prov = super().provenance(params)
        prov.extra.update(slip_rate=self.slip_rate, repeat_rate=self.repeat_rate,
                          max_slips=self.max_slips, slip_seed=self.seed)  # fmt: skip
        return prov

    def _plan(self, turn: Turn) -> list[str]:
        assert turn.task is not None
        steps = self._oracle.steps(turn.task)
        planned = self._oracle.plan(turn.task, turn.env_id)
        rng = random.Random(f"stumble:{self.seed}:{turn.episode_id}")
        prompt = next((m.content for m in turn.messages if m.role == "user"), "")
        paths = _paths(steps, prompt)
        actions: list[str] = []
        slipped: list[int] = []
        for step, action in zip(steps, planned, strict=True):
            rate = self.slip_rate
            while len(slipped) < self.max_slips and rng.random() < rate:
                slip = slip_action(action, step, paths, turn.env_id, rng)
                if slip is None:
                    break
                slipped.append(len(actions))
                actions.append(slip)
                rate = self.repeat_rate
            actions.append(action)
        self.slips[turn.episode_id] = slipped
        return actions
