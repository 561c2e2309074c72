"""S3 client construction and ``s3://`` URI handling shared by every component.

Endpoint comes from settings (``WAKESERVE_S3_ENDPOINT``; unset means AWS). Region and credentials come from
the standard ``AWS_*`` variables through boto3's own resolution chain, so nothing secret passes through
wakeserve's settings or logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class S3Uri:
    """A parsed ``s3://bucket/key`` reference."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        rest = uri[len("s3://") :]
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ValueError(f"s3 URI has no bucket: {uri!r}")
        return cls(bucket=bucket, key=key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def make_s3_client(endpoint_url: str | None = None, **config: Any) -> S3Client:
    """A boto3 S3 client for AWS (no endpoint) or any S3-compatible store at ``endpoint_url``."""
    import boto3
    from botocore.config import Config

    cfg = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=config.pop("connect_timeout", 5),
        read_timeout=config.pop("read_timeout", 30),
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.client("s3", endpoint_url=endpoint_url or None, config=cfg, **config)
