from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kafka.net.inet import KafkaNetSocket

from core.processes import ChildProcess, free_port, start_kafka, start_s3
from core.s3 import make_s3_client


@dataclass
class S3Server:
    process: ChildProcess
    endpoint: str

    def client(self):  # type: ignore[no-untyped-def]
        return make_s3_client(self.endpoint)


@pytest.fixture(scope="session", autouse=True)
def _aws_test_credentials() -> Iterator[None]:
    # moto accepts any signature; these are placeholders, not secrets.
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ACCESS_KEY_ID", "wakeserve-test")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "wakeserve-test")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def _close_refused_kafka_sockets() -> Iterator[None]:
    """kafka-python 3.0 (kafka/net/inet.py) leaves the socket of a refused connect open until the garbage
    collector finds it, which then warns in whichever test runs at the time: every test that stops or restarts
    a broker under a live client meets it. Close that socket where the connect fails."""
    refused = KafkaNetSocket.sock_connect

    async def sock_connect(self: KafkaNetSocket, net: Any, sock: Any, sockaddr: Any, timeout_at: Any = None) -> Any:
        try:
            return await refused(self, net, sock, sockaddr, timeout_at=timeout_at)
        except BaseException:
            sock.close()
            raise

    mp = pytest.MonkeyPatch()
    mp.setattr(KafkaNetSocket, "sock_connect", sock_connect)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory, _aws_test_credentials: None) -> Iterator[S3Server]:
    port = free_port()
    process = start_s3(port, log_path=tmp_path_factory.mktemp("moto") / "moto.log")
    yield S3Server(process, f"http://127.0.0.1:{port}")
    process.stop()


@dataclass
class KafkaServer:
    process: ChildProcess
    bootstrap: str


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    """The tansu broker (in-memory storage) on a free loopback port."""
    port = free_port()
    process = start_kafka(port, log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    yield KafkaServer(process, f"127.0.0.1:{port}")
    process.stop()
