from __future__ import annotations

from pathlib import Path

import pytest

from wakeserve.embedded import s3_data_dir, state_line
from wakeserve.settings import UpSettings


@pytest.mark.parametrize(
    ("embedded_s3", "embedded_kafka", "expected"),
    [
        (True, True, "{dir} (S3 objects, broker topics and offsets; kept across restarts)"),
        (True, False, "{dir} (S3 objects; kept across restarts)"),
        (False, True, "broker in memory (S3 is external): a restart of up drops unconsumed events"),
        (False, False, None),
    ],
)
def test_the_start_up_line_says_where_state_lives(
    tmp_path: Path, embedded_s3: bool, embedded_kafka: bool, expected: str | None
) -> None:
    settings = UpSettings(state_dir=tmp_path)
    line = state_line(settings, embedded_s3=embedded_s3, embedded_kafka=embedded_kafka)
    assert s3_data_dir(settings) == tmp_path / "s3"
    assert line == ({} if expected is None else {"state": expected.format(dir=tmp_path / "s3")})
