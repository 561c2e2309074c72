"""Expected failures of a command, each told in one line: what was tried, and what to set.

The command line maps an exception here once, for every command; anything not in the table is a bug and
keeps its traceback. ``--debug`` shows the traceback of every failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from wakeserve.endpoints import Endpoint, Resolution, Source


def _origin(endpoint: Endpoint, found: Resolution) -> str:
    if endpoint.source is Source.FLAG:
        return f"from {endpoint.flag}"
    if endpoint.source is Source.ENV:
        return f"from {endpoint.variable}"
    if endpoint.source is Source.CONTEXT:
        return f"from the running `wakeserve up` in {found.context_file}"
    return f"the default; no running `wakeserve up` found in {found.state_dir}"


def _hint(endpoint: Endpoint) -> str:
    setting = f"{endpoint.flag} or {endpoint.variable}"
    if endpoint.source is Source.DEFAULT:
        return f"start `wakeserve up` (or point WAKESERVE_STATE_DIR at its state directory), or set {setting}"
    if endpoint.source is Source.CONTEXT:
        return f"is that `wakeserve up` still serving? Otherwise set {setting}"
    return f"check {endpoint.flag if endpoint.source is Source.FLAG else endpoint.variable}"


def _unreachable(endpoint: Endpoint | None, what: str, tried: str | None, found: Resolution) -> str:
    if endpoint is None:
        return f"cannot reach {what}" + (f" at {tried}" if tried else "")
    return f"cannot reach {what} at {tried or endpoint.shown} ({_origin(endpoint, found)}): {_hint(endpoint)}"


def _kafka(exc: Exception, found: Resolution) -> str:
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    endpoint = found.endpoints.get("kafka_bootstrap")
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError) or type(exc).__name__ == "NoBrokersAvailable":
        return _unreachable(endpoint, "Kafka", None, found)
    return f"Kafka at {endpoint.shown if endpoint else '?'} failed: {exc}"


def _s3_credentials(exc: Exception, found: Resolution) -> str:
    endpoint = found.endpoints.get("s3_endpoint")
    where = f"{endpoint.shown} ({_origin(endpoint, found)})" if endpoint else "S3"
    if endpoint is not None and endpoint.source is Source.DEFAULT:
        return (
            f"no S3 credentials for {where}: start `wakeserve up` (its local S3 needs none), "
            "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return f"no S3 credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"


def _s3_unreachable(exc: Exception, found: Resolution) -> str:
    url = urlsplit(getattr(exc, "kwargs", {}).get("endpoint_url") or "")
    tried = f"{url.scheme}://{url.netloc}" if url.netloc else None
    return _unreachable(found.endpoints.get("s3_endpoint"), "S3", tried, found)


def _s3_refused(exc: Exception, found: Resolution) -> str:
    error: dict[str, Any] = getattr(exc, "response", {}).get("Error", {})
    endpoint = found.endpoints.get("s3_endpoint")
    operation = getattr(exc, "operation_name", "a request")
    where = endpoint.shown if endpoint else "S3"
    return f"S3 at {where} refused {operation}: {error.get('Code', '?')} {error.get('Message', '')}".rstrip()


def _s3_other(exc: Exception, found: Resolution) -> str:
    endpoint = found.endpoints.get("s3_endpoint")
    return f"S3 at {endpoint.shown if endpoint else '?'} failed: {exc}"


def _http_unreachable(exc: Exception, found: Resolution) -> str:
    try:
        url = exc.request.url  # type: ignore[attr-defined]
    except RuntimeError:  # an error raised before any request was built
        url = None
    tried = f"{url.scheme}://{url.netloc.decode()}" if url is not None else None
    return _unreachable(found.endpoints.get("gateway"), "the gateway", tried, found)


def _http_status(exc: Exception, found: Resolution) -> str:
    response = exc.response  # type: ignore[attr-defined]
    try:
        reason = str(response.json().get("error", response.text))
    except ValueError:
        reason = response.text.strip()[:200]
    line = f"{response.request.url} answered {response.status_code}: {reason}"
    if response.status_code == 401:
        line += " (set WAKESERVE_GATEWAY_TOKEN to the gateway's token)"
    return line


def _http_other(exc: Exception, found: Resolution) -> str:
    return f"talking to the gateway failed: {type(exc).__name__}: {exc}"


def _invalid_setting(exc: Exception, found: Resolution) -> str:
    first = exc.errors()[0]  # type: ignore[attr-defined]
    name = ".".join(str(part) for part in first.get("loc", ())) or "?"
    return f"invalid setting {name} (flag or WAKESERVE_{name.upper()}): {first.get('msg', exc)}"


def _file(exc: Exception, found: Resolution) -> str:
    return f"{getattr(exc, 'strerror', None) or exc}: {getattr(exc, 'filename', '')}"


def _message(exc: Exception, found: Resolution) -> str:
    return str(getattr(exc, "message", exc))


Explainer = Callable[[Exception, Resolution], str]


def table() -> list[tuple[tuple[type[BaseException], ...], Explainer]]:
    """Exception types in the order they are matched (subclasses before their bases), each with its line."""
    import botocore.exceptions as boto
    import httpx
    import pydantic
    from kafka.errors import KafkaError

    from core.errors import WakeserveError

    return [
        ((WakeserveError,), _message),
        ((KafkaError,), _kafka),
        ((boto.NoCredentialsError, boto.PartialCredentialsError), _s3_credentials),
        ((boto.ConnectionError, boto.HTTPClientError), _s3_unreachable),
        ((boto.ClientError,), _s3_refused),
        ((boto.BotoCoreError,), _s3_other),
        ((httpx.TransportError,), _http_unreachable),
        ((httpx.HTTPStatusError,), _http_status),
        ((httpx.HTTPError,), _http_other),
        ((pydantic.ValidationError,), _invalid_setting),
    ]


def explain(exc: BaseException, found: Resolution) -> str | None:
    """The one line for an expected failure; None for anything else (a bug, whose traceback is wanted)."""
    if not isinstance(exc, Exception):
        return None
    for types, explainer in table():
        if isinstance(exc, types):
            return explainer(exc, found)
    if isinstance(exc, OSError) and exc.filename is not None:
        return _file(exc, found)
    return None
