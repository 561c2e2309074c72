"""The status table of ``wakeserve up`` and the ``wakeserve status`` command that reads it from the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich import box
from rich.live import Live
from rich.table import Table

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


def _cell(value: Any) -> str:
    """Numbers as numbers, anything not measured yet as ``-`` (never ``None``)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def rows(status: Mapping[str, Any], now: float | None = None) -> list[tuple[str, ...]]:
    """One row of cells per function, in name order."""
    now = time.time() if now is None else now
    return [
        (
            name,
            _cell(f.get("replicas")),
            _cell(f.get("ready")),
            _cell(f.get("inflight")),
            _cell(f.get("held", 0)),
            _cell(f.get("lag")),
            _cell(f.get("cold_starts")),
            versions(f),
            _last_scale(f.get("last_scale"), now),
        )
        for name, f in sorted(status.get("functions", {}).items())
    ]


def render_table(status: Mapping[str, Any], now: float | None = None) -> str:
    table = [COLUMNS, *rows(status, now)]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + "  " + row[-1] for row in table
    )


def render_lines(status: Mapping[str, Any], now: float | None = None) -> list[str]:
    """Plain ``status: name key=value ...`` lines, one per function (logs and pipes, not terminals)."""
    return [
        "status: "
        + row[0]
        + " "
        + " ".join(f"{key.replace(' ', '_')}={cell}" for key, cell in zip(COLUMNS[1:], row[1:]))
        for row in rows(status, now)
    ]


def render_rich(status: Mapping[str, Any], now: float | None = None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in COLUMNS:
        # Counts never wrap; on a narrow terminal the free-text columns fold onto more lines instead.
        wide = column in ("versions", "last scale event")
        table.add_column(column, no_wrap=not wide, ratio=2 if wide else None, overflow="fold")
    for row in rows(status, now):
        table.add_row(*row)
    return table


def _signature(status: Mapping[str, Any]) -> tuple[Any, ...]:
    # Without the "seconds ago" column, which changes every second while nothing happens.
    return tuple(row[:-1] for row in rows(status))


async def follow(
    status: Callable[[], Mapping[str, Any]], stop: asyncio.Event, *, live: bool, interval_s: float = 10.0
) -> None:
    """Until ``stop``: on a terminal, a table redrawn in place every second; elsewhere, plain lines every
    ``interval_s`` seconds when something changed."""
    if live:
        with Live(render_rich(status()), auto_refresh=False, transient=False) as display:
            while not await _stopped(stop, 1.0):
                display.update(render_rich(status()), refresh=True)
        return
    last: tuple[Any, ...] | None = None
    while True:
        snapshot = status()
        if _signature(snapshot) != last:
            last = _signature(snapshot)
            print("\n".join(render_lines(snapshot)), flush=True)
        if await _stopped(stop, interval_s):
            return


async def _stopped(stop: asyncio.Event, within_s: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), within_s)
    return stop.is_set()


def fetch(url: str, token: str | None, timeout: float = 5.0) -> dict[str, Any]:
    import httpx

    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{url.rstrip('/')}/wakeserve/status", headers=headers, timeout=timeout)
    response.raise_for_status()
    return dict(response.json())


def command(url: str, token: str | None, as_json: bool) -> int:
    status = fetch(url, token)
    print(json.dumps(status, indent=2) if as_json else render_table(status))
    return 0
