"""The context file: how every other command finds a running ``wakeserve up``.

``up`` writes ``<state dir>/context.json`` once its gateway serves and removes it at a clean shutdown. It names
the endpoints of that one machine: the gateway, its ingress, the Kafka bootstrap, the S3 endpoint, the
placeholder credentials the embedded S3 server accepts (never real ones), the gateway token, if any, and the
replicas' admin token. The file is readable by its owner only, because of those tokens. A context whose ``up``
process is gone is stale and ignored, so a crashed ``up`` does not send commands to dead ports.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from core.errors import WakeserveError

CONTEXT_FILE = "context.json"
# The embedded S3 server (moto) accepts any signature: these only keep boto3 from hunting for real ones.
LOCAL_S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "wakeserve-local",
    "AWS_SECRET_ACCESS_KEY": "wakeserve-local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class ContextError(WakeserveError):
    """The context file exists but cannot be read."""

    code = "bad_context"


class Context(BaseModel):
    """The endpoints of a running ``wakeserve up``, as it wrote them."""

    pid: int = Field(description="Process id of `wakeserve up`; the context is stale once it is gone.")
    gateway_url: str = Field(description="Base URL of the gateway (/v2, /wakeserve/status, rollouts).")
    ingress_url: str = Field(description="URL of the CloudEvents ingress (POST).")
    kafka_bootstrap: str = Field(description="Bootstrap servers of the broker `up` uses.")
    s3_endpoint: str | None = Field(None, description="S3 endpoint `up` uses; None means AWS.")
    s3_credentials: dict[str, str] = Field(
        default_factory=dict, description="AWS_* placeholders of the embedded S3 server; empty for a real store."
    )
    gateway_token: str | None = Field(None, description="Bearer token the gateway requires, if any.")
    admin_token: str | None = Field(
        None, description="Bearer token of the replicas' admin listeners (control API), for this machine's operator."
    )


def context_path(state_dir: Path) -> Path:
    return state_dir / CONTEXT_FILE


def write(state_dir: Path, context: Context) -> Path:
    """Write the context atomically, owner-only (it may hold the gateway token)."""
    path = context_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(context.model_dump_json(indent=2))
    os.replace(partial, path)
    return path


def remove(state_dir: Path, pid: int) -> None:
    """Remove the context if it is the one process ``pid`` wrote (never another ``up``'s)."""
    path = context_path(state_dir)
    with contextlib.suppress(FileNotFoundError, ContextError):
        if _load(path).pid == pid:
            path.unlink()


def find(state_dir: Path) -> Context | None:
    """The context of a running ``up`` in ``state_dir``; None when there is none or it is stale."""
    path = context_path(state_dir)
    try:
        context = _load(path)
    except FileNotFoundError:
        return None
    return context if process_alive(context.pid) else None


def _load(path: Path) -> Context:
    try:
        return Context.model_validate_json(path.read_bytes())
    except (ValidationError, ValueError) as exc:
        raise ContextError(f"unreadable context file {path} ({type(exc).__name__}); delete it") from None
    except PermissionError:
        raise ContextError(f"context file {path} is not readable by this user") from None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
