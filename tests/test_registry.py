"""The plugin registry: guarded loading, duplicates, unknown names, contract checks.

Entry points are faked: real ``importlib.metadata.EntryPoint`` objects whose
``value`` points at modules written into ``tmp_path``, each given a fake
distribution, handed to ``Registry(entry_points=...)``.
"""

from __future__ import annotations

import importlib.metadata as md
import itertools
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from tl_toolkit import Backbone, PluginError, Strategy
from tl_toolkit._cli import main
from tl_toolkit._plugin_api import check_plugin
from tl_toolkit._registry import GROUPS, PluginInfo, Registry

_counter = itertools.count()

GOOD_PLUGINS = '''
from tl_toolkit import Backbone, Strategy


class GoodBackbone(Backbone):
    """A backbone that satisfies the contract."""

    def build(self, task, source=None):
        return None

    def preprocess(self, dataset, train):
        return dataset

    def collate(self, examples):
        return {}

    def forward(self, model, batch):
        return None

    def head_names(self, model):
        return ["head"]

    def lora_targets(self, model):
        return ["query"]

    def save(self, model, directory, task):
        pass

    def load(self, directory):
        return None


class GoodStrategy(Strategy):
    """A strategy that trains everything."""

    def apply(self, model, backbone):
        return model
'''

BAD_PLUGINS = '''
from tl_toolkit import Backbone, Strategy


def not_a_class(model, backbone):
    return model


class NotASubclass:
    """Has the right method but does not derive from Strategy."""

    def apply(self, model, backbone):
        return model


class HalfBackbone(Backbone):
    """Implements build only."""

    def build(self, task, source=None):
        return None


class RenamedArgs(Strategy):
    """apply's parameters are renamed: the engine's keyword calls would fail."""

    def apply(self, net, bb):
        return net


class ExtraRequiredArg(Strategy):
    """apply needs a third argument the engine never passes."""

    def apply(self, model, backbone, scale):
        return model


class FutureApi(Strategy):
    """Asks for a plugin API this tl_toolkit does not provide."""

    plugin_api = 99

    def apply(self, model, backbone):
        return model
'''


@dataclass
class FakeEnv:
    """Writes plugin modules and builds entry points with fake distributions."""

    root: Path

    def module(self, source: str) -> str:
        """Write ``source`` as a fresh, uniquely named module; return its name."""
        name = f"tl_fake_plugins_{next(_counter)}"
        (self.root / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        return name

    @staticmethod
    def entry_point(
        kind: str, name: str, value: str, dist: str = "acme-plugins", version: str = "1.2.3"
    ) -> md.EntryPoint:
        ep = md.EntryPoint(name=name, value=value, group=GROUPS[kind])
        # EntryPoint is immutable; importlib.metadata attaches `dist` the same way (EntryPoint._for).
        vars(ep).update(dist=SimpleNamespace(metadata={"Name": dist}, version=version))
        return ep

    @staticmethod
    def registry(*eps: md.EntryPoint) -> Registry:
        def entry_points(group: str) -> list[md.EntryPoint]:
            return [ep for ep in eps if ep.group == group]

        return Registry(entry_points=entry_points)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEnv]:
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    try:
        yield FakeEnv(tmp_path)
    finally:
        for name in set(sys.modules) - before:
            if name.startswith("tl_fake_plugins_"):
                del sys.modules[name]


@pytest.fixture
def good(env: FakeEnv) -> str:
    return env.module(GOOD_PLUGINS)


@pytest.fixture
def bad(env: FakeEnv) -> str:
    return env.module(BAD_PLUGINS)


# -- guarded loading ---------------------------------------------------------


def test_good_plugins_load_and_get_their_names(env: FakeEnv, good: str) -> None:
    reg = env.registry(
        env.entry_point("backbone", "goodbb", f"{good}:GoodBackbone"),
        env.entry_point("strategy", "goodst", f"{good}:GoodStrategy"),
    )
    backbone = reg.get("backbone", "goodbb")
    strategy = reg.get("strategy", "goodst")
    assert issubclass(backbone, Backbone)
    assert issubclass(strategy, Strategy)
    assert backbone.plugin_name == "goodbb"
    assert strategy.plugin_name == "goodst"
    assert reg.names("backbone") == ["goodbb"]
    assert reg.names("strategy") == ["goodst"]
    [info] = reg.all("strategy")
    assert (info.dist, info.version, info.error) == ("acme-plugins", "1.2.3", None)
    assert info.description == "A strategy that trains everything."


def test_broken_plugin_is_recorded_and_the_others_keep_working(env: FakeEnv, good: str) -> None:
    broken = env.module('raise RuntimeError("boom: needs a GPU driver")\n')
    reg = env.registry(
        env.entry_point("strategy", "broken", f"{broken}:Anything", dist="broken-dist", version="0.0.1"),
        env.entry_point("strategy", "goodst", f"{good}:GoodStrategy"),
        env.entry_point("backbone", "goodbb", f"{good}:GoodBackbone"),
    )
    infos = {i.name: i for i in reg.all()}  # loading every plugin must not raise
    assert set(infos) == {"broken", "goodst", "goodbb"}

    failed = infos["broken"]
    assert failed.dist == "broken-dist"
    assert failed.version == "0.0.1"
    assert failed.error is not None
    assert 'Error importing plugin "broken"' in failed.error
    assert "RuntimeError" in failed.error and "boom: needs a GPU driver" in failed.error
    assert failed.traceback is not None and "boom: needs a GPU driver" in failed.traceback
    assert failed.obj is None

    assert infos["goodst"].error is None and infos["goodbb"].error is None
    assert issubclass(reg.get("strategy", "goodst"), Strategy)
    assert issubclass(reg.get("backbone", "goodbb"), Backbone)

    with pytest.raises(PluginError) as excinfo:
        reg.get("strategy", "broken")
    message = str(excinfo.value)
    assert "boom: needs a GPU driver" in message
    assert "broken-dist 0.0.1" in message


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        ("tl_fake_plugins_does_not_exist:Thing", "ModuleNotFoundError"),
        ("{good}:NoSuchAttribute", "AttributeError"),
    ],
)
def test_unimportable_entry_point_is_recorded(env: FakeEnv, good: str, value: str, error_type: str) -> None:
    reg = env.registry(
        env.entry_point("backbone", "ghost", value.format(good=good), dist="ghost-dist", version="3.0"),
        env.entry_point("backbone", "goodbb", f"{good}:GoodBackbone"),
    )
    infos = {i.name: i for i in reg.all("backbone")}
    assert infos["ghost"].error is not None and error_type in infos["ghost"].error
    assert infos["ghost"].provider == "ghost-dist 3.0"
    assert infos["goodbb"].error is None
    with pytest.raises(PluginError, match=re.escape("ghost-dist 3.0")):
        reg.get("backbone", "ghost")


def test_plugin_is_loaded_lazily(env: FakeEnv) -> None:
    broken = env.module('raise RuntimeError("imported too early")\n')
    reg = env.registry(env.entry_point("strategy", "late", f"{broken}:X"))
    assert reg.names("strategy") == ["late"]
    [info] = reg.all("strategy", load=False)
    assert (info.loaded, info.error) == (False, None)
    assert broken not in sys.modules


def test_tl_list_shows_a_failed_plugin_with_its_distribution(
    env: FakeEnv, good: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tl_toolkit._registry as registry_module

    broken = env.module('raise ImportError("libfoo.so not found")\n')
    reg = env.registry(
        env.entry_point("strategy", "broken", f"{broken}:X", dist="broken-dist", version="0.0.1"),
        env.entry_point("strategy", "goodst", f"{good}:GoodStrategy"),
    )
    monkeypatch.setattr(registry_module, "registry", reg)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    good_line = next(line for line in out.splitlines() if "goodst" in line)
    assert "acme-plugins 1.2.3" in good_line
    failed_section = out.split("failed plugins:", 1)[1]
    assert "broken" in failed_section
    assert "broken-dist 0.0.1" in failed_section
    assert "libfoo.so not found" in failed_section


# -- duplicates --------------------------------------------------------------


def test_name_registered_by_two_distributions_is_an_error_naming_both(env: FakeEnv, good: str) -> None:
    other = env.module(GOOD_PLUGINS)
    reg = env.registry(
        env.entry_point("strategy", "dup", f"{good}:GoodStrategy", dist="acme-a", version="1.0"),
        env.entry_point("strategy", "dup", f"{other}:GoodStrategy", dist="acme-b", version="2.0"),
        env.entry_point("strategy", "goodst", f"{good}:GoodStrategy"),
    )
    with pytest.raises(PluginError) as excinfo:
        reg.get("strategy", "dup")
    message = str(excinfo.value)
    assert "registered twice" in message
    assert "acme-a 1.0" in message and "acme-b 2.0" in message
    assert f"{good}:GoodStrategy" in message and f"{other}:GoodStrategy" in message

    [dup] = [i for i in reg.all("strategy") if i.name == "dup"]
    assert dup.error is not None and "acme-a" in dup.error and "acme-b" in dup.error
    assert issubclass(reg.get("strategy", "goodst"), Strategy)  # the others still work


def test_same_distribution_seen_twice_is_not_a_duplicate(env: FakeEnv, good: str) -> None:
    ep = env.entry_point("strategy", "goodst", f"{good}:GoodStrategy")
    twin = env.entry_point("strategy", "goodst", f"{good}:GoodStrategy")
    reg = env.registry(ep, twin)
    assert issubclass(reg.get("strategy", "goodst"), Strategy)


def test_same_name_in_different_groups_is_not_a_duplicate(env: FakeEnv, good: str) -> None:
    reg = env.registry(
        env.entry_point("backbone", "same", f"{good}:GoodBackbone"),
        env.entry_point("strategy", "same", f"{good}:GoodStrategy"),
    )
    assert issubclass(reg.get("backbone", "same"), Backbone)
    assert issubclass(reg.get("strategy", "same"), Strategy)


# -- unknown names -----------------------------------------------------------


def test_unknown_name_lists_registered_names_and_suggests_the_nearest(env: FakeEnv, good: str) -> None:
    reg = env.registry(
        env.entry_point("strategy", "lora", f"{good}:GoodStrategy"),
        env.entry_point("strategy", "full", f"{good}:GoodStrategy"),
        env.entry_point("strategy", "head-only", f"{good}:GoodStrategy"),
    )
    with pytest.raises(PluginError) as excinfo:
        reg.get("strategy", "lroa")
    message = str(excinfo.value)
    assert "Unknown strategy plugin 'lroa'" in message
    assert "Did you mean 'lora'?" in message
    assert "full, head-only, lora" in message
    assert GROUPS["strategy"] in message


def test_unknown_name_without_a_near_match_suggests_nothing(env: FakeEnv, good: str) -> None:
    reg = env.registry(env.entry_point("backbone", "bert", f"{good}:GoodBackbone"))
    with pytest.raises(PluginError) as excinfo:
        reg.get("backbone", "zzzzzz")
    assert "Did you mean" not in str(excinfo.value)
    assert "Registered backbone plugins: bert" in str(excinfo.value)


def test_unknown_name_in_an_empty_group(env: FakeEnv) -> None:
    reg = env.registry()
    with pytest.raises(PluginError, match="Registered strategy plugins: none"):
        reg.get("strategy", "lora")


# -- the plugin contract -----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "attr", "expected"),
    [
        ("strategy", "not_a_class", "expected a subclass of tl_toolkit.Strategy"),
        ("strategy", "NotASubclass", "expected a subclass of tl_toolkit.Strategy"),
        ("backbone", "GoodStrategy", "expected a subclass of tl_toolkit.Backbone"),
        ("backbone", "HalfBackbone", "HalfBackbone does not implement collate, forward, head_names"),
        ("strategy", "RenamedArgs", "RenamedArgs.apply(self, net, bb) does not match the contract"),
        (
            "strategy",
            "ExtraRequiredArg",
            "ExtraRequiredArg.apply(self, model, backbone, scale) does not match",
        ),
        ("strategy", "FutureApi", "supports plugin API 99"),
    ],
)
def test_contract_violations_are_reported(
    env: FakeEnv, good: str, bad: str, kind: str, attr: str, expected: str
) -> None:
    module = good if attr == "GoodStrategy" else bad
    reg = env.registry(
        env.entry_point(kind, "offender", f"{module}:{attr}", dist="sloppy-dist", version="0.9"),
        env.entry_point("backbone", "goodbb", f"{good}:GoodBackbone"),
        env.entry_point("strategy", "goodst", f"{good}:GoodStrategy"),
    )
    [info] = [i for i in reg.all(kind) if i.name == "offender"]
    assert info.error is not None
    assert f"{kind} 'offender' does not satisfy the plugin contract" in info.error
    assert expected in info.error

    with pytest.raises(PluginError) as excinfo:
        reg.get(kind, "offender")
    assert expected in str(excinfo.value)
    assert "sloppy-dist 0.9" in str(excinfo.value)

    assert issubclass(reg.get("backbone", "goodbb"), Backbone)
    assert issubclass(reg.get("strategy", "goodst"), Strategy)


def test_signature_with_defaults_or_var_args_is_accepted() -> None:
    class Flexible(Strategy):
        def apply(self, model, backbone, scale=1.0):  # type: ignore[no-untyped-def]
            return model

    class Catchall(Strategy):
        def apply(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return args[0]

    assert check_plugin("strategy", Flexible) is None
    assert check_plugin("strategy", Catchall) is None


# -- the real registry -------------------------------------------------------


EXPECTED_BUILTINS: dict[str, set[str]] = {
    "backbone": {"bert", "resnet"},
    "strategy": {"full", "head-only", "lora"},
}


@pytest.fixture(scope="module")
def real_infos() -> dict[tuple[str, str], PluginInfo]:
    return {(i.kind, i.name): i for i in Registry().all()}


@pytest.mark.parametrize(
    ("kind", "name"),
    [(kind, name) for kind, names in EXPECTED_BUILTINS.items() for name in sorted(names)],
)
def test_builtin_plugin_is_registered_by_tl_toolkit(
    real_infos: dict[tuple[str, str], PluginInfo], kind: str, name: str
) -> None:
    info = real_infos[(kind, name)]
    assert info.dist == "tl-toolkit"
    assert info.version == md.version("tl-toolkit")
    assert info.error is None, info.error
    assert info.value.startswith("tl_toolkit_plugins.")
    base = {"backbone": Backbone, "strategy": Strategy}[kind]
    assert isinstance(info.obj, type) and issubclass(info.obj, base)
    assert info.description
