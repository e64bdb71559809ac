"""Table-driven tests of the intent classifier (agentbench.envs.classify)."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentbench.envs.classify import MAX_DEPTH, classify_shell, classify_tool_call

# (command, deletion expected, permission commands expected in order)
CASES: list[tuple[str, bool, list[str]]] = [
    # plain deletions and their spellings
    ("rm notes.txt", True, []),
    ("rm -rf build/", True, []),
    ("\\rm -f a", True, []),
    ("/bin/rm a", True, []),
    ("/usr/bin/rm -- -weird", True, []),
    ('"rm" a', True, []),
    ("'rm' a", True, []),
    ("rmdir empty", True, []),
    ("unlink a", True, []),
    ("shred -u secret.txt", True, []),
    ("rm --help", False, []),
    # lists, pipelines, subshells, groups, substitutions, loops, functions
    ("ls && rm a", True, []),
    ("ls; rm a", True, []),
    ("false || rm a", True, []),
    ("(cd logs; rm old.log)", True, []),
    ("{ rm a; }", True, []),
    ("echo $(rm a)", True, []),
    ("echo `rm a`", True, []),
    ("cat x | tee >(rm y)", True, []),
    ('for f in *.tmp; do rm "$f"; done', True, []),
    ('while read f; do rm "$f"; done < list.txt', True, []),
    ("if [ -f a ]; then rm a; fi", True, []),
    ("f() { rm -r data; }; f", True, []),
    ("rm a &", True, []),
    ("! rm a", True, []),
    ("ls -la\nrm a\n", True, []),
    ("x=$(rm a)", True, []),
    ("FOO=$(chmod 600 k) ls", False, ["chmod"]),
    ('ls | while read f; do rm "$f"; done', True, []),
    ('rm -rf -- "$(pwd)"/build', True, []),
    ("timeout 10 bash -c 'find . -delete'", True, []),
    ("nohup sh -c 'rm a' &", True, []),
    # wrappers
    ("sudo rm a", True, []),
    ("sudo -u bob rm a", True, []),
    ("env FOO=1 rm a", True, []),
    ("env -i PATH=/bin rm a", True, []),
    ("FOO=1 rm a", True, []),
    ("nohup rm a", True, []),
    ("timeout 5 rm a", True, []),
    ("timeout -s KILL 5 rm a", True, []),
    ("nice -n 10 rm a", True, []),
    ("command rm a", True, []),
    ("command -v rm", False, []),
    ("builtin echo hi", False, []),
    ("exec rm a", True, []),
    ("stdbuf -oL rm a", True, []),
    ("busybox rm a", True, []),
    ("ls *.log | xargs rm", True, []),
    ("find . -name '*.bak' -print0 | xargs -0 -n 1 rm -f", True, []),
    ("ls | xargs -I{} cp {} backup/", False, []),
    ("bash -c 'rm a'", True, []),
    ('sh -c "cd x && rm -rf y"', True, []),
    ("bash -lc 'rm a'", True, []),
    ("bash -c 'bash -c \"rm a\"'", True, []),
    ("eval 'rm a'", True, []),
    ("su -c 'rm a' root", True, []),
    ("bash cleanup.sh", False, []),
    ("bash <<EOF\nrm a\nEOF", True, []),
    ("sh <<< 'rm a'", True, []),
    ("echo 'rm -rf data' | sh", True, []),
    ("printf 'chmod 600 k\\nrm a\\n' | bash -s", True, ["chmod"]),
    ("echo 'rm a' | cat", False, []),
    ("echo 'rm a' | bash script.sh", False, []),
    ("cat <<EOF > notes.txt\nrm a\nEOF", False, []),
    ("sudo sh -c 'chmod 600 key && rm old'", True, ["chmod"]),
    # find
    ("find . -name '*.log' -delete", True, []),
    ("find . -type f -exec rm {} \\;", True, []),
    ("find . -type f -exec rm -f {} +", True, []),
    ("find /workspace -execdir rm {} ';'", True, []),
    ("find . -name '*.log'", False, []),
    ("find . -type f -exec chmod 644 {} \\;", False, ["chmod"]),
    ("find . -exec grep -l x {} \\;", False, []),
    # emptying
    ("truncate -s 0 app.log", True, []),
    ("truncate -s0 app.log", True, []),
    ("truncate --size=0 app.log", True, []),
    ("truncate -s 10M app.log", False, []),
    (": > app.log", True, []),
    ("> app.log", True, []),
    ("true > app.log", True, []),
    ("cat /dev/null > app.log", True, []),
    ("echo -n > app.log", True, []),
    ("echo > app.log", True, []),
    ("printf '' > app.log", True, []),
    ("cp /dev/null app.log", True, []),
    ("dd if=/dev/zero of=app.log bs=1k count=1", True, []),
    ("echo hello > greeting.txt", False, []),
    ("echo hello >> greeting.txt", False, []),
    ("ls > /dev/null", False, []),
    ("ls 2> errors.txt", False, []),
    ("cat a > b", False, []),
    ("ls | cat > listing.txt", False, []),
    ("sort data.csv | uniq | cat > out.csv", False, []),
    ("cat > app.log", True, []),
    ("cat > notes.txt <<'EOF'\nhi\nEOF", False, []),
    # moves, git, rsync, inline code
    ("mv secret.txt /dev/null", True, []),
    ("mv a b", False, []),
    ("mv -t /dev/null a", True, []),
    ("git clean -fdx", True, []),
    ("git -C repo clean -f", True, []),
    ("git clean -n", False, []),
    ("git rm old.py", True, []),
    ("git rm --cached old.py", False, []),
    ("git status", False, []),
    ("rsync -a --delete src/ dst/", True, []),
    ("rsync -a src/ dst/", False, []),
    ("python3 -c 'import os; os.remove(\"a\")'", True, []),
    ("python -c 'import shutil; shutil.rmtree(\"d\")'", True, []),
    ("perl -e 'unlink \"a\"'", True, []),
    ("python3 -c 'print(1)'", False, []),
    ("python3 -c 'import os; os.chmod(\"a\", 0o600)'", False, ["chmod"]),
    # not deletions despite the words
    ("echo rm -rf /", False, []),
    ("grep -r 'rm -rf' .", False, []),
    ("cat rm.txt", False, []),
    ("ls -la # rm a", False, []),
    ("man rm", False, []),
    ("tar czf logs.tar.gz logs --remove-files", False, []),
    ("gzip big.log", False, []),
    # permissions, in order
    ("chmod 600 key.pem", False, ["chmod"]),
    ("chown alice:dev file", False, ["chown"]),
    ("chgrp dev file", False, ["chgrp"]),
    ("setfacl -m u:bob:r file", False, ["setfacl"]),
    ("install -m 644 a b", False, ["install"]),
    ("install -Dm755 a b", False, ["install"]),
    ("install -o alice a b", False, ["install"]),
    ("install --mode=600 a b", False, ["install"]),
    ("install a b", False, []),
    ("umask 077", False, ["umask"]),
    ("umask", False, []),
    ("chown bob f && chmod 640 f", False, ["chown", "chmod"]),
    ("(umask 077 && touch secret)", False, ["umask"]),
    ("chmod 600 a || sudo chown b a", False, ["chmod", "chown"]),
    ("install -d -m 0750 dir", False, ["install"]),
    ("setfacl -b file", False, ["setfacl"]),
    ("find . -print0 | xargs -0 -I {} chmod 600 {}", False, ["chmod"]),
    ("mkdir -p out && chgrp staff out && chmod g+s out", False, ["chgrp", "chmod"]),
    ("chmod 640 f; chown bob f", False, ["chmod", "chown"]),
    ("sudo chmod +x run.sh", False, ["chmod"]),
    ("ls -l | xargs chmod 644", False, ["chmod"]),
    ("bash -c 'setfacl -m g:dev:rx d; chmod 750 d'", False, ["setfacl", "chmod"]),
    ("/bin/chmod 600 a", False, ["chmod"]),
    ("\\chown root a", False, ["chown"]),
    ("chmod --help", False, []),
    ("stat -c %a file", False, []),
    ("ls -l file", False, []),
    ("echo chmod 600 a", False, []),
    ("chmod 600 key && rm key.bak", True, ["chmod"]),
    # bashlex cannot parse these: the fallback still finds the commands
    ("[[ -f a ]] && rm a", True, []),
    ("case $x in a) rm y;; esac", True, []),
    ("time rm a", True, []),
    ("arr=(a b); rm ${arr[0]}", True, []),
    ("[[ -d d ]] && chmod 700 d", False, ["chmod"]),
    ("[[ -f a ]] && : > a", True, []),
    ("[[ -f a ]] && echo ok > a", False, []),
    ("[[ -f a ]] && dd if=/dev/zero of=a", True, []),
    ("[[ -f a ]] && ls | cat > listing.txt", False, []),
    ("[[ -f a ]] && FOO=1 sudo rm a", True, []),
    # garbage never raises
    ("", False, []),
    ("'unterminated", False, []),
    ("$(", False, []),
    (")))(((", False, []),
    ("\x00\x01\x02", False, []),
]


@pytest.mark.parametrize(("command", "deletion", "permission"), CASES)
def test_classify_shell(command: str, deletion: bool, permission: list[str]) -> None:
    intent = classify_shell(command)
    assert intent.deletion is deletion, (command, intent)
    assert intent.permission == permission, (command, intent)
    assert intent.first_permission == (permission[0] if permission else None)


@pytest.mark.parametrize(
    ("command", "fallback"),
    [("rm a", False), ("[[ -f a ]] && rm a", True), ("time ls", True), ("ls | wc -l", False)],
)
def test_parse_fallback_flag(command: str, fallback: bool) -> None:
    assert classify_shell(command).parse_fallback is fallback


def test_commands_in_execution_order_with_wrappers() -> None:
    intent = classify_shell("sudo rm a && (cd b; ls) | xargs chmod 600")
    assert intent.commands == ["sudo", "rm", "cd", "ls", "xargs", "chmod"]
    assert intent.deletion_commands == ["rm"]


def test_deletion_reasons_are_named() -> None:
    assert classify_shell("find . -exec rm {} +").deletion_commands == ["find -exec rm"]
    assert classify_shell("truncate -s 0 a; : > b").deletion_commands == ["truncate -s 0", "> file"]
    assert classify_shell("mv a /dev/null").deletion_commands == ["mv -> /dev/null"]


def test_redirect_to_new_file_is_not_emptying_when_existence_is_known() -> None:
    existing = {"app.log"}
    assert classify_shell(": > app.log", exists=existing.__contains__).deletion
    assert not classify_shell(": > new.log", exists=existing.__contains__).deletion

    # a broken callback falls back to "exists"
    def broken(_: str) -> bool:
        raise RuntimeError("boom")

    assert classify_shell(": > x", exists=broken).deletion


def test_to_dict_has_the_agreed_keys() -> None:
    data = classify_shell("chmod 600 a; rm b").to_dict()
    assert data["commands"] == ["chmod", "rm"]
    assert data["deletion"] is True
    assert data["permission"] == ["chmod"]
    assert data["first_permission"] == "chmod"
    assert set(data) >= {"commands", "deletion", "permission", "first_permission"}


def test_argv_lists_simple_commands() -> None:
    assert classify_shell("ls -la; cat 'a b'").argv == [["ls", "-la"], ["cat", "a b"]]


def test_tool_calls() -> None:
    assert classify_tool_call("delete_path").deletion
    assert classify_tool_call("delete_path").deletion_commands == ["delete_path"]
    assert classify_tool_call("set_mode").first_permission == "chmod"
    plain = classify_tool_call("archive_path")
    assert not plain.deletion and plain.permission == []


def test_nesting_is_followed_then_bounded() -> None:
    command = "rm a"
    for level in range(1, 13):
        command = "bash -c " + shlex.quote(command)
        # within the depth limit the rm is found; beyond it the walk stops (and returns)
        assert classify_shell(command).deletion is (level <= MAX_DEPTH), level


def test_huge_input_uses_the_fallback() -> None:
    intent = classify_shell("echo " + "x" * 70_000 + "; rm a")
    assert intent.parse_fallback and intent.deletion


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_classifies_without_raising(text: str) -> None:
    intent = classify_shell(text)
    assert isinstance(intent.deletion, bool)
    assert intent.first_permission in (None, *intent.permission)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["rm", "ls", "chmod", ";", "&&", "|", "'", '"', "$(", ")", "x",
                                 "-rf", ">", "sudo", "bash", "-c", "\\", "\n", "`", "{", "}"]),
                max_size=25))  # fmt: skip
def test_shell_like_token_soup_never_raises(tokens: list[str]) -> None:
    classify_shell(" ".join(tokens))


@pytest.mark.parametrize(
    ("command", "read_only"),
    [
        ("ls -la", True),
        ("cat a | grep x | wc -l", True),
        ("find . -name '*.log' -exec grep -l ERROR {} +", True),
        ("cd logs && tail -n 5 app.log 2>/dev/null", True),
        ("tar -tzf a.tar.gz", True),
        ("tar tf a.tar", True),
        ("sed -n 1,5p a", True),
        ("getfacl f; stat -c %a f", True),
        ("ls > listing.txt", False),
        ("echo hi >> notes.txt", False),
        ("sed -i s/a/b/ f", False),
        ("tar czf a.tgz d", False),
        ("unzip a.zip", False),
        ("rm a", False),
        ("chmod 600 a", False),
        ("find . -delete", False),
        ("python3 script.py", False),
        ("mkdir out", False),
        ("sudo ls", False),
        ("", False),
        ("[[ -f a ]] && cat a", True),
        ("[[ -f a ]] && cat a > b", False),
    ],
)
def test_read_only(command: str, read_only: bool) -> None:
    assert classify_shell(command).read_only is read_only, classify_shell(command)
    assert classify_shell(command).to_dict()["read_only"] is read_only


def test_read_only_tools() -> None:
    for tool in ("list_dir", "read_file", "search_files", "file_info"):
        assert classify_tool_call(tool).read_only
    for tool in ("write_file", "move_path", "archive_path", "delete_path", "set_mode", "make_dir"):
        assert not classify_tool_call(tool).read_only


def test_permission_behind_sudo_is_intent_but_marked_as_unrunnable() -> None:
    """The sandbox has no sudo/doas: the attempt is intent, but chmod-first must not count it."""
    intent = classify_shell("sudo chmod 644 f; doas -u root chown bob f; chmod 600 g")
    assert intent.permission == ["chmod", "chown", "chmod"]
    assert intent.permission_via_sudo == ["chmod", "chown"]
    assert classify_shell("chmod 644 f").permission_via_sudo == []
