"""A replica started by a supervisor (``wakeserve up``) stops when that supervisor is gone.

Replicas run in their own session, so a supervisor killed without a chance to drain them (SIGKILL, OOM) would
leave them serving and, worse, consuming from Kafka in its consumer group. The parent's death is seen as a
change of ``getppid()``; the replica then sends itself SIGTERM and drains as on any other stop.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

log = logging.getLogger(__name__)


def stop_with_supervisor(supervisor_pid: int, interval_s: float = 1.0) -> threading.Thread:
    """Watch ``supervisor_pid`` (this process's parent) on a daemon thread; SIGTERM ourselves once it is gone."""

    def watch() -> None:
        while os.getppid() == supervisor_pid:
            time.sleep(interval_s)
        log.warning("supervisor %d is gone; stopping this replica", supervisor_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="supervisor-watch", daemon=True)
    thread.start()
    return thread
