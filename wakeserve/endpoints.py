"""Where a command connects, and why: flag > ``WAKESERVE_*`` variable > the running ``up``'s context > default.

The resolved :class:`Endpoint` keeps its :class:`Source`, so a failure can say what was tried and what to set.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from events.settings import EventSettings
from wakeserve.context import Context, context_path
from wakeserve.settings import UpSettings

DEFAULT_GATEWAY = "http://127.0.0.1:8080"


class Source(enum.StrEnum):
    FLAG = "flag"
    ENV = "environment"
    CONTEXT = "context"
    DEFAULT = "default"


@dataclass(frozen=True)
class Endpoint:
    """One address a command uses, where it came from, and the flag and variable that set it."""

    what: str
    value: str | None
    source: Source
    flag: str
    variable: str

    @property
    def shown(self) -> str:
        return self.value or "AWS"


@dataclass
class Resolution:
    """What a command found: the state directory, the running ``up`` (if any) and the endpoints it uses."""

    state_dir: Path
    context: Context | None = None
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    @property
    def context_file(self) -> Path:
        return context_path(self.state_dir)

    def events(self, flags: Mapping[str, Any]) -> EventSettings:
        """Event settings from ``flags`` (only the given ones), the environment, then the context."""
        settings = EventSettings(**{k: v for k, v in flags.items() if v is not None})
        explicit = settings.model_fields_set
        update: dict[str, Any] = {}
        if self.context is not None:
            if "kafka_bootstrap" not in explicit:
                update["kafka_bootstrap"] = self.context.kafka_bootstrap
            if "s3_endpoint" not in explicit:
                update["s3_endpoint"] = self.context.s3_endpoint
        settings = settings.model_copy(update=update)
        for name, what, flag in (
            ("kafka_bootstrap", "Kafka", "--kafka-bootstrap"),
            ("s3_endpoint", "S3", "--s3-endpoint"),
        ):
            self.endpoints[name] = Endpoint(
                what, getattr(settings, name), _source(name, flags, explicit, update), flag, f"WAKESERVE_{name.upper()}"
            )
        return settings

    def local_s3_credentials(self) -> dict[str, str]:
        """The placeholder credentials of ``up``'s embedded S3 server, when that is the S3 in use."""
        s3 = self.endpoints.get("s3_endpoint")
        if self.context is None or s3 is None or s3.value != self.context.s3_endpoint:
            return {}
        return dict(self.context.s3_credentials)

    def gateway(self, url_flag: str | None, flag: str = "--url") -> Endpoint:
        """The gateway: ``--url``, else ``WAKESERVE_HTTP_PORT`` on loopback, else the context, else :8080."""
        up = UpSettings()
        if url_flag:
            endpoint = Endpoint("the gateway", url_flag.rstrip("/"), Source.FLAG, flag, "WAKESERVE_HTTP_PORT")
        elif "http_port" in up.model_fields_set:
            url = f"http://127.0.0.1:{up.http_port}"
            endpoint = Endpoint("the gateway", url, Source.ENV, "--url", "WAKESERVE_HTTP_PORT")
        elif self.context is not None:
            endpoint = Endpoint("the gateway", self.context.gateway_url, Source.CONTEXT, "--url", "WAKESERVE_HTTP_PORT")
        else:
            endpoint = Endpoint("the gateway", DEFAULT_GATEWAY, Source.DEFAULT, "--url", "WAKESERVE_HTTP_PORT")
        self.endpoints["gateway"] = endpoint
        return endpoint

    def admin_token_for(self, url: str) -> str | None:
        """The context's admin token (rollouts), only for the context's own gateway."""
        if self.context is not None and self.context.admin_token and same_origin(url, self.context.gateway_url):
            return self.context.admin_token
        return None

    def token_for(self, url: str) -> str | None:
        """``WAKESERVE_GATEWAY_TOKEN``, else the context's token, but only for the context's own gateway."""
        token = UpSettings().gateway_token
        if token is not None:
            return token.get_secret_value()
        if self.context is not None and self.context.gateway_token and same_origin(url, self.context.gateway_url):
            return self.context.gateway_token
        return None


def same_origin(url: str, base: str) -> bool:
    """Scheme, host and port equal: a token for ``base`` is never sent to a look-alike URL."""
    a, b = urlsplit(url), urlsplit(base)
    try:
        return (a.scheme, a.hostname, a.port or 0) == (b.scheme, b.hostname, b.port or 0) and not a.username
    except ValueError:
        return False


def _source(name: str, flags: Mapping[str, Any], explicit: set[str], update: Mapping[str, Any]) -> Source:
    if flags.get(name) is not None:
        return Source.FLAG
    if name in explicit:
        return Source.ENV
    if name in update:
        return Source.CONTEXT
    return Source.DEFAULT


def state_dir(flag: str | None) -> Path:
    """``--state-dir``, else ``WAKESERVE_STATE_DIR``, else ``.wakeserve`` (where ``up`` writes by default)."""
    return Path(flag) if flag else UpSettings().state_dir
