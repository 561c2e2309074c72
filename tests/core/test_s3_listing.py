from __future__ import annotations

from pathlib import Path

import pytest

from core.processes import free_port, start_s3
from core.s3 import make_s3_client
from core.s3_listing import PAST_PREFIX, handles, name_of, page, token_of

NAMES = sorted(["a/1", "a/2", "a/b/3", "a/b/4", "a/c/5", "b/6"])


@pytest.mark.parametrize(
    ("prefix", "delimiter", "after", "max_keys", "expected"),
    [
        ("", None, "", 1000, (NAMES, [], None)),
        ("a/", None, "", 2, (["a/1", "a/2"], [], "a/2")),
        ("a/", None, "a/2", 2, (["a/b/3", "a/b/4"], [], "a/b/4")),
        ("a/", None, "a/b/4", 2, (["a/c/5"], [], None)),
        ("a/", "/", "", 1000, (["a/1", "a/2"], ["a/b/", "a/c/"], None)),
        ("a/", "/", "", 3, (["a/1", "a/2"], ["a/b/"], "a/b/" + PAST_PREFIX)),
        ("a/", "/", "a/b/" + PAST_PREFIX, 3, ([], ["a/c/"], None)),
        ("z/", None, "", 1000, ([], [], None)),
    ],
)
def test_page(
    prefix: str, delimiter: str | None, after: str, max_keys: int, expected: tuple[list[str], list[str], str | None]
) -> None:
    assert page(NAMES, prefix, delimiter, after, max_keys) == expected


@pytest.mark.parametrize(
    ("query", "handled"),
    [
        ({"list-type": "2", "prefix": "p/"}, True),
        ({"list-type": "2", "encoding-type": "url", "continuation-token": "x"}, True),
        ({"prefix": "p/"}, False),  # ListObjects v1
        ({"list-type": "2", "versions": ""}, False),
        ({"list-type": "2", "encoding-type": "other"}, False),
    ],
)
def test_handles(query: dict[str, str], handled: bool) -> None:
    assert handles(query) is handled


def test_tokens_round_trip_any_name() -> None:
    for name in ("a/b", "ünï/cödé", "x" + PAST_PREFIX):
        assert name_of(token_of(name)) == name


def test_listings_agree_with_what_was_written(tmp_path: Path) -> None:
    port = free_port()
    server = start_s3(port, data_dir=tmp_path / "s3", log_path=tmp_path / "s3.log")
    client = make_s3_client(f"http://127.0.0.1:{port}")
    try:
        client.create_bucket(Bucket="listed")
        written = sorted([f"r/{i:04d}.batch" for i in range(1203)] + ["r/sub/x", "r/sub/y", "r/with space&amp"])
        for name in written:
            client.put_object(Bucket="listed", Key=name, Body=name.encode())
        seen: list[str] = []
        for response in client.get_paginator("list_objects_v2").paginate(Bucket="listed", Prefix="r/"):
            seen += [o["Key"] for o in response.get("Contents", [])]
            assert all(o["Size"] == len(o["Key"]) and o["ETag"].startswith('"') for o in response.get("Contents", []))
        assert seen == written
        grouped = client.list_objects_v2(Bucket="listed", Prefix="r/", Delimiter="/", MaxKeys=5)
        assert [o["Key"] for o in grouped["Contents"]] == written[:5] and grouped["IsTruncated"]
        tail = client.list_objects_v2(Bucket="listed", Prefix="r/", Delimiter="/", StartAfter="r/1202.batch")
        assert [p["Prefix"] for p in tail["CommonPrefixes"]] == ["r/sub/"]
        assert [o["Key"] for o in tail["Contents"]] == ["r/with space&amp"]
        with pytest.raises(client.exceptions.NoSuchBucket):
            client.list_objects_v2(Bucket="missing")
    finally:
        server.stop()
