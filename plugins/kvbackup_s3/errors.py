"""Translation of botocore exceptions into kvbackup's store errors.

Only an explicit "no such key" answer becomes :class:`KeyNotFoundError`. Throttling, 5xx,
timeouts and dropped connections are transient; credentials, permissions and a missing
bucket are permanent, with a one-line message saying what to check.
"""

from __future__ import annotations

from typing import NoReturn

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)

from kvbackup.errors import KeyNotFoundError, StoreError, TransientStoreError

# A GET of a missing key gets an S3 error body, "NoSuchKey"; only a HEAD, which has no
# body, says "404" alone. A bare 404 to a GET comes from something that is not S3.
_NOT_FOUND = {"NoSuchKey"}
_HEAD_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_AUTH = {
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "AccountProblem",
}
_TRANSIENT = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "TooManyRequests",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "RequestTimeoutException",
    "OperationAborted",
    "ConditionalRequestConflict",
    "503",
    "500",
    "502",
    "504",
}


def error_code(exc: ClientError) -> tuple[str, int]:
    """The S3 error code and HTTP status of a ``ClientError``."""
    response = exc.response or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def raise_store_error(
    exc: Exception, url: str, bucket: str, op: str, key: str, endpoint: str = ""
) -> NoReturn:
    """Raise the kvbackup error that ``exc`` (from ``op`` on ``key``) stands for; ``op``
    is ``"head"`` for a HEAD request. Errors of the network name ``endpoint``."""
    where = f"{op} {key}" if key else op
    at = f" (endpoint {endpoint})" if endpoint else ""
    if isinstance(exc, ClientError):
        code, status = error_code(exc)
        if code == "NoSuchBucket":
            raise StoreError(f"{url}: bucket {bucket!r} does not exist") from exc
        if key and code in (_HEAD_NOT_FOUND if op == "head" else _NOT_FOUND):
            raise KeyNotFoundError(f"{key}: not found in {url}") from exc
        if status == 404 and (not code or code in _HEAD_NOT_FOUND):
            raise StoreError(
                f"{url}{at}: {where}: answered 404 without an S3 error code: is this an S3 "
                "endpoint? (check the endpoint URL)"
            ) from exc
        if code in _AUTH or status == 403:
            raise StoreError(
                f"{url}: access denied — check credentials ({code or status} on {where})"
            ) from exc
        if code in _TRANSIENT or status == 429 or status >= 500:
            raise TransientStoreError(
                f"{url}: {where}: {code or status} (server busy or failing)"
            ) from exc
        message = exc.response.get("Error", {}).get("Message") or code
        raise StoreError(f"{url}: {where}: {code or status}: {message}") from exc
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        raise StoreError(f"{url}: no usable AWS credentials ({exc})") from exc
    if isinstance(
        exc, (ConnectionError, HTTPClientError, IncompleteReadError, FlexibleChecksumError)
    ):
        raise TransientStoreError(f"{url}{at}: {where}: {exc}") from exc
    if isinstance(exc, BotoCoreError):
        raise StoreError(f"{url}{at}: {where}: {exc}") from exc
    if isinstance(exc, OSError):  # a socket error escaping while a body is read
        raise TransientStoreError(f"{url}{at}: {where}: {exc}") from exc
    raise exc
