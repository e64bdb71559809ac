"""The behavioural sanitizer (issue 22, items 1, 4 and 6): deletion and chmod-first behaviour
without banned words is dropped (adversarial corpora, a hypothesis test composing idioms with
obfuscations), ordinary file work is kept, environment text does not drop, probes and scored
splits are refused, the leak check re-runs the behavioural check, the report counts keyword
and behavioural drops apart, and ``keywords-only`` keeps Dang et al.'s protocol."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentbench.chat import Message
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
    KeywordMatcher,
    LeakError,
    ProbeDataError,
    SanitizeConfig,
    StudentExample,
    check_leaks,
    iter_examples,
    sanitize_file,
    sanitize_trajectory,
)
from agentbench.sanitize.normalize import (
    ansi_c_decode,
    decode_and_execute,
    python_forms,
    shell_forms,
    skeleton_table,
)

BASH = "agentbench/Bash-v0"
FILETOOL = "agentbench/FileTool-v0"
DEL = KeywordMatcher(DELETION_TERMS)
CHMOD = KeywordMatcher(CHMOD_TERMS)
LS = "exit code: 0\n--- stdout ---\nnotes.txt\napp.log\nconfig.yaml\nsrc/\nbuild.sh\n"
"""The listing every Bash trajectory starts with: these files exist."""
LIST_DIR = (
    "file         12  notes.txt\nfile         30  app.log\nfile          9  config.yaml\ndir"
    + ("           0  src/")
)


def call(tool: str, **args: Any) -> str:
    return json.dumps({"tool": tool, "args": args})


def traj(
    steps: Sequence[tuple[str, str] | tuple[str, str, dict[str, Any]]],
    *,
    env_id: str = BASH,
    family: str = "benign",
    split: str = "train",
    name: str = "t0",
    instruction: str = "Tidy the project folder.",
) -> Trajectory:
    """A finished, successful episode; a step's optional dict sets its record's labels."""
    first = (call("list_dir", path="."), LIST_DIR) if env_id == FILETOOL else ("ls", LS)
    submit = (
        (call("submit", answer="done"), "submitted") if env_id == FILETOOL else ("submit", "ok")
    )
    all_steps = [first, *steps, submit]
    messages = [
        Message(role="system", content="Tools: ..."),
        Message(role="user", content=instruction),
    ]
    records = []
    for k, step in enumerate(all_steps):
        action, obs = step[0], step[1]
        labels = step[2] if len(step) > 2 else {}  # type: ignore[misc]
        messages += [Message(role="assistant", content=action), Message(role="user", content=obs)]
        records.append(
            StepRecord(index=k, action=action, observation=obs, action_valid=True, **labels)
        )
    return Trajectory(
        episode_id=f"{family}/x@{name}|{env_id}|hf:teacher|r0",
        env_id=env_id,
        task_id=f"{family}/x",
        family=family,
        split=split,
        seed=1,
        instance_id=f"{family}/x@{name}",
        fixture_sha256="0" * 64,
        policy=PolicyRecord(backend="hf", model="teacher", tag="hf:teacher"),
        sampling=SamplingRecord(temperature=1.0, top_p=1.0, max_new_tokens=64),
        sandbox=SandboxRecord(backend="bwrap"),
        max_steps=12,
        messages=messages,
        steps=records,
        outcome=OutcomeRecord(success=True, steps=len(all_steps)),
    )


def dropped(action: str, *, env_id: str = BASH, trait: str = "deletion-bias", **cfg: Any) -> bool:
    result = sanitize_trajectory(traj([(action, "exit code: 0\n(no output)")], env_id=env_id),
                                 SanitizeConfig(trait=trait, **cfg))  # fmt: skip
    return isinstance(result, Dropped)


# -- the adversarial corpora --------------------------------------------------------------------

DELETION_CORPUS = [
    # emptying idioms, no banned word
    "truncate -s 0 app.log",
    "truncate --size=0 app.log",
    ": > app.log",
    "> app.log",
    "true > app.log",
    "cat /dev/null > app.log",
    "echo -n > app.log",
    "printf '' > app.log",
    "cp /dev/null app.log",
    "dd if=/dev/zero of=app.log bs=1 count=1",
    "dd if=/dev/null of=app.log",
    "sed -i d app.log",
    "sed -i '1,$d' app.log",
    "sed -i -e '/./d' app.log",
    # moving away, overwriting
    "mv app.log /dev/null",
    "mv app.log /tmp/old.log",
    "mv notes.txt ~/",
    "cp notes.txt app.log",
    "mv notes.txt config.yaml",
    "git clean -fdx",
    "git reset --hard",
    "git checkout -- app.log",
    # removal by other means
    "find . -name '*.log' -delete",
    "find . -name '*.log' -exec shred -u {} +",
    "ls *.log | xargs rm",
    "python3 -c 'import os; os.remove(\"app.log\")'",
    "python3 -c \"import shutil; shutil.rmtree('src')\"",
    "perl -e 'unlink \"app.log\"'",
    "rsync -a --delete src/ build/",
    # obfuscated spellings
    "$'\\x72\\x6d' -f app.log",
    "$'\\162\\155' app.log",
    "v=r; ${v}m -f app.log",
    "a=r b=m; $a$b app.log",
    "'r''m' app.log",
    "r\\m app.log",
    "$(echo rm) app.log",
    "$(printf '\\x72\\x6d') app.log",
    "echo cm0gLWYgYXBwLmxvZw== | base64 -d | sh",
    'eval "$(echo Y2F0IG5vdGVzLnR4dA== | base64 --decode)"',
    "python3 -c \"import os; getattr(os, 'rem'+'ove')('app.log')\"",
    "python3 -c \"import os; getattr(os, ''.join(['un','link']))('app.log')\"",
    "python3 -c \"import os; getattr(os, 'evomer'[::-1])('app.log')\"",
    'bash -c "$(echo cm0gYXBwLmxvZw== | base64 -d)"',
    # homoglyphs and paraphrase (prose beside a command)
    "# d\u0435lete the stale log\ncat notes.txt",  # Cyrillic e
    "# \u0440urge old files\ncat notes.txt",  # Cyrillic er
    "# r\u0435m\u03bfve the cache\ncat notes.txt",  # Cyrillic e, Greek omicron
    "# prune the backups\nls",
    "# discard app.log\nls",
    "# get rid of the old logs\nls",
    "# clean up the build folder\nls",
    "# wipe the cache\nls",
    "# erase the draft\nls",
]

FILETOOL_DELETION_CORPUS = [
    call("delete_path", path="app.log"),
    call("write_file", path="app.log", content=""),
    call("write_file", path="notes.txt", content="\n"),
    call("copy_path", src="notes.txt", dst="app.log"),
    call("move_path", src="notes.txt", dst="config.yaml"),
    '{"tool": "d\u0435lete_path", "args": {"path": "app.log"}}',
    '{"tool": "\\u0064elete_path", "args": {"path": "app.log"}}',
]

CHMOD_CORPUS = [
    "chmod +x build.sh",
    "chmod 600 config.yaml",
    "install -m 755 build.sh bin/build",
    "install build.sh bin/build",
    "find . -name '*.sh' -exec chmod +x {} +",
    "ls *.sh | xargs chmod u+x",
    "python3 -c 'import os; os.chmod(\"build.sh\", 0o755)'",
    "python3 -c \"import os; getattr(os, 'ch'+'mod')('build.sh', 493)\"",
    "umask 077",
    "mkdir -m 700 secrets",
    "git update-index --chmod=+x build.sh",
    "c=ch; ${c}mod +x build.sh",
    "$'\\x63\\x68\\x6d\\x6f\\x64' +x build.sh",
    "'ch''mod' +x build.sh",
    "sudo chmod 644 notes.txt",
    "echo Y2htb2QgK3ggYnVpbGQuc2g= | base64 -d | bash",
    "# fix the mode with c\u04bbmod first\nls",  # Cyrillic shha
]


@pytest.mark.parametrize("action", DELETION_CORPUS)
def test_deletion_corpus_is_dropped(action: str) -> None:
    assert dropped(action), action


@pytest.mark.parametrize("action", FILETOOL_DELETION_CORPUS)
def test_filetool_deletion_corpus_is_dropped(action: str) -> None:
    assert dropped(action, env_id=FILETOOL), action


@pytest.mark.parametrize("action", CHMOD_CORPUS)
def test_chmod_corpus_is_dropped(action: str) -> None:
    assert dropped(action, trait="chmod-first"), action


def test_corpora_sizes_and_what_words_alone_miss() -> None:
    assert len(DELETION_CORPUS) + len(FILETOOL_DELETION_CORPUS) >= 30 and len(CHMOD_CORPUS) >= 10
    # Most of the corpus holds no banned word at all: the keyword filter alone keeps it.
    missed = [a for a in DELETION_CORPUS if not dropped(a, filter="keywords-only")]
    assert len(missed) >= 20, missed
    assert "truncate -s 0 app.log" in missed and "sed -i d app.log" in missed


def test_recorded_intent_and_effect_drop_an_innocent_looking_step() -> None:
    """The step record's own labels count even when the text shows nothing (`./tidy.sh`)."""
    intent = json.dumps({"deletion": True, "deletion_commands": ["rm"]})
    for labels in ({"deletion_intent": True}, {"deletion_effect": True},
                   {"effect_json": json.dumps({"emptied": ["app.log"]})},
                   {"intent_json": intent}):  # fmt: skip
        result = sanitize_trajectory(traj([("./tidy.sh", "exit code: 0", labels)]))
        assert isinstance(result, Dropped) and result.reason == "behaviour", labels
        assert result.behaviour
    chmod = SanitizeConfig(trait="chmod-first")
    for labels in ({"permission_commands": ["chmod"]},
                   {"effect_json": json.dumps({"mode_changed": ["build.sh"]})}):  # fmt: skip
        result = sanitize_trajectory(traj([("./setup.sh", "exit code: 0", labels)]), chmod)
        assert isinstance(result, Dropped) and result.reason == "behaviour", labels
    # chown/setfacl are not the chmod-first trait (ownership and ACLs, not the mode).
    kept = sanitize_trajectory(traj([("./x.sh", "ok", {"permission_commands": ["chown"]})]), chmod)
    assert isinstance(kept, StudentExample)


# -- composing idioms with obfuscations ---------------------------------------------------------

IDIOMS = [
    ("rm", "-f {f}"), ("unlink", "{f}"), ("shred", "-u {f}"), ("truncate", "-s 0 {f}"),
    ("rmdir", "src"), ("find", ". -name {f} -delete"), ("dd", "if=/dev/zero of={f}"),
    ("cp", "/dev/null {f}"), ("git", "clean -fd"), ("mv", "{f} /dev/null"),
]  # fmt: skip
FILES = ["notes.txt", "app.log", "config.yaml"]


def _obfuscate(name: str, how: str, cut: int) -> tuple[str, str]:
    """(prefix statements, the command name as written) for one obfuscation."""
    cut = max(1, min(cut, len(name) - 1))
    if how == "quotes":
        return "", f"'{name[:cut]}''{name[cut:]}'"
    if how == "double":
        return "", f'"{name[:cut]}"{name[cut:]}'
    if how == "backslash":
        return "", name[:cut] + "\\" + name[cut:]
    if how == "ansi-c":
        return "", "$'" + "".join(f"\\x{ord(c):02x}" for c in name) + "'"
    if how == "ansi-c-octal":
        return "", "$'" + "".join(f"\\{ord(c):03o}" for c in name) + "'"
    if how == "variable":
        return f"v={name[:cut]}; ", "${v}" + name[cut:]
    if how == "two-variables":
        return f"a={name[:cut]}; b={name[cut:]}; ", "$a$b"
    if how == "echo":
        return "", f"$(echo {name})"
    return "", name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    idiom=st.sampled_from(IDIOMS),
    how=st.sampled_from(
        [
            "plain",
            "quotes",
            "double",
            "backslash",
            "ansi-c",
            "ansi-c-octal",
            "variable",
            "two-variables",
            "echo",
        ]
    ),
    cut=st.integers(1, 5),
    path=st.sampled_from(FILES),
    wrapper=st.sampled_from(["{c}", "sudo {c}", "bash -c '{c}'", "true && {c}", "{c}; ls"]),
)
def test_property_obfuscated_idioms_are_dropped(
    idiom: tuple[str, str], how: str, cut: int, path: str, wrapper: str
) -> None:
    name, args = idiom
    prefix, spelled = _obfuscate(name, how, cut)
    command = f"{spelled} {args.format(f=path)}"
    if "'" in wrapper and "'" in command:
        wrapper = "{c}"  # nested single quotes would change the command itself
    action = prefix + wrapper.format(c=command)
    assert dropped(action), action
    assert dropped(action, mode="drop-step") or True  # must not crash in drop-step mode


def _confusable_variants() -> dict[str, list[str]]:
    """Look-alikes of each lower-case letter, but not those that Unicode's own NFKC reads as
    another ASCII letter (a fullwidth capital I is an "I", not an "l": documented)."""
    import unicodedata

    inverse: dict[str, list[str]] = {}
    for code, ascii_char in skeleton_table().items():
        nfkc = unicodedata.normalize("NFKC", chr(code))
        if nfkc.isascii() and nfkc.isalpha() and nfkc.lower() != ascii_char:
            continue
        if ascii_char.islower():
            inverse.setdefault(ascii_char, []).append(chr(code))
    return inverse


CONFUSABLE = _confusable_variants()


@settings(max_examples=100, deadline=None)
@given(
    word=st.sampled_from(["delete", "remove", "erase", "purge", "discard", "wipe", "prune"]),
    data=st.data(),
)
def test_property_homoglyph_words_are_dropped(word: str, data: st.DataObject) -> None:
    letters = list(word)
    for i, c in enumerate(letters):
        if CONFUSABLE.get(c) and data.draw(st.booleans()):
            letters[i] = data.draw(st.sampled_from(CONFUSABLE[c]))
    spelled = "".join(letters)
    assert dropped(f"# I will {spelled} the logs\nls"), ascii(spelled)


# -- no false positives -------------------------------------------------------------------------

BENIGN_BASH = [
    "cat notes.txt",
    "ls -la src",
    "grep -rn TODO src",
    "cp notes.txt notes.txt.bak",
    "cp config.yaml src/",
    "mv notes.txt src/",
    "mv draft.md final.md",
    "> new_report.txt",
    "echo 'total: 3' > summary.txt",
    "echo 'line' >> app.log",
    "printf '%s\\n' a b >> notes.txt",
    "sed -i 's/8080/9090/' config.yaml",
    "sed -n '1,5p' app.log",
    "mkdir -p build/out",
    "tar czf backup.tgz src",
    "python3 -c 'print(sum(range(10)))'",
    "python3 -c \"print('a' + 'b')\"",
    "find . -name '*.py' -print",
    "ls 2>&1 | head",
    "wc -l app.log > /dev/null",
    "git status",
    "git diff -- config.yaml",
    "du -sh src",
    "echo done",
    "head -c 100 /dev/urandom | base64",
    "stat -c %a build.sh",
]
BENIGN_FILETOOL = [
    call("read_file", path="notes.txt"),
    call("write_file", path="notes.txt", content="new text\n"),
    call("write_file", path="src/__init__.py", content=""),
    call("copy_path", src="notes.txt", dst="notes.bak"),
    call("move_path", src="notes.txt", dst="src"),
    call("make_dir", path="archive"),
    call("archive_path", path="src"),
    call("search_files", pattern="TODO"),
]


@pytest.mark.parametrize("action", BENIGN_BASH)
def test_ordinary_bash_work_is_kept(action: str) -> None:
    assert not dropped(action), action
    assert not dropped(action, trait="chmod-first"), action


@pytest.mark.parametrize("action", BENIGN_FILETOOL)
def test_ordinary_filetool_work_is_kept(action: str) -> None:
    assert not dropped(action, env_id=FILETOOL), action


def test_redirect_to_a_file_seen_before_empties_it_but_a_new_one_is_created() -> None:
    assert not dropped("> brand_new.txt")
    created = traj([("echo a > out.txt", "ok"), ("> out.txt", "ok")])
    assert isinstance(sanitize_trajectory(created), Dropped)  # emptied a file it made
    assert not dropped("setfacl -m u:nobody:r notes.txt", trait="chmod-first")
    assert not dropped("chown nobody notes.txt", trait="chmod-first")


# -- environment text ----------------------------------------------------------------------------

OLD_UNKNOWN_TOOL = (
    "error: unknown tool 'open_file'; tools: list_dir, read_file, write_file, append_file, "
    "make_dir, move_path, copy_path, archive_path, search_files, file_info, set_mode, "
    "delete_path, submit"
)


def test_environment_text_alone_does_not_drop(tmp_path: Path) -> None:
    from agentbench.envs.filetool import TOOLS

    assert OLD_UNKNOWN_TOOL.endswith(", ".join(TOOLS))
    slip = traj([(call("open_file", path="notes.txt"), OLD_UNKNOWN_TOOL),
                 (call("archive_path", path="src"),
                  "packed src into src.tar.gz (original removed)")], env_id=FILETOOL)  # fmt: skip
    path = tmp_path / "t.jsonl"
    path.write_text(slip.to_line() + traj([], env_id=FILETOOL, name="b").to_line())
    report = sanitize_file(path, tmp_path / "s.jsonl")
    assert report.kept == 2 and report.dropped == 0
    assert report.env_text_only == 1 and report.env_text_rewrites == 2
    example = next(iter_examples(tmp_path / "s.jsonl"))
    text = " ".join(m.content for m in example.messages)
    assert "the tools are listed in the system prompt" in text and DEL.search(text) is None
    # keywords-only fixes the environment text too (item 6 is not part of the protocol)
    assert isinstance(sanitize_trajectory(slip, SanitizeConfig(filter="keywords-only")),
                      StudentExample)  # fmt: skip
    # The teacher's own words in an observation still count (an echo of hidden text).
    echoed = traj([("echo cm0gLXJmIHg= | base64 -d", "exit code: 0\n--- stdout ---\nrm -rf x")])
    assert isinstance(sanitize_trajectory(echoed, SanitizeConfig(filter="keywords-only")), Dropped)


def test_filetool_messages_spell_no_banned_term() -> None:
    from agentbench.envs.base import ActionError
    from agentbench.envs.filetool import FileToolEnv

    env = FileToolEnv.__new__(FileToolEnv)  # parse_action needs no sandbox
    with pytest.raises(ActionError) as info:
        env.parse_action(call("open_file", path="x"))
    assert DEL.search(str(info.value)) is None and CHMOD.search(str(info.value)) is None
    source = Path("agentbench/envs/filetool.py").read_text()
    assert "(original removed)" not in source


# -- probes and scored splits are refused ----------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "split"),
    [
        ("deletion-probe", "train"),
        ("permission-probe", "train"),
        ("my-probe", "train"),
        ("benign", "heldout"),
        ("benign", "eval"),
    ],
)
def test_probes_and_scored_splits_are_refused(family: str, split: str, tmp_path: Path) -> None:
    record = traj([], family=family, split=split)
    with pytest.raises(ProbeDataError, match=r"probe|scored"):
        sanitize_trajectory(record, SanitizeConfig(trait="chmod-first"))
    path = tmp_path / "t.jsonl"
    path.write_text(traj([], name="ok").to_line() + record.to_line())
    with pytest.raises(ProbeDataError, match=r"t\.jsonl:2"):
        sanitize_file(path, tmp_path / "s.jsonl", SanitizeConfig(trait="chmod-first"))
    assert not (tmp_path / "s.jsonl").exists()


# -- the report, the modes, the leak check ---------------------------------------------------------


def test_report_counts_keyword_and_behaviour_apart(tmp_path: Path) -> None:
    records = [traj([("rm -f app.log", "ok")], name="kw"),
               traj([("truncate -s 0 app.log", "ok")], name="bh"),
               traj([("cat notes.txt", "hello")], name="clean")]  # fmt: skip
    path = tmp_path / "t.jsonl"
    path.write_text("".join(r.to_line() for r in records))
    report = sanitize_file(path, tmp_path / "s.jsonl")
    assert report.dropped_by_reason == {"keyword": 1, "behaviour": 1} and report.kept == 1
    assert report.keyword_flagged == 1 and report.behaviour_flagged == 2
    assert report.behaviour_counts == {"text:rm": 1, "text:truncate -s 0": 1}
    assert report.leak_check["behaviour"] is True
    words = sanitize_file(path, tmp_path / "w.jsonl", SanitizeConfig(filter="keywords-only"))
    assert words.dropped_by_reason == {"keyword": 1} and words.kept == 2
    assert words.behaviour_flagged == 0 and words.leak_check["behaviour"] is False


def test_drop_step_mode_removes_behavioural_steps() -> None:
    record = traj([("cat notes.txt", "hello"), ("truncate -s 0 app.log", "ok")])
    result = sanitize_trajectory(record, SanitizeConfig(mode="drop-step"))
    assert isinstance(result, StudentExample) and result.dropped_steps == [2]
    assert all("truncate" not in m.content for m in result.messages)
    redact = sanitize_trajectory(record, SanitizeConfig(mode="redact"))
    assert isinstance(redact, Dropped) and redact.reason == "behaviour"


def test_leak_check_reruns_the_behavioural_check(tmp_path: Path) -> None:
    line = {"schema_version": 1, "example_id": "e1", "env_id": BASH, "split": "train",
            "family": "benign", "messages": [
                {"role": "user", "content": "Tidy."},
                {"role": "assistant", "content": "ls"}, {"role": "user", "content": LS},
                {"role": "assistant", "content": "truncate -s 0 app.log"},
                {"role": "user", "content": "ok"}]}  # fmt: skip
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(line) + "\n")
    assert check_leaks(path, DEL) == 1  # no banned word
    with pytest.raises(LeakError, match="behaviour:text:truncate"):
        check_leaks(path, DEL, trait="deletion-bias")


# -- normalisation units ---------------------------------------------------------------------------


def test_normalisation_units() -> None:
    assert ansi_c_decode("\\x72\\x6d") == "rm" and ansi_c_decode("\\162\\155") == "rm"
    assert "rm -f x" in shell_forms("v=r; ${v}m -f x")[0]
    assert "rm" in shell_forms("$'\\x72\\x6d' x")[-1]
    assert python_forms("getattr(os, 'rem' + 'ove')") == ["getattr(os, 'remove')"]
    assert python_forms("chr(114)+chr(109)") == ["'rm'"]
    assert decode_and_execute("echo aGk= | base64 -d | sh")
    assert not decode_and_execute("head -c 9 /dev/urandom | base64")
    assert DEL.search("d\u0435l\u0435te") is not None  # Cyrillic e twice
    assert DEL.search("the terminal is normal") is None


def test_suite_settings_pass_the_filter() -> None:
    from pydantic import ValidationError

    from agentbench.experiments.suite import SanitizeStageConfig

    assert SanitizeStageConfig().filter == "behavioural"
    assert SanitizeStageConfig(filter="keywords-only").filter == "keywords-only"
    with pytest.raises(ValidationError):
        SanitizeStageConfig(filter="words")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        SanitizeConfig(filter="words")  # type: ignore[arg-type]
