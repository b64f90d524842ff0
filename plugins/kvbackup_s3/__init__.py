"""The ``s3`` store: Amazon S3 and S3-compatible servers, through boto3.

URL: ``s3://bucket[/prefix]``. Credentials come from the standard AWS chain; the endpoint
from ``AWS_ENDPOINT_URL`` or the ``endpoint_url`` store option. See ``docs/stores.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvbackup import hookimpl

if TYPE_CHECKING:
    from kvbackup.hookspecs import RegisterStore
    from kvbackup.store import Store


@hookimpl
def kvbackup_register_stores(register: RegisterStore) -> None:
    register(
        "s3",
        _factory,
        schemes=("s3",),
        priority=10,
        description="Amazon S3 and S3-compatible servers (boto3)",
    )


def _factory(url: str, options: dict[str, str]) -> Store:
    from .store import S3Store  # boto3 is imported only when an S3 store is opened

    return S3Store.from_url(url, options)
