"""Push-to-consumer latency and expiry lateness, each beside its baseline.

    python -m bench.latency [--pushes 1000] [--expiries 200]

1. push (Python API) -> consumer call, against bare redis-py doing the least
   the service must do: ZADD+PUBLISH, the subscriber wakes, ZRANGE key 0 0.
4. lateness of the consumer call after the top's expire time, against the
   event loop's own timer lateness in the same process (issue 15.3: p50
   within timer p50 + 0.5 ms, p99 within timer p99 + 1.5 ms, never early);
   both rows on asyncio's loop and on uvloop's.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import ms, print_table, start_server, summary
from kamikaze.consumer import Runner
from kamikaze.queue import Queue
from kamikaze.runtime import stop_task
from kamikaze.service import Dispatcher
from kamikaze.settings import Settings


async def baseline_push(url: str, count: int) -> list[float]:
    from redis.asyncio import Redis

    producer, subscriber = Redis.from_url(url), Redis.from_url(url)
    pubsub = subscriber.pubsub()
    await pubsub.subscribe("baseline")
    await pubsub.get_message(timeout=1)
    samples = []
    for i in range(count):
        started = time.perf_counter()
        await producer.zadd("baseline", {f"{i}": -i})
        await producer.publish("baseline", "new_message")
        await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        await subscriber.zrange("baseline", 0, 0, withscores=True)
        samples.append(time.perf_counter() - started)
    await pubsub.aclose()
    await producer.aclose()
    await subscriber.aclose()
    return samples


async def kamikaze_push(url: str, count: int) -> list[float]:
    settings = Settings(redis_url=url, key="bench-push")
    client = settings.client()
    await client.delete(settings.key)
    called = asyncio.Event()
    runner = Runner(lambda package: called.set())
    watcher = asyncio.create_task(Dispatcher(settings, runner).run())
    await asyncio.wait_for(called.wait(), 5)
    queue = Queue(client, settings.key)
    samples = []
    for i in range(count):
        called.clear()
        started = time.perf_counter()
        await queue.push(f"p{i}", 600, -i)  # each push is the new top
        await asyncio.wait_for(called.wait(), 5)
        samples.append(time.perf_counter() - started)
    await stop_task(watcher, 5)
    await client.aclose()
    return samples


async def baseline_timer(count: int, delay: float) -> list[float]:
    loop = asyncio.get_running_loop()
    samples = []
    for _ in range(count):
        fired = loop.create_future()
        due = time.time() + delay
        loop.call_later(delay, lambda f=fired: f.set_result(time.time()))
        samples.append(await fired - due)
    return samples


async def kamikaze_expiry(url: str, count: int, ttl: float) -> list[float]:
    settings = Settings(redis_url=url, key="bench-expiry")
    calls: list[tuple[float, str | None]] = []
    called = asyncio.Event()

    def consumer(package: object) -> None:
        calls.append((time.time(), getattr(package, "payload", None)))
        called.set()

    watcher = asyncio.create_task(Dispatcher(settings, Runner(consumer)).run())
    await asyncio.wait_for(called.wait(), 5)
    client = settings.client()
    queue = Queue(client, settings.key)
    samples = []
    for i in range(count):
        package = await queue.push(f"e{i}", ttl, 1)
        assert package.expire_time is not None
        while not (calls and calls[-1][1] is None and calls[-1][0] >= package.expire_time):
            called.clear()
            await asyncio.wait_for(called.wait(), 5)
        samples.append(calls[-1][0] - package.expire_time)
    await stop_task(watcher, 5)
    await client.aclose()
    return samples


def rows(name: str, samples: list[float]) -> list[str]:
    p50, p99, mean = summary(samples)
    return [name, str(len(samples)), ms(p50), ms(p99), ms(mean)]


async def measure(pushes: int, expiries: int) -> dict[str, list[float]]:
    server = start_server()
    try:
        await kamikaze_push(server.url, 50)  # warm up: scripts loaded, connections made
        return {
            "push base": await baseline_push(server.url, pushes),
            "push": await kamikaze_push(server.url, pushes),
            "timer": await baseline_timer(expiries, 0.02),
            "expiry": await kamikaze_expiry(server.url, expiries, 0.02),
        }
    finally:
        server.remove()


def main(pushes: int, expiries: int) -> None:
    """Rows 1 and 4 on asyncio's event loop and on uvloop's (the service's)."""
    import uvloop

    results = {}
    for name, factory in (("asyncio", asyncio.new_event_loop), ("uvloop", uvloop.new_event_loop)):
        with asyncio.Runner(loop_factory=factory) as runner:
            results[name] = runner.run(measure(pushes, expiries))
    print_table(
        ["loop", "measurement", "n", "p50 ms", "p99 ms", "mean ms"],
        [
            [loop, *rows(label, samples[key])]
            for loop, samples in results.items()
            for key, label in (
                ("push base", "baseline: ZADD+PUBLISH -> wake -> ZRANGE 0 0"),
                ("push", "kamikaze: push -> consumer called"),
                ("timer", "baseline: the loop's timer lateness"),
                ("expiry", "kamikaze: expiry -> consumer called, lateness"),
            )
        ],
    )
    for loop, samples in results.items():
        b50, b99, _ = summary(samples["push base"])
        o50, o99, _ = summary(samples["push"])
        t50, t99, _ = summary(samples["timer"])
        e50, e99, _ = summary(samples["expiry"])
        early = sum(1 for late in samples["expiry"] if late < 0)
        print(
            f"summary ({loop}): push->consumer p50 {o50 / b50:.2f}x, p99 {o99 / b99:.2f}x "
            f"baseline (targets 1.3x, 2x); expiry lateness p50 {ms(e50)} ms = timer p50 + "
            f"{ms(e50 - t50)} ms (target + 0.5 ms), p99 {ms(e99)} ms = timer p99 + "
            f"{ms(e99 - t99)} ms (target + 1.5 ms); early calls: {early} (target 0)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=1000)
    parser.add_argument("--expiries", type=int, default=200)
    args = parser.parse_args()
    main(args.pushes, args.expiries)
