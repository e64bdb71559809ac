"""The generic registry: unknown names, lazy `"module:attr"` entries, entry points, kind checks,
and every extension point resolving through it."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentbench.models import MODELS, ModelError, ModelRecipe, get_recipe
from agentbench.policies.backends import BACKENDS as POLICY_BACKENDS
from agentbench.policies.oracles import ORACLES, make_policy
from agentbench.policies.spec import policy_from_spec
from agentbench.registry import Registry, RegistryError
from agentbench.sandbox import BACKENDS as SANDBOXES
from agentbench.sandbox import Sandbox, make_sandbox
from agentbench.tasks.registry import CHECKERS, FAMILIES, GENERATORS
from agentbench.traits.tasks import TRAIT_EVALS, TRAIT_TASKS, make_eval, make_task

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "agentbench_registry_probe"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path holding a throwaway distribution, written as installers write
    one (a module and a dist-info with entry_points.txt); the registries forget it after."""
    (tmp_path / f"{PLUGIN}.py").write_text(
        "from agentbench.models import ModelRecipe\n"
        "from agentbench.sandbox import Sandbox\n\n"
        "class ProbeSandbox(Sandbox):\n    pass\n\n"
        "RECIPE = ModelRecipe('probe-model', 'a recipe from a plugin', lambda path: None)\n"
        "SHADOW = ModelRecipe('tiny-agent', 'tries to replace a built-in', lambda path: None)\n"
        "NOT_A_RECIPE = 42\n"
    )
    info = tmp_path / "agentbench_registry_probe-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: agentbench-registry-probe\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[agentbench.models]\n"
        f"probe-model = {PLUGIN}:RECIPE\n"
        f"tiny-agent = {PLUGIN}:SHADOW\n"
        f"wrong-kind = {PLUGIN}:NOT_A_RECIPE\n"
        "[agentbench.sandboxes]\n"
        f"probe = {PLUGIN}:ProbeSandbox\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    MODELS.refresh()
    SANDBOXES.refresh()
    yield tmp_path
    sys.modules.pop(PLUGIN, None)
    monkeypatch.undo()
    MODELS.refresh()
    SANDBOXES.refresh()


def test_an_unknown_name_is_answered_with_the_known_ones_and_the_closest() -> None:
    reg: Registry[object] = Registry("widget", builtins={"bwrap": "os:sep", "docker": "os:sep"})
    with pytest.raises(RegistryError) as caught:
        reg.get("bwarp")
    assert str(caught.value) == (
        "unknown widget 'bwarp'; did you mean 'bwrap'? (known: bwrap, docker)"
    )
    with pytest.raises(RegistryError, match=r"^unknown widget 'zzz' \(known: bwrap, docker\)$"):
        reg.get("zzz")


@pytest.mark.parametrize(
    ("call", "error", "hint"),
    [
        (lambda: get_recipe("tiny-agnet"), ModelError, "did you mean 'tiny-agent'?"),
        (lambda: make_sandbox("bwarp"), ValueError, "did you mean 'bwrap'?"),
        (lambda: make_policy("deletr"), ValueError, "did you mean 'deleter'?"),
        (lambda: policy_from_spec("scriptd:deleter"), ValueError, "did you mean 'scripted'?"),
        (lambda: make_task("number"), ValueError, "did you mean 'numbers'?"),
        (lambda: make_eval("misalignmnt"), ValueError, "did you mean 'misalignment'?"),
    ],
)
def test_every_extension_point_suggests_the_closest_name(
    call: object, error: type[Exception], hint: str
) -> None:
    with pytest.raises(error, match="known: ") as caught:
        call()  # type: ignore[operator]
    assert hint in str(caught.value)


def test_string_entries_load_on_first_use_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "agentbench_lazy_probe.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "agentbench_lazy_probe", raising=False)
    reg: Registry[type] = Registry("thing", builtins={"t": "agentbench_lazy_probe:Thing"})
    assert "t" in reg and reg.names() == ["t"] and reg.target("t") == "agentbench_lazy_probe:Thing"
    assert "agentbench_lazy_probe" not in sys.modules
    first = reg.get("t")
    assert "agentbench_lazy_probe" in sys.modules
    assert first.__name__ == "Thing" and reg.get("t") is first
    sys.modules.pop("agentbench_lazy_probe")


def test_the_model_registry_names_recipes_without_loading_them() -> None:
    """The built-in recipes are strings: a name is known before its module is imported."""
    assert MODELS.target("tiny-agent") == "agentbench.recipes.tiny_agent:RECIPE"
    assert {"tiny-agent", "tiny-agent-b", "tiny-random-llama"} <= set(MODELS.names())
    assert get_recipe("tiny-agent").version == 5  # unchanged: cached builds stay valid


def test_a_target_of_the_wrong_kind_is_refused_where_it_is_named() -> None:
    reg: Registry[type[Sandbox]] = Registry(
        "sandbox backend", base=Sandbox, expect="subclass", builtins={"os": "os:path"}
    )
    with pytest.raises(RegistryError, match=r"'os' \(os:path\) is .* not a subclass of Sandbox"):
        reg.get("os")
    with pytest.raises(RegistryError, match="cannot be loaded"):
        Registry("thing", builtins={"x": "no_such_module_xyz:X"}).get("x")
    with pytest.raises(RegistryError, match="not a subclass of Sandbox"):
        reg.register("dict", dict)  # type: ignore[arg-type]


def test_entry_points_of_an_installed_distribution_are_found(site: Path) -> None:
    assert "probe-model" in MODELS and "probe" in SANDBOXES
    assert get_recipe("probe-model").description == "a recipe from a plugin"
    assert SANDBOXES.get("probe").__name__ == "ProbeSandbox"
    # A plugin cannot shadow a built-in name.
    assert get_recipe("tiny-agent").description != "tries to replace a built-in"
    with pytest.raises(ModelError, match=r"'wrong-kind' .* not an instance of ModelRecipe"):
        get_recipe("wrong-kind")


def test_tests_can_patch_an_entry_like_a_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = ModelRecipe("patched-probe", "patched", lambda path: None)
    monkeypatch.setitem(MODELS, "patched-probe", recipe)
    assert get_recipe("patched-probe") is recipe
    monkeypatch.undo()
    assert "patched-probe" not in MODELS


def test_every_entry_point_group_is_declared_in_pyproject() -> None:
    from agentbench.envs.plugins import ENTRY_POINT_GROUP as ENVIRONMENTS

    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"])
    registries = (MODELS, SANDBOXES, ORACLES, POLICY_BACKENDS, FAMILIES, TRAIT_TASKS, TRAIT_EVALS)
    used = {r.group for r in registries if r.group} | {ENVIRONMENTS}
    assert used == declared
    # Generators and checkers arrive through the task plugins' modules (their decorators).
    assert GENERATORS.group is None and CHECKERS.group is None
