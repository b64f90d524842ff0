"""Hook specifications: the whole plugin API of kvbackup.

A plugin is a module (or object) with ``@hookimpl`` functions named after these specs,
published under the ``kvbackup`` entry-point group. Each hook receives a ``register``
callback; a plugin calls it once for every thing it provides. Registration is order-free,
and two plugins registering the same name is reported as a clash.

Mistakes are caught: a ``@hookimpl`` whose name is not one of these hooks, a function named
``kvbackup_*`` without ``@hookimpl``, or a ``register`` call with an unknown keyword makes
the plugin unavailable, and ``kvbackup plugins`` says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from .sources import Source
    from .store import Store
    from .transforms import Transform

PROJECT = "kvbackup"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class RegisterStore(Protocol):
    """The ``register`` callback of :func:`~kvbackup.hookspecs.kvbackup_register_stores`."""

    def __call__(
        self,
        name: str,
        factory: Callable[[str, Any], Store],
        *,
        schemes: Iterable[str] = (),
        priority: int = 0,
        description: str = "",
        options: type | None = None,
        accepts: Callable[[str], bool] | None = None,
    ) -> None: ...


class RegisterSource(Protocol):
    """The ``register`` callback of :func:`~kvbackup.hookspecs.kvbackup_register_sources`."""

    def __call__(
        self,
        name: str,
        factory: Callable[[Any, Any], Source],
        *,
        accepts: Callable[[Any], bool] | None = None,
        priority: int = 0,
        description: str = "",
        options: type | None = None,
    ) -> None: ...


class RegisterTransform(Protocol):
    """The ``register`` callback of :func:`~kvbackup.hookspecs.kvbackup_register_transforms`."""

    def __call__(
        self,
        name: str,
        factory: Callable[[Any, Any], Transform],
        *,
        role: str | None = None,
        default: bool = False,
        description: str = "",
        options: type | None = None,
    ) -> None: ...


@hookspec
def kvbackup_register_stores(register: RegisterStore) -> None:
    """Register store factories.

    :param register: call as ``register(name, factory, *, schemes=(), priority=0,
        description="", options=None, accepts=None)``. ``factory(url, options)`` returns a
        :class:`kvbackup.store.Store` for ``url`` (a string such as ``s3://bucket/prefix``).
        ``options`` is an instance of the ``options`` schema (a dataclass, see
        :mod:`kvbackup.options`) built from the ``--store-option key=value`` pairs, or, with
        no schema, the pairs as a ``dict[str, str]``. ``schemes`` lists the URL schemes the
        store serves (``""`` is a plain path, ``"*"`` any scheme no other store claims, and
        then only the URLs ``accepts(url)`` takes); among several candidates the highest
        ``priority`` wins. A store may define ``ensure_root()``: ``init`` calls it, once
        every check has passed, before writing the repository's first object.
    """


@hookspec
def kvbackup_register_sources(register: RegisterSource) -> None:
    """Register source factories.

    :param register: call as ``register(name, factory, *, accepts=None, priority=0,
        description="", options=None)``. ``factory(spec, options)`` returns a
        :class:`kvbackup.sources.Source` for ``spec`` (a path string from the command line,
        or any Python object given to :meth:`Repository.backup`); ``options`` come from
        ``--source-option key=value`` (an instance of the ``options`` schema, or a
        ``dict[str, str]`` without one). ``accepts(spec)`` tells whether this source can
        take ``spec`` when the user names no source; among several the highest
        ``priority`` wins.
    """


@hookspec
def kvbackup_register_transforms(register: RegisterTransform) -> None:
    """Register transforms (compression, encryption, anything reversible).

    :param register: call as ``register(name, factory, *, role=None, default=False,
        description="", options=None)``. ``factory(options, keys)`` returns a
        :class:`kvbackup.transforms.Transform` whose ``name`` is ``name``; ``options`` come
        from the repository config or ``--compression NAME:LEVEL`` (an instance of the
        ``options`` schema, or a ``dict`` without one), ``keys`` is the repository's
        :class:`kvbackup.KeyMaterial` (derive a subkey from it, never use it raw).
        ``role`` is ``"compression"`` (the transform must not authenticate) or
        ``"encryption"`` (it must: an AEAD) for the transforms that can fill that step of
        the chain, and ``default`` marks the one ``init`` uses when the user chooses none.
    """
