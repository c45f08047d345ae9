"""The sweep: deletes expired packages anywhere in the queue, not only above
the top, in bounded Redis calls; and keeps the expiry index true to data
that 0.1.x wrote without it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from kamikaze.queue import Queue

if TYPE_CHECKING:
    from kamikaze.metrics import Metrics

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 10.0  # seconds between sweeps: the most an expired package stays
RECONCILE_PAUSE = 0.0  # between reconcile steps: yield, so Redis and the loop serve others
RECONCILE_EVERY = 360  # sweeps between full reconcile passes even when sizes agree (1 h)


class Sweeper:
    """Every `interval` seconds: delete what the index says has expired; and
    when queue and index disagree in size (or every RECONCILE_EVERY sweeps,
    for changes that cancel out), walk both to bring them together."""

    def __init__(
        self, queue: Queue, interval: float = SWEEP_INTERVAL, metrics: Metrics | None = None
    ) -> None:
        self.queue = queue
        self.interval = interval
        self.metrics = metrics
        self.sweeps = 0

    async def run(self) -> None:
        """Sweep until cancelled; an unreachable Redis only skips a round
        (the watcher reports outages)."""
        from redis.exceptions import RedisError

        while True:
            try:
                await self.sweep_once()
            except (RedisError, OSError) as exc:
                log.debug("sweep skipped: %s", exc)
            await asyncio.sleep(self.interval)

    async def sweep_once(self) -> int:
        deleted = await self.queue.sweep()
        queue_size, index_size = await self.queue.sizes()
        if self.metrics:
            self.metrics.set_queue_size(queue_size)
        self.sweeps += 1
        if queue_size != index_size or self.sweeps % RECONCILE_EVERY == 0:
            await self.reconcile()
            deleted += await self.queue.sweep()
        if deleted:
            log.info("swept %d expired package%s", deleted, "" if deleted == 1 else "s")
        return deleted

    async def reconcile(self) -> None:
        """Walk the queue, then the index, in bounded steps."""
        for walked in ("queue", "index", "payloads"):
            changed, cursor = 0, 0
            while True:
                cursor, step_changed = await self.queue.reconcile_step(walked, cursor)
                changed += step_changed
                if cursor == 0:
                    break
                await asyncio.sleep(RECONCILE_PAUSE)
            if changed:
                log.debug("reconciled %d entries walking the %s", changed, walked)
