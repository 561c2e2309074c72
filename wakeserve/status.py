"""The status table of ``wakeserve up`` and the ``wakeserve status`` command that reads it from the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

COLUMNS = ("function", "replicas", "ready", "inflight", "held", "lag", "cold_starts", "versions", "last scale event")


def banner(endpoints: Mapping[str, str], functions: Sequence[str]) -> str:
    lines = ["wakeserve is up; every function starts at zero replicas."]
    lines += [f"  {name:<8} {url}" for name, url in endpoints.items()]
    lines.append(f"  functions: {', '.join(functions)}")
    lines.append("  v2:     POST {gateway}/v2/models/<function>/infer".format(gateway=endpoints.get("gateway", "")))
    lines.append("  events: POST {gateway}/events".format(gateway=endpoints.get("gateway", "")))
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


def _last_scale(event: Mapping[str, Any] | None, now: float) -> str:
    if not event:
        return "-"
    return f"{event['before']}->{event['after']} {now - event['at']:.0f}s ago ({event['reason']})"


def versions(f: Mapping[str, Any]) -> str:
    """Replicas per served version, and the rollout in progress: ``v1:2 -> v2 25% (canary)``."""
    counts: dict[str, int] = {}
    for pod in f.get("pods", []):
        if pod.get("version"):
            counts[pod["version"]] = counts.get(pod["version"], 0) + 1
    text = " ".join(f"{v}:{n}" for v, n in sorted(counts.items())) or "-"
    rollout = (f.get("rollout") or {}).get("rollout")
    if rollout:
        text += f" -> {rollout['candidate']} {rollout['percent']:g}% ({rollout['phase']})"
    return text


def render_table(status: Mapping[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    rows = [COLUMNS]
    for name, f in sorted(status.get("functions", {}).items()):
        rows.append(
            (
                name,
                str(f["replicas"]),
                str(f["ready"]),
                str(f["inflight"]),
                str(f.get("held", 0)),
                str(f["lag"]),
                str(f["cold_starts"]),
                versions(f),
                _last_scale(f.get("last_scale"), now),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + "  " + row[-1] for row in rows
    )


def _signature(status: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        (n, f["replicas"], f["ready"], f["cold_starts"]) for n, f in sorted(status.get("functions", {}).items())
    )


async def follow(status: Callable[[], Mapping[str, Any]], stop: asyncio.Event, *, live: bool, header: str) -> None:
    """Until ``stop``: redraw the table every second on a terminal, else print it when replicas change."""
    last: tuple[Any, ...] | None = None
    while not stop.is_set():
        snapshot = status()
        if live:
            print("\x1b[H\x1b[J" + header + "\n\n" + render_table(snapshot), flush=True)
        elif _signature(snapshot) != last:
            last = _signature(snapshot)
            print(render_table(snapshot), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def fetch(url: str, token: str | None, timeout: float = 5.0) -> dict[str, Any]:
    import httpx

    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{url.rstrip('/')}/wakeserve/status", headers=headers, timeout=timeout)
    response.raise_for_status()
    return dict(response.json())


def command(url: str, token: str | None, as_json: bool) -> int:
    import httpx

    try:
        status = fetch(url, token)
    except httpx.HTTPError as exc:
        print(f"cannot read status from {url}: {exc} (is `wakeserve up` running?)")
        return 1
    print(json.dumps(status, indent=2) if as_json else render_table(status))
    return 0
