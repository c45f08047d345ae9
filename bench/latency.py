"""Push-to-consumer latency and expiry lateness, each beside its baseline.

    python -m bench.latency [--pushes 1000] [--expiries 200]

1. push (Python API) -> consumer call, against bare redis-py doing the least
   the service must do: ZADD+PUBLISH, the subscriber wakes, ZRANGE key 0 0.
4. lateness of the consumer call after the top's expire time, against an
   asyncio timer's own lateness in the same process.
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


async def main(pushes: int, expiries: int) -> None:
    server = start_server()
    try:
        await kamikaze_push(server.url, 50)  # warm up: scripts loaded, connections made
        base_push = await baseline_push(server.url, pushes)
        ours_push = await kamikaze_push(server.url, pushes)
        base_timer = await baseline_timer(expiries, 0.02)
        ours_expiry = await kamikaze_expiry(server.url, expiries, 0.02)
    finally:
        server.remove()
    print_table(
        ["measurement", "n", "p50 ms", "p99 ms", "mean ms"],
        [
            rows("baseline: ZADD+PUBLISH -> wake -> ZRANGE 0 0", base_push),
            rows("kamikaze: push -> consumer called", ours_push),
            rows("baseline: asyncio timer lateness", base_timer),
            rows("kamikaze: expiry -> consumer called, lateness", ours_expiry),
        ],
    )
    b50, b99, _ = summary(base_push)
    o50, o99, _ = summary(ours_push)
    t99 = summary(base_timer)[1]
    e50, e99, _ = summary(ours_expiry)
    print(
        f"summary: push->consumer p50 {o50 / b50:.2f}x, p99 {o99 / b99:.2f}x baseline "
        f"(targets 1.3x, 2x); expiry lateness p50 {ms(e50)} ms, p99 {ms(e99)} ms "
        f"= timer p99 + {ms(e99 - t99)} ms (target + 3 ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=1000)
    parser.add_argument("--expiries", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.pushes, args.expiries))
