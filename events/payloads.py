"""Claim-check payloads in S3: fetch ``dataref`` objects (allowlisted, size-limited) and store large results."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from core.errors import InvalidEventError, PayloadNotFoundError, PayloadTooLargeError, TransientError
from core.s3 import S3Uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def _classify(exc: Exception, uri: S3Uri) -> Exception:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in ("NoSuchKey", "404", "NotFound"):
            return PayloadNotFoundError(f"payload {uri} does not exist")
        if code == "NoSuchBucket":
            return PayloadNotFoundError(f"bucket of {uri} does not exist")
        if status >= 500 or code in ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"):
            return TransientError(f"S3 failed for {uri}: {code}")
        return InvalidEventError(f"cannot read {uri}: {code}")
    return TransientError(f"S3 unreachable for {uri}: {type(exc).__name__}")


class PayloadStore:
    """Reads request payloads and writes large results; blocking boto3 calls run in threads."""

    def __init__(self, client: S3Client, allowed_buckets: frozenset[str], max_bytes: int, results_bucket: str) -> None:
        self.client = client
        self.allowed = allowed_buckets
        self.max_bytes = max_bytes
        self.results_bucket = results_bucket

    def check(self, uri: S3Uri) -> None:
        if uri.bucket not in self.allowed:
            raise InvalidEventError(
                f"dataref bucket {uri.bucket!r} is not allowed; allowed: {', '.join(sorted(self.allowed))}"
            )

    def _fetch(self, uri: S3Uri) -> bytes:
        self.check(uri)
        try:
            head = self.client.head_object(Bucket=uri.bucket, Key=uri.key)
            if int(head["ContentLength"]) > self.max_bytes:
                raise PayloadTooLargeError(
                    f"payload {uri} has {head['ContentLength']} bytes; the limit is {self.max_bytes}"
                )
            body = self.client.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read(self.max_bytes + 1)
        except (ClientError, BotoCoreError) as exc:
            raise _classify(exc, uri) from exc
        if len(body) > self.max_bytes:
            raise PayloadTooLargeError(f"payload {uri} is over the {self.max_bytes}-byte limit")
        return body

    def _put(self, key: str, body: bytes) -> str:
        uri = S3Uri(self.results_bucket, key)
        try:
            self.client.put_object(Bucket=uri.bucket, Key=key, Body=body, ContentType="application/json")
        except (ClientError, BotoCoreError) as exc:
            raise _classify(exc, uri) from exc
        return str(uri)

    async def fetch(self, uri: S3Uri) -> bytes:
        return await asyncio.to_thread(self._fetch, uri)

    async def put_result(self, key: str, body: bytes) -> str:
        return await asyncio.to_thread(self._put, key, body)
