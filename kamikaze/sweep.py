"""The sweep: deletes expired packages anywhere in the queue, not only above
the top, in bounded Redis calls (a pass over the queue that skips what
cannot have expired); and keeps the payload index true to data that 0.1.x
wrote without it. Both are background work, paced by the time
Redis spends on them (a duty cycle), so that they never slow the foreground.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from kamikaze.queue import Queue

if TYPE_CHECKING:
    from kamikaze.metrics import Metrics

T = TypeVar("T")

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 10.0  # seconds between sweeps: the most an expired package stays
DUTY_CYCLE = 0.1  # the most of Redis' time a sweep or reconcile pass may take
RECONCILE_EVERY = 360  # sweeps between full reconcile passes even when sizes agree (1 h)


class Sweeper:
    """Every `interval` seconds: a pass that deletes what has expired; and
    when the queue holds more members than its index (or at the first sweep, and every
    RECONCILE_EVERY sweeps, for changes that cancel out and for members an
    earlier version wrote), walk both to bring them together."""

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
        deleted = await self.sweep_expired()
        queue_size, index_size = await self.queue.sizes()
        if self.metrics:
            self.metrics.set_queue_size(queue_size)
        self.sweeps += 1
        if queue_size > index_size or self.sweeps % RECONCILE_EVERY == 1:
            await self.reconcile()
            deleted += await self.sweep_expired()
        if deleted:
            log.info("swept %d expired package%s", deleted, "" if deleted == 1 else "s")
        return deleted

    async def sweep_expired(self) -> int:
        """One pass over the queue, deleting what has expired, in paced steps."""
        deleted, after = 0, None
        while True:
            removed, after = await paced(lambda: self.queue.sweep_step(after))  # noqa: B023
            deleted += removed
            if after is None:
                return deleted

    async def reconcile(self) -> None:
        """Walk the queue, then its index, in paced steps."""
        for walked in ("queue", "index"):
            changed, cursor = 0, 0
            while True:
                cursor, step_changed = await paced(
                    lambda: self.queue.reconcile_step(walked, cursor)  # noqa: B023
                )
                changed += step_changed
                if cursor == 0:
                    break
            if changed:
                log.debug("reconciled %d entries walking the %s", changed, walked)


async def paced(
    step: Callable[[], Awaitable[T]],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run one step of background work, then rest long enough that such
    steps take at most DUTY_CYCLE of the time: a step that kept Redis busy
    for d seconds is followed by d * (1 / DUTY_CYCLE - 1) of rest."""
    started = clock()
    result = await step()
    await sleep((clock() - started) * (1 / DUTY_CYCLE - 1))
    return result
