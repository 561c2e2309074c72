"""The ``WAKESERVE_*`` fields that bound an HTTP listener, shared by the settings of every deployable that has one."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from core.listener import ListenerLimits

_DEFAULTS = ListenerLimits()


class ListenerSettings(BaseSettings):
    """Connection, header and body bounds of every HTTP listener the deployable runs (see :mod:`core.listener`)."""

    header_timeout_s: float = Field(
        _DEFAULTS.header_timeout_s,
        gt=0,
        description="Seconds a client has, from connecting (or starting a keep-alive request), to send its "
        "request headers; past it the answer is 408 and the connection closes.",
    )
    body_timeout_s: float = Field(
        _DEFAULTS.body_timeout_s,
        gt=0,
        description="Seconds a client has, once its headers are in, to send its whole request body; past it 408.",
    )
    max_connections: int = Field(
        _DEFAULTS.max_connections,
        ge=1,
        description="Open connections per listener; one more is answered 503 and closed.",
    )
    max_header_bytes: int = Field(
        _DEFAULTS.max_header_bytes, ge=1024, description="Largest request line plus headers; more is 431."
    )

    def listener_limits(self, max_body_bytes: int) -> ListenerLimits:
        return ListenerLimits(
            header_timeout_s=self.header_timeout_s,
            body_timeout_s=self.body_timeout_s,
            max_connections=self.max_connections,
            max_header_bytes=self.max_header_bytes,
            max_body_bytes=max_body_bytes,
        )
