"""The plugin manager and the typed registry of sources, stores and transforms.

A :class:`PluginRegistry` owns a fresh pluggy ``PluginManager``: nothing is global, so a
test can build exactly the plugin set it wants. The built-in plugins (:data:`DEFAULT_PLUGINS`)
are registered explicitly, by module name, so a source checkout and
``KVBACKUP_DISABLE_PLUGIN_AUTOLOAD=1`` still have a local store, the directory source and the
default transforms; entry points of the ``kvbackup`` group add third-party plugins.

Plugin mistakes are caught when plugins are loaded and when their factories run:

- a hook that is not a kvbackup hook (``kvbackup_register_store``) fails ``check_pending``;
- ``register(...)`` takes explicit keyword-only arguments, so ``prority=`` is a TypeError;
- a factory's result is checked (type, a transform's ``.name`` and role), its options are
  parsed with the schema the plugin declared, and anything it raises that is not a
  :class:`~kvbackup.errors.KvbackupError` becomes a :class:`PluginError` naming the plugin.

A plugin loaded from an entry point (or from :data:`DEFAULT_PLUGINS`) that fails to import or
to register is set aside in :attr:`PluginRegistry.unavailable` with its reason: commands
that do not need it keep working, and a lookup that fails names it.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import KvbackupError, OptionError, PluginError, UsageError
from .options import option_values, parse_options
from .sources import Source
from .store import Store
from .transforms import Transform

AUTOLOAD_ENV = "KVBACKUP_DISABLE_PLUGIN_AUTOLOAD"

#: The built-in plugins, registered by module name whatever the environment says. They live
#: in ``plugins/`` of the source tree and are installed as top-level packages.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "kvbackup_memory",
    "kvbackup_localdir",
    "kvbackup_s3",
    "kvbackup_fsspec",
    "kvbackup_directory",
    "kvbackup_iterable",
    "kvbackup_zstd",
    "kvbackup_aead",
)
#: Where the built-ins are in a source checkout that was not installed.
_CHECKOUT_PLUGINS = Path(__file__).resolve().parent.parent / "plugins"

KINDS = ("store", "source", "transform")
ROLES = ("compression", "encryption")
_HOOKS = {
    "store": "kvbackup_register_stores",
    "source": "kvbackup_register_sources",
    "transform": "kvbackup_register_transforms",
}


@dataclass(frozen=True)
class Registration:
    """One thing a plugin registered."""

    kind: str  # "store", "source" or "transform"
    name: str
    factory: Callable[..., Any]
    plugin: str  # the plugin (module or entry point) name that registered it
    distribution: str  # "name version" of the distribution it came from, or ""
    description: str = ""
    schemes: tuple[str, ...] = ()
    priority: int = 0
    accepts: Callable[[Any], bool] | None = None
    role: str | None = None
    default: bool = False
    #: The option schema (a dataclass type), or ``None``: the factory then gets the raw dict.
    options: type | None = None

    @property
    def what(self) -> str:
        """``store 'local' (plugin 'kvbackup_localdir')``, for messages."""
        return f"{self.kind} {self.name!r} (plugin {self.plugin!r})"

    def parse_options(self, values: Mapping[str, Any] | None) -> Any:
        """The factory's options: an instance of the schema, or a plain dict without one."""
        values = dict(values or {})
        if self.options is None:
            return values
        return parse_options(self.options, values, f"{self.kind} {self.name!r}")


@dataclass(frozen=True)
class Unavailable:
    """A plugin that could not be loaded or registered, and why."""

    plugin: str
    distribution: str
    reason: str


def _check_common(name: Any, factory: Any, description: Any, options: Any) -> None:
    if not isinstance(name, str) or not name or not name.isascii() or len(name) > 255:
        raise ValueError(f"name must be a non-empty ASCII string, not {name!r}")
    if not callable(factory):
        raise TypeError(f"{name!r}: factory is not callable: {factory!r}")
    if not isinstance(description, str):
        raise TypeError(f"{name!r}: description must be a string")
    if options is not None and not (isinstance(options, type) and is_dataclass(options)):
        raise TypeError(f"{name!r}: options must be a dataclass type, not {options!r}")


class _Collector:
    """Hands one plugin its typed ``register`` callbacks and keeps what it registers."""

    def __init__(self, plugin: str, distribution: str) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.items: list[Registration] = []

    def _add(self, kind: str, name: str, factory: Any, **fields: Any) -> None:
        self.items.append(
            Registration(
                kind=kind,
                name=name,
                factory=factory,
                plugin=self.plugin,
                distribution=self.distribution,
                **fields,
            )
        )

    def register_store(
        self,
        name: str,
        factory: Callable[[str, Any], Store],
        *,
        schemes: Iterable[str] = (),
        priority: int = 0,
        description: str = "",
        options: type | None = None,
        accepts: Callable[[str], bool] | None = None,
    ) -> None:
        _check_common(name, factory, description, options)
        if isinstance(schemes, str) or not all(isinstance(s, str) for s in schemes):
            raise TypeError(f"{name!r}: schemes must be a tuple of strings, not {schemes!r}")
        if type(priority) is not int:
            raise TypeError(f"{name!r}: priority must be an int, not {priority!r}")
        if accepts is not None and not callable(accepts):
            raise TypeError(f"{name!r}: accepts is not callable")
        self._add("store", name, factory, schemes=tuple(schemes), priority=priority,
                  description=description, options=options, accepts=accepts)  # fmt: skip

    def register_source(
        self,
        name: str,
        factory: Callable[[Any, Any], Source],
        *,
        accepts: Callable[[Any], bool] | None = None,
        priority: int = 0,
        description: str = "",
        options: type | None = None,
    ) -> None:
        _check_common(name, factory, description, options)
        if accepts is not None and not callable(accepts):
            raise TypeError(f"{name!r}: accepts is not callable")
        if type(priority) is not int:
            raise TypeError(f"{name!r}: priority must be an int, not {priority!r}")
        self._add("source", name, factory, accepts=accepts, priority=priority,
                  description=description, options=options)  # fmt: skip

    def register_transform(
        self,
        name: str,
        factory: Callable[[Any, Any], Transform],
        *,
        role: str | None = None,
        default: bool = False,
        description: str = "",
        options: type | None = None,
    ) -> None:
        _check_common(name, factory, description, options)
        if role is not None and role not in ROLES:
            raise ValueError(f"{name!r}: role must be {' or '.join(ROLES)} or None, not {role!r}")
        if default and role is None:
            raise ValueError(f"{name!r}: default=True needs a role")
        self._add("transform", name, factory, role=role, default=bool(default),
                  description=description, options=options)  # fmt: skip

    def callback(self, kind: str) -> Callable[..., None]:
        callbacks: dict[str, Callable[..., None]] = {
            "store": self.register_store,
            "source": self.register_source,
            "transform": self.register_transform,
        }
        return callbacks[kind]


def _one_line(text: str) -> str:
    # "_Collector.register_store() got an unexpected keyword ..." -> "register() got ..."
    text = re.sub(r"[\w.<>]*register_(store|source|transform)\(\)", "register()", text)
    return " ".join(text.split())


def _describe_exception(exc: BaseException) -> str:
    return _one_line(f"{type(exc).__name__}: {exc}")


def missing_module(exc: BaseException) -> str | None:
    """The module whose absence caused ``exc`` (an ImportError, or one caused by it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ImportError) and seen.name:
            return seen.name.split(".")[0]
        seen = seen.__cause__ or seen.__context__
    return None


def install_hint(module: str, distribution: str) -> str:
    """How to install ``module``: the extra of ``distribution`` that requires it, if any."""
    dist_name = distribution.split(" ")[0]
    wanted = re.sub(r"[-_.]+", "-", module).lower()
    if dist_name:
        try:
            requires = importlib.metadata.distribution(dist_name).requires or []
        except importlib.metadata.PackageNotFoundError:
            requires = []
        for requirement in requires:
            found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
            if found and extra and re.sub(r"[-_.]+", "-", found.group(1)).lower() == wanted:
                return f"pip install '{dist_name}[{extra.group(1)}]'"
    return f"pip install {module}"


def _failure(exc: BaseException, distribution: str) -> str:
    module = missing_module(exc)
    if module:
        return (
            f"needs the module {module!r}, which is not installed "
            f"({install_hint(module, distribution)})"
        )
    return _describe_exception(exc)


class PluginRegistry:
    """Sources, stores and transforms registered by plugins, looked up by name.

    :param plugins: more plugins (modules or objects with ``@hookimpl`` functions); a
        mistake in one of these raises :class:`PluginError` at once.
    :param autoload: load entry points of the ``kvbackup`` group (default: unless
        ``KVBACKUP_DISABLE_PLUGIN_AUTOLOAD`` is set).
    :param defaults: register :data:`DEFAULT_PLUGINS` (the built-ins).
    """

    def __init__(
        self,
        plugins: list[Any] | None = None,
        autoload: bool | None = None,
        defaults: bool = True,
    ):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.unavailable: list[Unavailable] = []
        self._distributions: dict[str, str] = {}
        self._lenient: set[str] = set()  # set aside on error instead of raising
        self._items: dict[str, dict[str, Registration]] | None = None
        self._lock = threading.RLock()
        if defaults:
            for module in DEFAULT_PLUGINS:
                self._load_default(module)
        if autoload is None:
            autoload = not os.environ.get(AUTOLOAD_ENV)
        if autoload:
            self._load_entry_points()
        for plugin in plugins or []:
            self.register(plugin)

    # ----------------------------------------------------------------- loading

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Add a plugin (a module or object with ``@hookimpl`` functions); a mistake in it
        raises :class:`PluginError` naming it. A plugin already registered is skipped."""
        self._add(plugin, name, distribution="", lenient=False)

    def _add(self, plugin: Any, name: str | None, distribution: str, lenient: bool) -> None:
        with self._lock:
            if self.pm.is_registered(plugin):
                return
            label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
            if name is None and self.pm.get_plugin(label) is None:
                name = label  # messages name a module or class, not pluggy's id()
            try:
                _check_unmarked_hooks(plugin)
                label = self.pm.register(plugin, name=name) or label
                try:
                    self.pm.check_pending()
                except pluggy.PluginValidationError:
                    self.pm.unregister(plugin)
                    raise
            except (pluggy.PluginValidationError, ValueError, PluginError) as exc:
                self._reject(label, distribution, _hook_problem(exc), lenient)
                return
            self._distributions[label] = distribution
            if lenient:
                self._lenient.add(label)
            self._items = None

    def _reject(self, plugin: str, distribution: str, reason: str, lenient: bool) -> None:
        if not lenient:
            raise PluginError(f"plugin {plugin!r}: {reason}")
        self.unavailable.append(Unavailable(plugin, distribution, reason))

    def _load_default(self, module_name: str) -> None:
        dist = _own_distribution()
        try:
            module = _import_builtin(module_name)
        except Exception as exc:
            self._reject(module_name, dist, _failure(exc, dist), lenient=True)
            return
        self._add(module, module_name, dist, lenient=True)

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else ""
            if ep.value in DEFAULT_PLUGINS or self.pm.get_plugin(ep.name) is not None:
                continue  # a built-in also published as an entry point: registered already
            try:
                plugin = ep.load()
            except Exception as exc:
                self._reject(ep.name, dist, _failure(exc, dist), lenient=True)
                continue
            self._add(plugin, ep.name, dist, lenient=True)

    def _collect(self) -> dict[str, dict[str, Registration]]:
        with self._lock:
            if self._items is not None:
                return self._items
            items: dict[str, dict[str, Registration]] = {k: {} for k in KINDS}
            # In registration order: the built-ins first, so a plugin that clashes with one
            # of them is the one set aside.
            for plugin, plugin_obj in list(self.pm.list_name_plugin()):
                if plugin_obj is None:
                    continue
                collector = _Collector(plugin, self._distributions.get(plugin, ""))
                try:
                    for kind, hook_name in _HOOKS.items():
                        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                            if impl.plugin is plugin_obj:
                                impl.function(register=collector.callback(kind))
                except Exception as exc:
                    self.pm.unregister(plugin_obj)
                    self._reject(plugin, collector.distribution,
                                 f"{hook_name}: {_describe_exception(exc)}",
                                 lenient=plugin in self._lenient)  # fmt: skip
                    continue
                clashes = [
                    f"{reg.kind} {reg.name!r} is registered by both plugin "
                    f"{items[reg.kind][reg.name].plugin!r} and plugin {reg.plugin!r}"
                    for reg in collector.items
                    if reg.name in items[reg.kind]
                ]
                if clashes:
                    if plugin not in self._lenient:
                        raise PluginError(clashes[0])
                    self.pm.unregister(plugin_obj)
                    self._reject(plugin, collector.distribution, clashes[0], lenient=True)
                    continue
                for reg in collector.items:
                    items[reg.kind][reg.name] = reg
            self._items = items
            return items

    # ----------------------------------------------------------------- lookups

    def all(self, kind: str) -> list[Registration]:
        """Every registration of ``kind`` ("store", "source" or "transform"), by name."""
        return sorted(self._collect()[kind].values(), key=lambda r: r.name)

    def _unavailable_note(self) -> str:
        if not self.unavailable:
            return ""
        return "; unavailable: " + "; ".join(
            f"plugin {u.plugin!r}: {u.reason}" for u in self.unavailable
        )

    def get(self, kind: str, name: str) -> Registration:
        """The registration of ``kind`` called ``name``; a clear error if there is none."""
        table = self._collect()[kind]
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            raise PluginError(
                f"unknown {kind} {name!r}: it is not available (plugin may not be "
                f"installed; installed {kind}s: {known}{self._unavailable_note()})"
            )
        return table[name]

    def store_for_url(self, url: str) -> Registration:
        """The store registration serving ``url``'s scheme, best priority first.

        A store registered for ``"*"`` (fsspec) takes schemes no store claims, and only
        those its ``accepts`` takes; never while a plugin is unavailable, since the scheme
        may be that plugin's.
        """
        scheme = url.split("://", 1)[0] if "://" in url else ""
        stores = self.all("store")
        candidates = [r for r in stores if scheme in r.schemes]
        if not candidates and not self.unavailable:
            candidates = [
                r for r in stores if "*" in r.schemes and (r.accepts is None or _accepts(r, url))
            ]
        if not candidates:
            raise PluginError(
                f"no store plugin serves {scheme + '://' if scheme else 'local paths'} "
                f"(plugin may not be installed: see `kvbackup plugins`"
                f"{self._unavailable_note()})"
            )
        return max(candidates, key=lambda r: r.priority)

    def source_for(self, spec: Any) -> Registration:
        """The source registration that accepts ``spec``, best priority first."""
        candidates = [r for r in self.all("source") if r.accepts is not None and _accepts(r, spec)]
        if not candidates:
            raise PluginError(
                f"no source plugin accepts {spec!r} (plugin may not be installed: see "
                f"`kvbackup plugins`{self._unavailable_note()})"
            )
        return max(candidates, key=lambda r: r.priority)

    def default_transform(self, role: str) -> Registration | None:
        """The transform registered as the default for ``role``, if any."""
        defaults = [r for r in self.all("transform") if r.role == role and r.default]
        return defaults[0] if defaults else None

    def transform_for_role(self, name: str, role: str) -> Registration:
        """The transform ``name``, which must be able to fill the ``role`` step of the chain
        (a usage error otherwise, listing those that can). A transform registered with no
        role may be the compression step (any reversible transform that does not
        authenticate), never the encryption step."""
        reg = self.get("transform", name)
        if reg.role != role and not (role == "compression" and reg.role is None):
            fitting = ", ".join(r.name for r in self.all("transform") if r.role == role)
            article = "an" if (reg.role or "")[:1] in tuple("aeiou") else "a"
            what = f"{article} {reg.role} transform" if reg.role else "a transform with no role"
            raise UsageError(
                f"transform {name!r} is {what}: it cannot be the {role} step "
                f"({role} transforms: {fitting or 'none'})"
            )
        return reg

    # ----------------------------------------------------------------- making things

    def open_store(self, url: str, options: Mapping[str, str] | None = None) -> Store:
        """A store for ``url`` made by the plugin serving its scheme."""
        reg = self.store_for_url(url)
        store = _call_factory(reg, url, reg.parse_options(options))
        if not isinstance(store, Store):
            raise PluginError(f"{reg.what} returned {type(store).__name__}, not a Store")
        return store

    def make_source(
        self, spec: Any, source_type: str | None = None, options: Mapping[str, str] | None = None
    ) -> tuple[Source, str]:
        """A source for ``spec`` (and the name of its kind): the source plugin named
        ``source_type``, else the best one that accepts ``spec``. A :class:`Source` given
        as ``spec`` is used as it is."""
        if isinstance(spec, Source) and source_type is None:
            if options:
                raise OptionError("source options cannot be given with a Source object")
            return spec, type(spec).__name__
        reg = self.get("source", source_type) if source_type else self.source_for(spec)
        source = _call_factory(reg, spec, reg.parse_options(options))
        if not isinstance(source, Source):
            raise PluginError(f"{reg.what} returned {type(source).__name__}, not a Source")
        return source, reg.name

    def transform_options(self, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` of transform ``name``, checked against its schema and converted
        (``"19"`` -> ``19``): what the repository config records."""
        reg = self.get("transform", name)
        parsed = reg.parse_options(options)
        return option_values(parsed, options) if reg.options is not None else dict(options)

    def make_transform(self, name: str, options: Mapping[str, Any], keys: Any) -> Transform:
        """The transform ``name`` made with ``options`` and the repository's ``keys``;
        checked to be what it was registered as."""
        reg = self.get("transform", name)
        transform = _call_factory(reg, reg.parse_options(options), keys)
        check_transform(reg, transform)
        return transform


def check_transform(reg: Registration, transform: Any) -> None:
    """Raise :class:`PluginError` unless ``transform`` is what ``reg`` promises."""
    if not isinstance(transform, Transform):
        raise PluginError(
            f"{reg.what} returned {type(transform).__name__}, not a Transform "
            "(needs name, authenticates, encode, decode)"
        )
    if transform.name != reg.name:
        raise PluginError(
            f"{reg.what} made a transform named {transform.name!r}: its name must be the "
            "registered one, or backups written with it could not be restored"
        )
    if not isinstance(transform.authenticates, bool):
        raise PluginError(f"{reg.what}: authenticates must be True or False")
    if reg.role == "encryption" and not transform.authenticates:
        raise PluginError(
            f"{reg.what} is registered for the encryption role but does not authenticate "
            "(authenticates = False): an encryption transform must be an AEAD"
        )
    if reg.role == "compression" and transform.authenticates:
        raise PluginError(
            f"{reg.what} is registered for the compression role but authenticates: "
            "register it with role='encryption'"
        )


def _accepts(reg: Registration, spec: Any) -> bool:
    """``reg.accepts(spec)``; an exception in it is the plugin's error, naming it."""
    assert reg.accepts is not None
    try:
        return bool(reg.accepts(spec))
    except Exception as exc:
        raise PluginError(f"{reg.what}: accepts() failed: {_describe_exception(exc)}") from exc


def _call_factory(reg: Registration, *args: Any) -> Any:
    """Run a plugin's factory; an error that is not one of kvbackup's documented ones is
    reported as the plugin's."""
    try:
        return reg.factory(*args)
    except KvbackupError:
        raise
    except Exception as exc:
        raise PluginError(f"{reg.what} failed: {_failure(exc, reg.distribution)}") from exc


def _check_unmarked_hooks(plugin: Any) -> None:
    """A function named like a hook but not marked ``@hookimpl`` would be ignored silently."""
    for attr in dir(plugin):
        if attr.startswith("kvbackup_") and callable(getattr(plugin, attr, None)):
            opts = getattr(getattr(plugin, attr), hookspecs.PROJECT + "_impl", None)
            if opts is None:
                raise PluginError(f"{attr} is not marked with @hookimpl, so it would be ignored")


def _hook_problem(exc: BaseException) -> str:
    """A one-line reason for a plugin that pluggy (or we) refused."""
    found = re.search(r"unknown hook '(\w+)'", str(exc))
    if found:
        name = found.group(1)
        close = difflib.get_close_matches(name, list(_HOOKS.values()), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{name} is not a kvbackup hook{hint}"
    return _one_line(str(exc))


@functools.cache
def _own_distribution() -> str:
    try:
        return f"kvbackup {importlib.metadata.version('kvbackup')}"
    except importlib.metadata.PackageNotFoundError:
        return ""


def _import_builtin(module_name: str) -> Any:
    """Import a built-in plugin; from ``plugins/`` of a source checkout if not installed."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        location = _CHECKOUT_PLUGINS / module_name / "__init__.py"
        if exc.name != module_name or not location.is_file():
            raise
    spec = importlib.util.spec_from_file_location(
        module_name, location, submodule_search_locations=[str(location.parent)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


_default: PluginRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> PluginRegistry:
    """The registry of installed plugins, built on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PluginRegistry()
        return _default


def built_default_registry() -> PluginRegistry | None:
    """The default registry if something already needed it (for warnings), else ``None``."""
    return _default
