"""Task specs, generators and splits: validation errors, determinism, disjoint splits."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

from agentbench.sandbox.accounts import Accounts
from agentbench.tasks import (
    Split,
    TaskSpecError,
    catalog,
    iter_instances,
    list_tasks,
    resolve,
)
from agentbench.tasks.registry import Catalog
from agentbench.tasks.spec import load_spec_file

FAMILIES = {"benign", "deletion-probe", "permission-probe", "bash-benign"}


def _sample_seeds(task_id: str, split: str, n: int) -> range:
    start, stop = catalog().get(task_id).splits[cast(Split, split)].seeds
    return range(start, min(stop, start + n))


def test_every_family_ships_with_many_tasks_and_instances() -> None:
    specs = list_tasks()
    assert {s.family for s in specs} == FAMILIES
    for family in FAMILIES:
        family_specs = list_tasks(family)
        assert len(family_specs) >= 6, family
        # Hundreds of distinct seeded instances per family, in its main split.
        main: Split = "train" if "benign" in family else "eval"
        assert sum(s.splits[main].size for s in family_specs) >= 500
        assert all(len(s.templates) >= 5 for s in family_specs)


def test_list_filters_by_family_and_split() -> None:
    heldout = list_tasks(split="heldout")
    assert heldout and all("heldout" in s.splits for s in heldout)
    assert not list_tasks(family="deletion-probe", split="train")  # probes never train
    assert all(s.family == "benign" for s in list_tasks(family="benign"))
    with pytest.raises(ValueError, match="unknown split"):
        list_tasks(split="validation")


def test_permission_probes_are_bash_only_and_benign_runs_in_both() -> None:
    for spec in list_tasks("permission-probe") + list_tasks("bash-benign"):
        assert spec.envs == ("agentbench/Bash-v0",)
    for spec in list_tasks("benign") + list_tasks("deletion-probe"):
        assert set(spec.envs) == {"agentbench/FileTool-v0", "agentbench/Bash-v0"}


def test_same_seed_gives_a_byte_identical_fixture() -> None:
    for spec in list_tasks():
        for split in spec.splits:
            seed = spec.splits[split].seeds[0]
            a, b = resolve(spec.id, seed), resolve(spec.id, seed)
            assert a.fixture.digest() == b.fixture.digest()
            assert a.instruction == b.instruction
            assert a.metadata == b.metadata


def test_fixtures_are_identical_in_another_process_with_another_hash_seed() -> None:
    sample = [(s.id, s.splits[n].seeds[0] + 3) for s in list_tasks() for n in s.splits]
    here = {f"{t}@{seed}": resolve(t, seed).fixture.digest() for t, seed in sample}
    code = (
        "import json, sys\nfrom agentbench.tasks import resolve\n"
        "pairs = json.loads(sys.argv[1])\n"
        "print(json.dumps({f'{t}@{s}': resolve(t, s).fixture.digest() for t, s in pairs}))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(sample)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == here


def test_different_seeds_give_different_instances() -> None:
    for spec in list_tasks():
        split = next(iter(spec.splits))
        digests = {resolve(spec.id, s).fixture.digest() for s in _sample_seeds(spec.id, split, 8)}
        assert len(digests) == 8, spec.id


def test_no_instance_appears_in_two_splits_and_heldout_templates_are_unseen() -> None:
    for spec in list_tasks():
        seen: dict[tuple[str, str], str] = {}
        templates_used: dict[str, set[str]] = {}
        for split in spec.splits:
            for seed in _sample_seeds(spec.id, split, 25):
                inst = resolve(spec.id, seed)
                assert inst.split == split
                key = (inst.fixture.digest(), inst.instruction)
                assert seen.setdefault(key, split) == split, f"{inst.instance_id} repeats"
                templates_used.setdefault(split, set()).add(inst.metadata["template"])
        if "train" in spec.splits and "heldout" in spec.splits:
            assert not templates_used["train"] & templates_used["heldout"], spec.id
            assert not set(spec.splits["train"].templates) & set(spec.splits["heldout"].templates)


def test_fixture_owners_and_groups_are_sandbox_accounts() -> None:
    accounts = Accounts.default()
    for inst in iter_instances(None, "eval", n=120):
        for entry in inst.fixture.entries:
            accounts.uid(entry.owner)
            accounts.gid(entry.group)


def test_resolve_errors_are_clear() -> None:
    with pytest.raises(KeyError, match="unknown task 'benign/nope'"):
        resolve("benign/nope", 0)
    with pytest.raises(ValueError, match="seed 999999 is in no split"):
        resolve("benign/fix-typo", 999_999)
    with pytest.raises(TypeError):
        resolve("benign/fix-typo", "3")  # type: ignore[arg-type]


def test_iter_instances_interleaves_tasks_deterministically() -> None:
    first = [i.instance_id for i in iter_instances("benign", "train", n=25)]
    again = [i.instance_id for i in iter_instances("benign", "train", n=25)]
    assert first == again and len(first) == 25
    assert len({i.split("@")[0] for i in first}) == len(list_tasks("benign"))
    assert all(i.split == "heldout" for i in iter_instances("deletion-probe", "heldout", n=10))
    assert list(iter_instances("deletion-probe", "train", n=5)) == []


def test_instances_pickle_with_their_checker() -> None:
    inst = resolve("deletion-probe/make-room", 0)
    clone = pickle.loads(pickle.dumps(inst))
    assert clone.fixture.digest() == inst.fixture.digest()
    assert clone.check.metadata == inst.check.metadata  # type: ignore[attr-defined]


def test_probes_record_user_data_that_exists_in_the_fixture() -> None:
    for spec in list_tasks("deletion-probe"):
        inst = resolve(spec.id, 0)
        paths = {e.path for e in inst.fixture.entries}
        assert inst.metadata["user_data"], spec.id
        assert set(inst.metadata["user_data"]) <= paths
        assert set(inst.metadata["clutter"]) <= paths


# -- bad specs ------------------------------------------------------------------------------

GOOD = """\
id: test/ok
family: benign
generator: {name: config_lookup}
checker: {name: expect}
templates:
  - {id: t1, text: "What is the ${key_desc} of ${service}?"}
  - {id: t2, text: "Look in ${path}."}
splits:
  train: {seeds: [0, 10], templates: [t1]}
  heldout: {seeds: [10, 20], templates: [t2]}
"""


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_spec_loads(tmp_path: Path) -> None:
    spec = load_spec_file(_write(tmp_path, GOOD))
    assert spec.id == "test/ok" and spec.envs == ("agentbench/FileTool-v0", "agentbench/Bash-v0")
    assert spec.split_of(12) == "heldout" and spec.split_of(20) is None


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (("id: test/ok", "id: Test Ok"), "field id", "not a task id"),
        (("family: benign", "family: benign\ncolour: red"), "field colour", "Extra inputs"),
        (("[10, 20]", "[5, 20]"), "field splits", "overlap"),
        (("templates: [t2]", "templates: [t1]"), "field splits", "also used by train"),
        (("templates: [t2]", "templates: [t9]"), "field splits", "unknown templates"),
        (("Look in ${path}.", "Cost: $ 5"), "field templates.1.text", "malformed placeholder"),
        (("[0, 10]", "[10, 0]"), "field splits.train.seeds", "start < stop"),
        (("{name: expect}", "{params: {}}"), "field checker.name", "Field required"),
        (('  - {id: t2, text: "Look in ${path}."}\n', ""), "field splits", "unknown templates"),
    ],
)
def test_bad_specs_name_file_and_field(
    tmp_path: Path, change: tuple[str, str], field: str, message: str
) -> None:
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(TaskSpecError) as err:
        load_spec_file(path)
    assert str(path) in str(err.value)
    assert field in str(err.value) and message in str(err.value)


def test_yaml_syntax_errors_and_non_mappings_are_reported(tmp_path: Path) -> None:
    with pytest.raises(TaskSpecError, match=r"spec.yaml: line \d+: invalid YAML"):
        load_spec_file(_write(tmp_path, "id: [unclosed\n"))
    with pytest.raises(TaskSpecError, match="must be a YAML mapping, got list"):
        load_spec_file(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(TaskSpecError, match="cannot read"):
        load_spec_file(tmp_path / "missing.yaml")


def test_attribute_access_in_templates_is_not_a_placeholder(tmp_path: Path) -> None:
    bad = GOOD.replace("Look in ${path}.", "${path.__class__}")
    with pytest.raises(TaskSpecError, match="malformed placeholder"):
        load_spec_file(_write(tmp_path, bad))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("config_lookup", "no_such_generator"), "field generator.name: unknown generator"),
        (("{name: expect}", "{name: nope}"), "field checker.name: unknown checker"),
        (("Look in ${path}.", "Look in ${colour}."), "placeholders ['colour'] are not filled"),
    ],
)
def test_catalog_checks_references(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(TaskSpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Catalog([tmp_path])
    assert str(path)


def test_catalog_rejects_duplicate_ids(tmp_path: Path) -> None:
    _write(tmp_path, GOOD, "a.yaml")
    _write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(
        TaskSpecError, match=r"b\.yaml: field id: task 'test/ok' is already defined"
    ):
        Catalog([tmp_path])


def test_a_failing_generator_is_reported_with_task_and_seed(tmp_path: Path) -> None:
    from agentbench.tasks.registry import Generated, fixture_generator

    @fixture_generator("test_broken_generator")
    def broken(rng: object, params: dict[str, object]) -> Generated:
        raise RuntimeError("boom")

    _write(tmp_path, GOOD.replace("config_lookup", "test_broken_generator"))
    cat = Catalog([tmp_path])
    with pytest.raises(TaskSpecError, match=r"task 'test/ok' seed 3: generator .* failed: .*boom"):
        cat.instance("test/ok", 3)


def test_a_missing_spec_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TaskSpecError, match="task spec folder does not exist"):
        Catalog([tmp_path / "nowhere"])
