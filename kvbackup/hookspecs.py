"""Hook specifications: the whole plugin API of kvbackup.

A plugin is a module (or object) with ``@hookimpl`` functions named after these specs,
published under the ``kvbackup`` entry-point group. Each hook receives a ``register``
callback; a plugin calls it once for every thing it provides. Registration is order-free,
and two plugins registering the same name is reported as a clash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .registry import RegisterSource, RegisterStore, RegisterTransform

PROJECT = "kvbackup"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def kvbackup_register_stores(register: RegisterStore) -> None:
    """Register store factories.

    :param register: call as ``register(name, factory, schemes=(...), priority=0,
        description="")``. ``factory(url, options)`` returns a
        :class:`kvbackup.store.Store` for ``url`` (a string such as ``s3://bucket/prefix``),
        with ``options`` the ``--store-option key=value`` pairs as a ``dict[str, str]``.
        ``schemes`` lists the URL schemes the store serves (``""`` is a plain path, ``"*"``
        any scheme); among several candidates the highest ``priority`` wins.
    """


@hookspec
def kvbackup_register_sources(register: RegisterSource) -> None:
    """Register source factories.

    :param register: call as ``register(name, factory, accepts=None, priority=0,
        description="")``. ``factory(spec, options)`` returns a
        :class:`kvbackup.sources.Source` for ``spec`` (a path string from the command line,
        or any Python object given to :meth:`Repository.backup`). ``accepts(spec)`` tells
        whether this source can take ``spec`` when the user names no source; among several
        the highest ``priority`` wins.
    """


@hookspec
def kvbackup_register_transforms(register: RegisterTransform) -> None:
    """Register transforms (compression, encryption, anything reversible).

    :param register: call as ``register(name, factory, role=None, default=False,
        description="")``. ``factory(options, keys)`` returns a
        :class:`kvbackup.transforms.Transform`; ``options`` come from the repository
        config, ``keys`` is the repository's :class:`kvbackup.keys.KeyMaterial` (derive a
        subkey from it, never use it raw). ``role`` is ``"compression"`` or
        ``"encryption"`` for the transforms that can fill that step of the chain, and
        ``default`` marks the one ``init`` uses when the user chooses none.
    """
