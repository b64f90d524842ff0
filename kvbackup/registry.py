"""The plugin manager and the typed registry of sources, stores and transforms.

A :class:`PluginRegistry` owns a fresh pluggy ``PluginManager``: nothing is global, so a
test can build exactly the plugin set it wants. Entry points of the ``kvbackup`` group are
loaded unless ``autoload=False`` or ``KVBACKUP_DISABLE_PLUGIN_AUTOLOAD`` is set.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pluggy

from . import hookspecs
from .errors import PluginError

AUTOLOAD_ENV = "KVBACKUP_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class Registration:
    """One thing a plugin registered."""

    kind: str  # "store", "source" or "transform"
    name: str
    factory: Callable[..., Any]
    plugin: str  # the plugin (entry point) name that registered it
    distribution: str  # the distribution it came from, or "" if not installed as one
    description: str = ""
    schemes: tuple[str, ...] = ()
    priority: int = 0
    accepts: Callable[[Any], bool] | None = None
    role: str | None = None
    default: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class RegisterStore(Protocol):
    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        schemes: tuple[str, ...] | list[str] = (),
        priority: int = 0,
        description: str = "",
    ) -> None: ...


class RegisterSource(Protocol):
    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        accepts: Callable[[Any], bool] | None = None,
        priority: int = 0,
        description: str = "",
    ) -> None: ...


class RegisterTransform(Protocol):
    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        role: str | None = None,
        default: bool = False,
        description: str = "",
    ) -> None: ...


_HOOKS = {
    "store": "kvbackup_register_stores",
    "source": "kvbackup_register_sources",
    "transform": "kvbackup_register_transforms",
}


class PluginRegistry:
    """Sources, stores and transforms registered by plugins, looked up by name."""

    def __init__(self, plugins: list[Any] | None = None, autoload: bool | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if autoload is None:
            autoload = not os.environ.get(AUTOLOAD_ENV)
        if autoload:
            try:
                self.pm.load_setuptools_entrypoints(hookspecs.PROJECT)
            except Exception as exc:  # a broken third-party plugin must say who it is
                raise PluginError(f"cannot load kvbackup plugins: {exc}") from exc
        for plugin in plugins or []:
            self.pm.register(plugin)
        self._items: dict[str, dict[str, Registration]] | None = None
        self._lock = threading.Lock()

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Add a plugin (a module or object with ``@hookimpl`` functions)."""
        self.pm.register(plugin, name=name)
        self._items = None

    def _dists(self) -> dict[str, str]:
        dists: dict[str, str] = {}
        for plugin, dist in self.pm.list_plugin_distinfo():
            name = self.pm.get_name(plugin)
            if name:
                dists[name] = f"{dist.project_name} {dist.version}"
        return dists

    def _collect(self) -> dict[str, dict[str, Registration]]:
        with self._lock:
            if self._items is not None:
                return self._items
            dists = self._dists()
            items: dict[str, dict[str, Registration]] = {k: {} for k in _HOOKS}
            for kind, hook_name in _HOOKS.items():
                hook = getattr(self.pm.hook, hook_name)
                for impl in hook.get_hookimpls():
                    plugin = impl.plugin_name

                    def register(
                        name: str,
                        factory: Callable[..., Any],
                        *,
                        _kind: str = kind,
                        _plugin: str = plugin,
                        schemes: tuple[str, ...] | list[str] = (),
                        **extra: Any,
                    ) -> None:
                        table = items[_kind]
                        if name in table:
                            other = table[name].plugin
                            raise PluginError(
                                f"{_kind} {name!r} is registered by both plugin {other!r} "
                                f"and plugin {_plugin!r}"
                            )
                        table[name] = Registration(
                            kind=_kind,
                            name=name,
                            factory=factory,
                            plugin=_plugin,
                            distribution=dists.get(_plugin, ""),
                            description=extra.pop("description", ""),
                            schemes=tuple(schemes),
                            priority=extra.pop("priority", 0),
                            accepts=extra.pop("accepts", None),
                            role=extra.pop("role", None),
                            default=extra.pop("default", False),
                            extra=extra,
                        )

                    impl.function(register=register)
            self._items = items
            return items

    def all(self, kind: str) -> list[Registration]:
        """Every registration of ``kind`` ("store", "source" or "transform"), by name."""
        return sorted(self._collect()[kind].values(), key=lambda r: r.name)

    def get(self, kind: str, name: str) -> Registration:
        """The registration of ``kind`` called ``name``; a clear error if there is none."""
        table = self._collect()[kind]
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            raise PluginError(
                f"unknown {kind} {name!r}: it is not available (plugin may not be "
                f"installed; installed {kind}s: {known})"
            )
        return table[name]

    def store_for_url(self, url: str) -> Registration:
        """The store registration serving ``url``'s scheme, best priority first."""
        scheme = url.split("://", 1)[0] if "://" in url else ""
        candidates = [r for r in self.all("store") if scheme in r.schemes]
        if not candidates:
            candidates = [r for r in self.all("store") if "*" in r.schemes]
        if not candidates:
            raise PluginError(
                f"no store plugin serves {scheme + '://' if scheme else 'local paths'} "
                "(plugin may not be installed: see `kvbackup plugins`)"
            )
        return max(candidates, key=lambda r: r.priority)

    def source_for(self, spec: Any) -> Registration:
        """The source registration that accepts ``spec``, best priority first."""
        candidates = [r for r in self.all("source") if r.accepts is not None and r.accepts(spec)]
        if not candidates:
            raise PluginError(
                f"no source plugin accepts {spec!r} (plugin may not be installed: see "
                "`kvbackup plugins`)"
            )
        return max(candidates, key=lambda r: r.priority)

    def default_transform(self, role: str) -> Registration | None:
        """The transform registered as the default for ``role``, if any."""
        defaults = [r for r in self.all("transform") if r.role == role and r.default]
        return defaults[0] if defaults else None


_default: PluginRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> PluginRegistry:
    """The registry of installed plugins, built on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PluginRegistry()
        return _default
