"""Push -> DOM update in a browser (kamikaze web), beside push -> consumer call.

    python -m bench.web [--pushes 300] [--backlog 10] [--viewers 100] [--gap 0.1]

One run, one throwaway Redis server, the same pushes observed three ways:

- a real `kamikaze service` process, whose consumer prints when it is called;
- a real `kamikaze web` process, watched by an event-stream client (aiohttp)
  and by its page in Chromium (Debian's, through Playwright), where a
  MutationObserver notes when the top row shows the new payload;

then the page again while `--viewers` more event streams are open (read
by another process, as other machines would).

Each push (Python API, from this process) becomes the new top; once every
observer has seen it, it is removed again (so the queue stays at `--backlog`
packages plus one) and the next push waits `--gap` seconds, past the web
process's 50 ms minimum between readings. Times are the machine's wall
clock (time.time() in every process, performance.timeOrigin + now() in the
page), all on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from bench.common import ms, print_table, start_server, summary
from tests.webpage import CHROMIUM, CHROMIUM_ARGS, SERVING

KEY = "bench-web"
OBSERVE_TOP = """() => {
  window.seen = {};
  const body = document.querySelector("#packages tbody");
  new MutationObserver(() => {
    const cell = body.querySelector("tr.top td.payload");
    if (cell && !(cell.textContent in window.seen)) {
      window.seen[cell.textContent] = performance.timeOrigin + performance.now();
    }
  }).observe(body, {childList: true, subtree: true});
}"""


def consumer(package: Any) -> None:
    """The service's consumer: when it was called, and with what."""
    if package is not None:
        print(f"called {time.time():.6f} {package.payload}", flush=True)


class Process:
    """A `kamikaze` subprocess; its output lines, watched for `pattern`."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kamikaze", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            await self.lines.put(line.decode(errors="replace").rstrip("\n"))

    async def expect(self, text: str, timeout: float = 15) -> str:
        async with asyncio.timeout(timeout):
            while text not in (line := await self.lines.get()):
                pass
        return line

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        await self.process.wait()
        self.reader.cancel()


class Seen:
    """When each payload was first seen on top, by one observer."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = asyncio.Event()

    def note(self, payload: str, when: float) -> None:
        self.at.setdefault(payload, when)
        self.changed.set()

    async def wait_for(self, payload: str, timeout: float = 10) -> float:
        async with asyncio.timeout(timeout):
            while payload not in self.at:
                self.changed.clear()
                await self.changed.wait()
        return self.at[payload]


async def follow_service(service: Process, seen: Seen) -> None:
    while True:
        line = await service.lines.get()
        if line.startswith("called "):
            _, when, payload = line.split(" ", 2)
            seen.note(payload, float(when))


async def follow_stream(session: Any, url: str, seen: Seen | None, opened: Seen) -> None:
    """An event-stream client: notes each new top payload when its event arrives."""
    async with session.get(url + "events") as response:
        async for line in response.content:
            if not line.startswith(b"data: "):
                continue
            when = time.time()
            opened.note("open", when)
            if seen is None:
                continue  # a bystander: reading its events is all it does
            state = json.loads(line[6:])
            if state["packages"]:
                seen.note(state["packages"][0]["payload"], when)


@contextlib.asynccontextmanager
async def streams(session: Any, url: str, count: int, seen: Seen | None) -> AsyncIterator[None]:
    opened = [Seen() for _ in range(count)]
    tasks = [asyncio.create_task(follow_stream(session, url, seen, o)) for o in opened]
    try:
        for o in opened:
            await o.wait_for("open")
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def bystanders(url: str, count: int) -> AsyncIterator[None]:
    """`count` more viewers, in a process of their own (as other machines would
    be): they read every event and do nothing with it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.web", "--bystanders", url, "--viewers", str(count),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.strip() == b"open", line
        yield
    finally:
        process.terminate()
        await process.wait()


async def stand_by(url: str, count: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        streams(session, url, count, None),
    ):
        print("open", flush=True)
        await asyncio.Event().wait()


async def measure(
    queue: Any, page: Any, observers: dict[str, Seen], pushes: int, gap: float, tag: str
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in [*observers, "dom"]}
    for i in range(pushes):
        payload = f"{tag}{i}"
        started = time.time()
        await queue.push(payload, 600, -1 - i)  # above everything: the new top
        for name, seen in observers.items():
            samples[name].append(await seen.wait_for(payload) - started)
        handle = await page.wait_for_function("p => window.seen[p]", arg=payload, timeout=10_000)
        samples["dom"].append(await handle.json_value() / 1000 - started)
        await queue.remove(payload)
        await asyncio.sleep(gap)
    return samples


def row(name: str, samples: list[float]) -> list[str]:
    p50, p99, mean = summary(samples)
    return [name, str(len(samples)), ms(p50), ms(p99), ms(mean)]


async def main(pushes: int, backlog: int, viewers: int, gap: float) -> None:
    import aiohttp
    from playwright.async_api import async_playwright

    from kamikaze.queue import Queue
    from kamikaze.settings import Settings

    server = start_server()
    env = {**os.environ, "KAMIKAZE_REDIS_URL": server.url, "KAMIKAZE_KEY": KEY}
    env["PYTHONPATH"] = os.getcwd()  # bench.web.consumer, from the repository's root
    settings = Settings(redis_url=server.url, key=KEY)
    client = settings.client()
    queue = Queue(client, KEY)
    await queue.push_many([(f"backlog-{i}", 3600, 1000 + i) for i in range(backlog)])
    service = await Process.start("service", "bench.web.consumer", env=env)
    web = await Process.start("web", "--port", "0", env=env)
    called, streamed = Seen(), Seen()
    followers = [asyncio.create_task(follow_service(service, called))]
    try:
        url = SERVING.search(await web.expect("web page of"))[1]  # type: ignore[index]
        limits = aiohttp.TCPConnector(limit=0)
        async with (
            aiohttp.ClientSession(connector=limits) as session,
            async_playwright() as playwright,
        ):
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            await page.goto(url)
            await page.wait_for_selector("#packages tbody tr.top")
            await page.evaluate(OBSERVE_TOP)
            async with streams(session, url, 1, streamed):
                observers = {"consumer": called, "stream": streamed}
                await measure(queue, page, observers, 20, gap, "warm")
                alone = await measure(queue, page, observers, pushes, gap, "p")
            async with bystanders(url, viewers):
                crowded = await measure(queue, page, {}, pushes, gap, "c")
            await browser.close()
    finally:
        for task in followers:
            task.cancel()
        await service.stop()
        await web.stop()
        await client.aclose()
        server.remove()
    print_table(
        ["measurement", "n", "p50 ms", "p99 ms", "mean ms"],
        [
            row("kamikaze service: push -> consumer called", alone["consumer"]),
            row("kamikaze web: push -> event at a stream client", alone["stream"]),
            row("kamikaze web: push -> DOM updated in Chromium", alone["dom"]),
            row(f"  the same with {viewers} more streams open", crowded["dom"]),
        ],
    )
    c50, c99, _ = summary(alone["consumer"])
    d50, d99, _ = summary(alone["dom"])
    v50, v99, _ = summary(crowded["dom"])
    print(
        f"summary: push->DOM p50 {ms(d50)} ms, p99 {ms(d99)} ms beside push->consumer "
        f"p50 {ms(c50)} ms, p99 {ms(c99)} ms; with {viewers} more viewers p50 {ms(v50)} ms, "
        f"p99 {ms(v99)} ms ({backlog + 1} packages in the queue)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=300)
    parser.add_argument("--backlog", type=int, default=10)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.1)
    parser.add_argument("--bystanders", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bystanders:
        asyncio.run(stand_by(args.bystanders, args.viewers))
    else:
        asyncio.run(main(args.pushes, args.backlog, args.viewers, args.gap))
