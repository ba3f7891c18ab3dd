"""Plugin discovery through ``importlib.metadata`` entry points.

Every backbone, strategy and task, built-in or third-party, is found here through
the same path: an entry point in a group named ``tl_toolkit.<kind>``. Each
entry point is loaded on first use and guarded: one that fails to import is
recorded with its distribution, version and error, and the others keep
working. A name declared twice is an error that names both providers.
"""

from __future__ import annotations

import importlib.metadata as md
import traceback
from dataclasses import dataclass, field
from typing import Any

from ._errors import PluginError, suggest

__all__ = ["GROUPS", "PluginInfo", "Registry", "get_plugin", "list_plugins", "registry"]

#: The plugin groups, keyed by their short kind name.
GROUPS: dict[str, str] = {
    "backbone": "tl_toolkit.backbones",
    "strategy": "tl_toolkit.strategies",
    "task": "tl_toolkit.tasks",
}


@dataclass
class PluginInfo:
    """What the registry knows about one entry point."""

    kind: str  # "backbone" | "strategy" | "task"
    name: str  # the entry-point name used in recipes
    value: str  # "module:attr" the entry point points to
    dist: str  # distribution that declares it
    version: str  # that distribution's version
    obj: Any = None  # the loaded object, once loaded
    error: str | None = None  # why it could not be used, if it could not
    traceback: str | None = None  # the original traceback of a failed import
    loaded: bool = False
    ep: Any = field(default=None, repr=False)  # the importlib.metadata entry point

    @property
    def provider(self) -> str:
        return f"{self.dist} {self.version}"

    @property
    def description(self) -> str:
        """First line of the plugin's docstring, when loaded."""
        doc = getattr(self.obj, "__doc__", None) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


@dataclass
class Registry:
    """Entry points of every plugin group, loaded lazily and guarded."""

    entry_points: Any = None  # a callable like importlib.metadata.entry_points; tests replace it
    _plugins: dict[str, dict[str, PluginInfo]] | None = field(default=None, repr=False)
    _duplicates: dict[tuple[str, str], list[PluginInfo]] = field(default_factory=dict, repr=False)

    def _discover(self) -> dict[str, dict[str, PluginInfo]]:
        if self._plugins is not None:
            return self._plugins
        eps_fn = self.entry_points or md.entry_points
        plugins: dict[str, dict[str, PluginInfo]] = {}
        for kind, group in GROUPS.items():
            found: dict[str, PluginInfo] = {}
            seen: set[tuple[str, str, str]] = set()
            for ep in eps_fn(group=group):
                dist = getattr(ep, "dist", None)
                dist_name = dist.metadata["Name"] if dist is not None else "<unknown>"
                version = dist.version if dist is not None else "?"
                key = (ep.name, ep.value, dist_name)
                if key in seen:  # the same distribution seen twice on sys.path
                    continue
                seen.add(key)
                info = PluginInfo(kind, ep.name, ep.value, dist_name, version, ep=ep)
                if ep.name in found:
                    self._duplicates.setdefault((kind, ep.name), [found[ep.name]]).append(info)
                    continue
                found[ep.name] = info
            plugins[kind] = found
        for (kind, name), infos in self._duplicates.items():
            providers = " and ".join(f"{i.provider} ({i.value})" for i in infos)
            first = plugins[kind][name]
            first.error = f"{kind} {name!r} is registered twice, by {providers}; uninstall one of them"
        self._plugins = plugins
        return plugins

    def _load(self, info: PluginInfo) -> PluginInfo:
        if info.loaded or info.error:
            return info
        info.loaded = True
        try:
            obj = info.ep.load()
        except Exception as e:  # any failure in third-party code is recorded, not raised
            info.error = f'Error importing plugin "{info.name}": {type(e).__name__}: {e}'
            info.traceback = traceback.format_exc()
            return info
        from ._plugin_api import check_plugin  # cheap: no torch

        problem = check_plugin(info.kind, obj)
        if problem:
            info.error = f"{info.kind} {info.name!r} does not satisfy the plugin contract: {problem}"
        else:
            obj.plugin_name = info.name
        info.obj = obj
        return info

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, loaded or not."""
        return sorted(self._discover()[kind])

    def all(self, kind: str | None = None, load: bool = True) -> list[PluginInfo]:
        """Every plugin (of one kind), loading each guarded unless ``load`` is false."""
        kinds = [kind] if kind else list(GROUPS)
        out = []
        for k in kinds:
            for name in sorted(self._discover()[k]):
                info = self._discover()[k][name]
                out.append(self._load(info) if load else info)
        return out

    def get(self, kind: str, name: str) -> Any:
        """Return the plugin object registered as ``name``.

        Raises:
            PluginError: the name is unknown (with the registered names and the
                nearest one), or the plugin failed to load or is registered twice.
        """
        plugins = self._discover()[kind]
        if name not in plugins:
            known = sorted(plugins)
            listed = ", ".join(known) if known else "none"
            raise PluginError(
                f"Unknown {kind} plugin {name!r}.{suggest(name, known)} Registered {kind} plugins: {listed}. "
                f"Install a package that provides it (entry-point group {GROUPS[kind]!r}) or pick one of these."
            )
        info = self._load(plugins[name])
        if info.error:
            raise PluginError(f"{info.error} (provided by {info.provider})")
        return info.obj


#: The process-wide registry.
registry = Registry()


def get_plugin(kind: str, name: str) -> Any:
    """Shortcut for ``registry.get(kind, name)``."""
    return registry.get(kind, name)


def list_plugins(kind: str | None = None) -> list[PluginInfo]:
    """Shortcut for ``registry.all(kind)``."""
    return registry.all(kind)
