"""ListObjectsV2 answered straight from moto's state, for the persistent S3 server (:mod:`core.s3_store`).

moto renders a listing through its generic response serializer at about a millisecond per key, and the
broker's ``s3://`` storage lists a partition's batches on every fetch: with a few hundred batches a fetch
outlasts the consumer's wait and comes back empty, so consumers stall. The same document, written here
directly, takes a few milliseconds for a thousand keys. Supports prefix, delimiter, max-keys (up to 1000),
start-after, continuation tokens and ``encoding-type=url``; anything else goes to moto.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from urllib.parse import quote
from xml.sax.saxutils import escape

PAGE = 1000
HANDLED = frozenset(
    {
        "list-type",
        "prefix",
        "delimiter",
        "max-keys",
        "start-after",
        "continuation-token",
        "encoding-type",
        "fetch-owner",
    }
)
# Sorts after every key sharing the prefix, so the next page starts past a whole common prefix.
PAST_PREFIX = "\U0010ffff"


def handles(query: Mapping[str, str]) -> bool:
    return query.get("list-type") == "2" and set(query) <= HANDLED and query.get("encoding-type", "url") == "url"


def token_of(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def name_of(token: str) -> str:
    return base64.urlsafe_b64decode(token.encode()).decode()


def page(
    names: list[str], prefix: str, delimiter: str | None, after: str, max_keys: int
) -> tuple[list[str], list[str], str | None]:
    """(keys, common prefixes, the name to continue after or None) for one page of sorted ``names``."""
    keys: list[str] = []
    prefixes: list[str] = []
    for name in names:
        if not name.startswith(prefix) or name <= after:
            continue
        if len(keys) + len(prefixes) == max_keys:
            last = keys[-1] if not prefixes or (keys and keys[-1] > prefixes[-1]) else prefixes[-1] + PAST_PREFIX
            return keys, prefixes, last
        rest = name[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest.split(delimiter, 1)[0] + delimiter
            if not prefixes or prefixes[-1] != common:
                prefixes.append(common)
            continue
        keys.append(name)
    return keys, prefixes, None


def list_v2(bucket_name: str, query: Mapping[str, str]) -> bytes | None:
    """The ListBucketResult document, or None for moto to answer (unknown bucket: its error document)."""
    from moto.s3.models import FakeDeleteMarker, s3_backends

    located = s3_backends.bucket_accounts.get(bucket_name)
    if located is None:
        return None
    partition, account = located
    bucket = s3_backends[account][partition].buckets.get(bucket_name)
    if bucket is None:
        return None
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter") or None
    max_keys = min(PAGE, int(query.get("max-keys", PAGE)))
    token = query.get("continuation-token")
    after = name_of(token) if token else query.get("start-after", "")
    store = bucket.keys
    names = sorted(dict.copy(store))  # one atomic copy: writers run on other threads
    keys, prefixes, last = page(names, prefix, delimiter, after, max_keys)
    encode = query.get("encoding-type") == "url"

    def text(value: str) -> str:
        return escape(quote(value, safe="/") if encode else value)

    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
        f"<Name>{escape(bucket_name)}</Name><Prefix>{text(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>",
        f"<KeyCount>{len(keys) + len(prefixes)}</KeyCount><IsTruncated>{str(last is not None).lower()}</IsTruncated>",
    ]
    if delimiter:
        parts.append(f"<Delimiter>{text(delimiter)}</Delimiter>")
    if encode:
        parts.append("<EncodingType>url</EncodingType>")
    if token:
        parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
    if last is not None:
        parts.append(f"<NextContinuationToken>{token_of(last)}</NextContinuationToken>")
    if "start-after" in query:
        parts.append(f"<StartAfter>{text(query['start-after'])}</StartAfter>")
    for name in keys:
        key = store.get(name)
        if key is None or isinstance(key, FakeDeleteMarker):
            continue
        parts.append(
            f"<Contents><Key>{text(name)}</Key><LastModified>{key.last_modified_ISO8601}</LastModified>"
            f"<ETag>{escape(key.etag)}</ETag><Size>{key.size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
        )
    parts += [f"<CommonPrefixes><Prefix>{text(p)}</Prefix></CommonPrefixes>" for p in prefixes]
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()
