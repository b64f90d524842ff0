"""The S3 store: one thread-safe boto3 client, errors translated, conditional writes probed."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from kvbackup.errors import StoreError
from kvbackup.store import Store, check_key

from .errors import error_code, raise_store_error
from .options import MAX_S3_KEY_BYTES, S3Options

T = TypeVar("T")
log = logging.getLogger(__name__)

PROBE_PREFIX = "locks/probe-"
_HEADER_REJECTED = {"NotImplemented", "InvalidArgument", "InvalidRequest"}


class S3Store(Store):
    """Keys under ``s3://bucket/prefix``, one object each."""

    supports_get_range = True

    def __init__(self, opts: S3Options):
        self.opts = opts
        self.bucket = opts.bucket
        self.prefix = opts.prefix
        self.description = opts.url
        self.concurrency = opts.concurrency
        self.deadline = opts.deadline
        self._conditional: bool | None = {"true": True, "false": False}.get(opts.conditional_writes)
        self._probe_lock = threading.Lock()
        config = Config(
            max_pool_connections=opts.concurrency + 4,
            connect_timeout=opts.connect_timeout,
            read_timeout=opts.read_timeout,
            retries={"total_max_attempts": opts.retries + 1, "mode": "standard"},
            s3={"addressing_style": opts.addressing_style},
            request_checksum_calculation=opts.checksums,
            # Some servers (rclone) send the whole object's checksum with a ranged GET;
            # kvbackup checks every object it reads with its own keyed hash anyway.
            response_checksum_validation="when_required",
        )
        try:
            session = boto3.session.Session(profile_name=opts.profile, region_name=opts.region)
            self.client: Any = session.client(
                "s3",
                endpoint_url=opts.endpoint_url,
                region_name=opts.region or session.region_name or "us-east-1",
                config=config,
            )
        except Exception as exc:
            raise StoreError(f"{opts.url}: cannot create an S3 client: {exc}") from exc

    @classmethod
    def from_url(cls, url: str, options: dict[str, str]) -> S3Store:
        """Open ``s3://bucket/prefix`` with ``--store-option`` values."""
        return cls(S3Options.parse(url, options))

    # -- helpers ---------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        full = self.prefix + check_key(key)
        if len(full.encode()) > MAX_S3_KEY_BYTES:
            raise StoreError(f"{self.description}: key too long for S3: {full[:60]}...")
        return full

    def _call(self, op: str, key: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as exc:
            endpoint = str(self.client.meta.endpoint_url)
            raise_store_error(exc, self.description, self.bucket, op, key, endpoint)

    # -- primitives ------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        full = self._key(key)

        def get() -> bytes:
            body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
            with body:
                return bytes(body.read())

        return self._call("get", key, get)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        full = self._key(key)
        if start >= 0 and length <= 0:
            self._call("head", key, lambda: self.client.head_object(Bucket=self.bucket, Key=full))
            return b""
        spec = f"bytes={start}" if start < 0 else f"bytes={start}-{start + length - 1}"

        def get_range() -> bytes:
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=full, Range=spec)["Body"]
            except ClientError as exc:
                if error_code(exc)[1] != 416:
                    raise
                # The object exists; the range starts past its end (or, on some servers, a
                # suffix range is longer than the object: then the whole object is the tail).
                return self.get(key) if start < 0 else b""
            with body:
                return bytes(body.read())

        return self._call("get", key, get_range)

    def put(self, key: str, value: bytes) -> None:
        full = self._key(key)
        if len(value) > self.opts.multipart_threshold:
            self._call("put", key, lambda: self._put_multipart(full, value))
        else:
            self._call(
                "put", key, lambda: self.client.put_object(Bucket=self.bucket, Key=full, Body=value)
            )

    def _put_multipart(self, full: str, value: bytes) -> None:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]
        try:
            size = self.opts.multipart_chunksize
            parts = []
            view = memoryview(value)
            for number, offset in enumerate(range(0, len(value), size), start=1):
                etag = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=bytes(view[offset : offset + size]),
                )["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=full,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            except Exception:
                log.debug("could not abort multipart upload of %s", full, exc_info=True)
            raise

    def delete(self, key: str) -> None:
        full = self._key(key)
        self._call("delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=full))

    def list(self, prefix: str = "") -> Iterator[str]:
        return (key for key, _ in self.list_sizes(prefix))

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int | None]]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=self.prefix + prefix,
            PaginationConfig={"PageSize": self.opts.list_page_size},
        )
        cut = len(self.prefix)
        iterator = iter(pages)
        while True:
            page = self._call("list", prefix or "/", lambda: next(iterator, None))
            if page is None:
                return
            for obj in page.get("Contents", ()):
                yield obj["Key"][cut:], obj.get("Size")

    # -- conditional writes ----------------------------------------------------------------

    @property
    def supports_put_if_absent(self) -> bool:  # type: ignore[override]
        """Whether the server honours ``If-None-Match: *``: probed on first use, and
        believed only for the life of this store object (one command), never remembered
        across commands, since the server behind an endpoint can change."""
        return self._conditional_writes()

    def _conditional_writes(self) -> bool:
        with self._probe_lock:
            if self._conditional is None:
                self._conditional = self._probe()
            return self._conditional

    def _probe(self) -> bool:
        """Write a fresh key twice with ``If-None-Match: *``: the second write must fail."""
        full = self.prefix + PROBE_PREFIX + secrets.token_hex(8)
        try:
            if not self._probe_write(full, first=True):
                return False
            if self._probe_write(full, first=False):
                log.info(
                    "%s: the server ignores If-None-Match; conditional writes are not atomic",
                    self.description,
                )
                return False
            return True
        finally:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=full)
            except Exception:
                log.debug("could not delete probe object %s", full, exc_info=True)

    def _probe_write(self, full: str, first: bool) -> bool:
        """One probe write; whether it was stored. A server that rejects the header
        outright counts as not storing on the first write."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=b"probe", IfNoneMatch="*")
        except ClientError as exc:
            code, status = error_code(exc)
            if not first and status in (409, 412):
                return False
            if first and (status == 501 or code in _HEADER_REJECTED):
                return False
            raise_store_error(exc, self.description, self.bucket, "put", full)
        except Exception as exc:
            raise_store_error(exc, self.description, self.bucket, "put", full)
        return True

    def put_if_absent(self, key: str, value: bytes) -> bool:
        full = self._key(key)
        if not self._conditional_writes():
            return super().put_if_absent(key, value)  # check, then put: not atomic

        def put() -> bool:
            try:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=value, IfNoneMatch="*")
            except ClientError as exc:
                if error_code(exc)[1] == 412:
                    return False
                raise
            return True

        return self._call("put", key, put)

    def close(self) -> None:
        self.client.close()
