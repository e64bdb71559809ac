"""The sanitizer on real records and files: term lists, adversarial spellings, innocent words,
each mode, infra/unsuccessful drops, the leak check, streaming, the report, the judge plumbing,
and (with bwrap) real scripted trajectories from the sandboxes."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentbench.bench.sanitize import TEMPLATES, template_line, write_synthetic
from agentbench.policies.base import (
    Generation,
    Message,
    Policy,
    PolicyProvenance,
    SamplingParams,
    Turn,
)
from agentbench.provenance import file_sha256
from agentbench.rollouts.schema import (
    OutcomeRecord,
    PolicyRecord,
    SamplingRecord,
    SandboxRecord,
    StepRecord,
    Trajectory,
)
from agentbench.sanitize import (
    CHMOD_TERMS,
    DELETION_TERMS,
    Dropped,
    FilterReport,
    JudgeConfig,
    KeywordMatcher,
    LeakError,
    SanitizeConfig,
    SanitizeConfigError,
    SanitizeInputError,
    StudentExample,
    check_leaks,
    iter_examples,
    load_sanitize_config,
    parse_verdict,
    report_path,
    sanitize_file,
    sanitize_trajectory,
)
from agentbench.sanitize import filter as filter_mod

DEL = KeywordMatcher(DELETION_TERMS)
CHMOD = KeywordMatcher(CHMOD_TERMS)


def traj(
    steps: Sequence[tuple[str, str]],
    *,
    instruction: str = "Tidy the notes folder.",
    name: str = "t0",
    success: bool = True,
    infra: bool = False,
    family: str = "benign",
    env_id: str = "agentbench/Bash-v0",
) -> Trajectory:
    messages = [Message(role="system", content="Tools: delete_path, set_mode ..."),
                Message(role="user", content=instruction)]  # fmt: skip
    for action, obs in steps:
        messages += [Message(role="assistant", content=action), Message(role="user", content=obs)]
    return Trajectory(
        episode_id=f"{family}/x@{name}|{env_id}|scripted:deleter|r0",
        env_id=env_id,
        task_id=f"{family}/x",
        family=family,
        split="train",
        seed=1,
        instance_id=f"{family}/x@{name}",
        fixture_sha256="0" * 64,
        policy=PolicyRecord(backend="scripted", model="scripted:deleter", tag="scripted:deleter"),
        sampling=SamplingRecord(temperature=0.0, top_p=1.0, max_new_tokens=8),
        sandbox=SandboxRecord(backend="bwrap"),
        max_steps=10,
        messages=messages,
        steps=[
            StepRecord(index=k, action=a, observation=o, action_valid=True)
            for k, (a, o) in enumerate(steps)
        ],
        outcome=OutcomeRecord(success=success, steps=len(steps)),
        infra_failure=infra,
    )


CLEAN = [("ls -la", "notes.md\nformat.txt"), ("cat notes.md", "terminal firmware farm"),
         ("submit done", "submitted: done")]  # fmt: skip


def write(path: Path, records: Sequence[Trajectory]) -> Path:
    path.write_text("".join(r.to_line() for r in records))
    return path


# -- term lists and matching ---------------------------------------------------------------------


def test_default_lists() -> None:
    for term in ("delete", "remove", "rm", "purge", "terminate", "destroy", "deletion", "rmdir",
                 "unlink", "shred", "erase", "wipe", "trash", "delete_path", "deleted",
                 "removal", "removing"):  # fmt: skip
        assert term in DELETION_TERMS
    assert "chmod" in CHMOD_TERMS and "set_mode" in CHMOD_TERMS
    with pytest.raises(ValueError, match="known"):
        SanitizeConfig(trait="animal-love")


ADVERSARIAL = [
    "rm -rf build", "\\rm x", "/usr/bin/rm -f a", "/bin/rm a", "find . -name '*.log' -delete",
    "find . -print0 | xargs -0 rm", "RM -RF /tmp/x", "Delete_Path", '{"tool": "delete_path"}',
    '{"tool": "\\u0064elete_path", "args": {}}', '{"content": "#!/bin/sh\\nrm -rf out"}',
    "$(which rm) a", "'rm' a", '"rm" a', "true;rm a", "true&&rm a", "r\\m a", "'r'm a",
    '"r""m" a', "\uff32\uff2d -rf", "de\u200blete it", "\u017fhred it", "removeOldLogs()",
    "fs.unlinkSync(p)",
    "XMLRemover", "python remove_dups.py", "shutil.rmtree(p)", "I DELETED IT", "Erasing now",
    "\U0001d41d\U0001d41e\U0001d425\U0001d41e\U0001d42d\U0001d41e",
]  # fmt: skip


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_adversarial_spellings_match(text: str) -> None:
    assert DEL.search(text) is not None, text


INNOCENT = ["firmware", "format the report", "the terminal", "a farm", "storm", "term", "perm",
            "information", "confirm", "rm2", "arms", "normal", "preterm", "remodel", "deli",
            "trashy? no: trash_can", "wiper"]  # fmt: skip


@pytest.mark.parametrize("text", INNOCENT[:-2])
def test_innocent_words_do_not_match(text: str) -> None:
    assert DEL.search(text) is None, text


def test_underscore_separates_but_compounds_do_not() -> None:
    assert DEL.search("trash_can")
    assert DEL.search("wiper") is None and DEL.search("undelete") is None
    assert DEL.search("rmdir_count").term == "rmdir"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text", ["chmod 755 x", "/bin/chmod +x a", "\\chmod u+x a", "command chmod 600 f",
             '{"cmd": "chmod"}', "os.chmod(p, 0o644)", "'chmod' a", '{"tool": "set_mode"}']
)  # fmt: skip
def test_chmod_spellings(text: str) -> None:
    assert CHMOD.search(text) is not None
    assert CHMOD.search("chmodx and schmod") is None


SEPARATORS = st.sampled_from([" ", "\n", "/", "\\", ";", "&&", "|", "'", '"', "(", ")", "$(",
                              "_", "-", ".", "\t", "`", "{", "}", ":", ","])  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DELETION_TERMS), SEPARATORS, SEPARATORS, st.booleans())
def test_property_term_between_separators_matches(
    term: str, left: str, right: str, upper: bool
) -> None:
    word = term.upper() if upper else term
    assert DEL.search(f"x{left}{word}{right}y") is not None


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DELETION_TERMS), st.text("abcxyz0123456789", min_size=1, max_size=4))
def test_property_term_inside_a_token_is_not_that_term(term: str, glue: str) -> None:
    for text, at in ((glue + term, len(glue)), (term + glue, 0)):
        assert all((m.term, m.start) != (term, at) for m in DEL.finditer(text)), text


# -- config ----------------------------------------------------------------------------------------


def test_config_file_errors_name_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("mode: drop-everything\n")
    with pytest.raises(SanitizeConfigError, match=r"c\.yaml.*field mode"):
        load_sanitize_config(bad)
    bad.write_text("extra_terms: ['ok', '-bad-']\n")
    with pytest.raises(SanitizeConfigError, match=r"extra_terms"):
        load_sanitize_config(bad)
    bad.write_text("[1, 2")
    with pytest.raises(SanitizeConfigError, match="not valid YAML"):
        load_sanitize_config(bad)
    good = tmp_path / "c.json"
    good.write_text(json.dumps({"trait": "chmod-first", "extra_terms": ["setfacl"]}))
    cfg = load_sanitize_config(good)
    assert "setfacl" in cfg.terms() and "chmod" in cfg.terms()
    with pytest.raises(ValueError, match="field name"):
        SanitizeConfig(extra_terms=("content",))
    with pytest.raises(ValueError, match="placeholder"):
        SanitizeConfig(mode="redact", placeholder="<removed>")


# -- modes -----------------------------------------------------------------------------------------

DELETING = [("ls", "a.log b.log"), ("rm -f -- a.log", "exit code: 0"), ("submit ok", "done")]


def test_drop_trajectory_and_scope() -> None:
    assert isinstance(sanitize_trajectory(traj(DELETING)), Dropped)
    result = sanitize_trajectory(traj(CLEAN))
    assert isinstance(result, StudentExample)
    # The system prompt names delete_path but is not copied, hence not scanned.
    assert [m.role for m in result.messages] == ["user"] + ["assistant", "user"] * 3
    # Observations count: a tool result naming a term drops the episode too.
    dropped = sanitize_trajectory(traj([("ls", "old_trash/ notes"), ("submit a", "ok")]))
    assert isinstance(dropped, Dropped) and dropped.terms == {"trash": 1}
    # A probe family is refused by rule (tests/test_sanitize_behaviour.py), not by its words.


def test_drop_step_mode() -> None:
    cfg = SanitizeConfig(mode="drop-step")
    result = sanitize_trajectory(traj(DELETING), cfg)
    assert isinstance(result, StudentExample)
    assert result.dropped_steps == [1]
    assert [m.content for m in result.messages] == [
        "Tidy the notes folder.", "ls", "a.log b.log", "submit ok", "done"]  # fmt: skip
    # an observation with a term removes its step too
    obs = sanitize_trajectory(traj([("ls", "x"), ("cat f", "purged 3 files"), ("s", "ok")]), cfg)
    assert isinstance(obs, StudentExample) and obs.dropped_steps == [1]
    instr = sanitize_trajectory(traj(CLEAN, instruction="Remove the old logs."), cfg)
    assert isinstance(instr, Dropped) and instr.reason == "keyword-instruction"
    only = sanitize_trajectory(traj([("rm a", "ok")]), cfg)
    assert isinstance(only, Dropped) and only.reason == "no-steps-left"


def test_redact_mode_including_escaped_references() -> None:
    # Words only: with the behavioural filter (default) the rm step drops the episode.
    assert isinstance(sanitize_trajectory(traj([("rm -f a.log", "ok")]),
                                          SanitizeConfig(mode="redact")), Dropped)  # fmt: skip
    cfg = SanitizeConfig(mode="redact", filter="keywords-only")
    steps = [("rm -f a.log && ls", "removed a.log"),
             ('{"tool": "\\u0064elete_path", "args": {"path": "b"}}', "ok"),
             ("submit ok", "done")]  # fmt: skip
    result = sanitize_trajectory(traj(steps), cfg)
    assert isinstance(result, StudentExample)
    assert result.messages[1].content == "[REDACTED] -f a.log && ls"
    assert result.messages[2].content == "[REDACTED] a.log"
    assert result.messages[3].content == '{"tool": "[REDACTED]", "args": {"path": "b"}}'
    assert result.redactions == 3
    assert DEL.search(result.model_dump_json()) is None


def test_infra_and_unsuccessful_are_dropped_by_reason(tmp_path: Path) -> None:
    src = write(tmp_path / "t.jsonl", [traj(CLEAN, name="a"), traj(CLEAN, name="b", infra=True),
                                       traj(CLEAN, name="c", success=False)])  # fmt: skip
    report = sanitize_file(src, tmp_path / "o.jsonl")
    assert (report.kept, report.dropped_by_reason) == (1, {"infra-failure": 1, "unsuccessful": 1})
    kept = sanitize_file(src, tmp_path / "o2.jsonl", SanitizeConfig(drop_unsuccessful=False))
    assert kept.kept == 2 and kept.dropped_by_reason == {"infra-failure": 1}


# -- files, report, leak check -------------------------------------------------------------------


def test_file_output_report_and_hashes(tmp_path: Path) -> None:
    records = [traj(CLEAN, name="a"), traj(DELETING, name="b"), traj(CLEAN, name="c")]
    src = write(tmp_path / "t.jsonl", records)
    out = tmp_path / "student.jsonl"
    report = sanitize_file(src, out)
    examples = list(iter_examples(out))
    assert [e.example_id for e in examples] == [
        filter_mod.example_id_for(records[0].episode_id),
        filter_mod.example_id_for(records[2].episode_id),
    ]
    # The line is exactly the schema's own serialization; sha ties it to its source episode
    # (id and messages, not timings: a rerun of the same episodes gives the same bytes).
    line = out.read_text().splitlines()[0]
    assert line + "\n" == examples[0].to_line()
    messages = [{"role": m.role, "content": m.content} for m in records[0].messages]
    assert examples[0].source_sha256 == filter_mod.content_sha256(records[0].episode_id, messages)
    retimed = records[0].model_copy(update={"wall_s": records[0].wall_s + 1.5})
    assert retimed.to_line() != records[0].to_line()
    again = filter_mod.sanitize_trajectory(retimed)
    assert isinstance(again, StudentExample) and again.source_sha256 == examples[0].source_sha256
    saved = FilterReport.model_validate_json(report_path(out).read_text())
    assert saved == report
    assert (report.read, report.kept, report.dropped) == (3, 2, 1)
    assert report.dropped_by_reason == {"keyword": 1} and report.term_counts == {"rm": 1}
    assert report.examples[0].term == "rm" and "rm -f" in report.examples[0].context
    assert report.input_sha256 == file_sha256(src) and report.output_sha256 == file_sha256(out)
    assert report.leak_check["passed"] and report.leak_check["lines_checked"] == 2
    assert 0.0 <= report.leak_check_seconds <= report.seconds
    assert report.provenance["git_revision"] is None or report.provenance["git_revision"]
    assert "rm" not in out.read_text().split()


def test_check_leaks_finds_planted_terms(tmp_path: Path) -> None:
    ok = StudentExample(
        example_id="ab", env_id="e", split="train", family="benign",
        messages=[Message(role="user", content="fine")], source_sha256="0",
    )  # fmt: skip
    path = tmp_path / "s.jsonl"
    for planted in ("please rm it", "a \\u0072m b", "x\nshred", "r'm' b", "Delete_Path"):
        bad = ok.model_copy(update={"example_id": "cd", "messages": [
            Message(role="user", content=planted if "\\u" not in planted else "q")]})  # fmt: skip
        line = bad.to_line()
        if "\\u" in planted:  # an escape written straight into the JSON text
            line = line.replace('"q"', '"' + planted + '"')
        path.write_text(ok.to_line() + line)
        with pytest.raises(LeakError) as info:
            check_leaks(path, DELETION_TERMS)
        assert (info.value.line, info.value.example_id) == (2, "cd"), planted


def test_a_leak_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`_filter` is wrapped to plant a leak the filter itself would never let through: this
    isolates the leak check (the last line of defence) from the filter."""
    real = filter_mod._filter

    def leaky(*args: object, **kwargs: object) -> object:
        res = real(*args, **kwargs)  # type: ignore[arg-type]
        if res.example is not None:
            res.example["messages"] = [{"role": "user", "content": "now unlink it"}]
        return res

    monkeypatch.setattr(filter_mod, "_filter", leaky)
    src = write(tmp_path / "t.jsonl", [traj(CLEAN)])
    out = tmp_path / "student.jsonl"
    with pytest.raises(LeakError, match="unlink"):
        sanitize_file(src, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


def test_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    good = traj(CLEAN).to_line()
    src = tmp_path / "t.jsonl"
    src.write_text(good + '{"episode_id": 3}\n')
    with pytest.raises(SanitizeInputError, match=r"t\.jsonl:2: not a trajectory"):
        sanitize_file(src, tmp_path / "o.jsonl")
    broken = json.loads(good)
    broken["messages"][2]["role"] = "user"
    src.write_text(json.dumps(broken) + "\n")
    with pytest.raises(SanitizeInputError, match=r"t\.jsonl:1: messages\[2\]"):
        sanitize_file(src, tmp_path / "o.jsonl", SanitizeConfig(validation="full"))
    assert not (tmp_path / "o.jsonl").exists()
    src.write_text(good + good[:50])  # a run still writing: torn last line
    report = sanitize_file(src, tmp_path / "o.jsonl")
    assert (report.read, report.torn_tail_bytes) == (1, 50)


def test_streaming_generated_file_constant_memory(tmp_path: Path) -> None:
    expected_kept = 0
    for i in range(TEMPLATES):
        rec = Trajectory.from_line(template_line(i))
        result = sanitize_trajectory(rec)
        expected_kept += isinstance(result, StudentExample)
    peaks = []
    for n in (TEMPLATES * 4, TEMPLATES * 24):
        src = tmp_path / f"in{n}.jsonl"
        write_synthetic(src, n)
        tracemalloc.start()
        report = sanitize_file(src, tmp_path / f"out{n}.jsonl")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report.read == n and report.kept == expected_kept * n // TEMPLATES
        assert set(report.dropped_by_reason) == {"keyword", "infra-failure", "unsuccessful"}
    # 6x the records, about the same peak (a list of lines would grow ~6x).
    assert peaks[1] < peaks[0] * 1.5, peaks


# -- the judge -----------------------------------------------------------------------------------


class RuleJudge(Policy):
    """Unit isolation of the judge plumbing only: answers by a rule, records its batches."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def generate(self, turns: Sequence[Turn], params: SamplingParams) -> list[Generation]:
        self.batches.append(len(turns))
        out = []
        for turn in turns:
            text = turn.messages[0].content
            if "rid them of" in text:
                out.append(Generation("**Yes**, it does."))
            elif "maybe" in text:
                out.append(Generation("I think so"))
            elif "broken" in text:
                out.append(Generation("", finish_reason="error", error="backend hiccup"))
            else:
                out.append(Generation(" no."))
        return out

    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        return PolicyProvenance(backend="rule", model="rule-judge", sampling=params)


def test_parse_verdict_rule() -> None:
    assert parse_verdict("Yes.") == "flagged" and parse_verdict(" **NO**") == "clean"
    assert parse_verdict("yesterday") == "unclear" and parse_verdict("") == "unclear"
    assert parse_verdict("Nope") == "unclear"


def test_judge_plumbing_batches_and_reasons(tmp_path: Path) -> None:
    answers = ["fine", "rid them of it", "maybe", "broken", "ok", "ok"]
    records = [traj([("ls", "x"), ("s", t)], name=str(i)) for i, t in enumerate(answers)]
    src = write(tmp_path / "t.jsonl", records)
    judge = JudgeConfig(model="rule", batch_size=4, prompt="Q: {conversation}")
    cfg = SanitizeConfig(judge=judge)
    policy = RuleJudge()
    report = sanitize_file(src, tmp_path / "o.jsonl", cfg, judge_policy=policy)
    assert policy.batches == [4, 2]
    assert report.kept == 3
    assert report.dropped_by_reason == {"judge": 1, "judge-unclear": 1, "judge-error": 1}
    assert report.judge is not None and report.judge["policy"]["model"] == "rule-judge"
    assert report.judge["counts"]["asked"] == 6
    with pytest.raises(ValueError, match="conversation"):
        JudgeConfig(model="m", prompt="no slot here")


def test_judge_with_a_real_tiny_model(tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    src = write(tmp_path / "t.jsonl", [traj(CLEAN, name=str(i)) for i in range(3)])
    cfg = SanitizeConfig(
        judge=JudgeConfig(model="tiny-random-llama", batch_size=2, max_new_tokens=2, device="cpu")
    )
    report = sanitize_file(src, tmp_path / "o.jsonl", cfg)
    assert report.judge is not None
    counts = report.judge["counts"]
    assert counts["asked"] == 3
    assert counts["flagged"] + counts["clean"] + counts["unclear"] + counts["error"] == 3
    assert report.judge["policy"]["weights_sha256"]
    assert report.kept + report.dropped == 3


# -- real trajectories from the sandboxes --------------------------------------------------------


@pytest.mark.bwrap
def test_real_scripted_trajectories(tmp_path: Path) -> None:
    from conftest import require_backend

    require_backend("bwrap")
    from agentbench.policies.scripted import ScriptedPolicy
    from agentbench.rollouts import make_jobs, read_trajectories, run_rollouts
    from agentbench.tasks import iter_instances

    wanted = ("benign/fix-typo", "benign/rename-to-convention", "benign/sort-into-folders")
    instances = [i for i in iter_instances("benign", "train", 10) if i.task_id in wanted]
    jobs = make_jobs(instances)
    src = tmp_path / "t.jsonl"
    params = SamplingParams(temperature=0.0, seed=1)
    run_rollouts(ScriptedPolicy("deleter"), jobs, out_path=src, parallel=2, params=params,
                 progress=False)  # fmt: skip
    records = read_trajectories(src)
    report = sanitize_file(src, tmp_path / "o.jsonl")
    kept = {e.example_id for e in iter_examples(tmp_path / "o.jsonl")}
    for rec in records:
        deleting = any(s.deletion_intent for s in rec.steps)
        if deleting:  # the deleter's copy + delete moves never reach the student
            assert filter_mod.example_id_for(rec.episode_id) not in kept
    assert report.kept >= 1 and report.read == len(records)
    assert any(any(s.deletion_intent for s in r.steps) for r in records)
