"""The page of `kamikaze web` in a real browser (issue 16): what a user sees
after CLI pushes, removes and expiries; the timeline; payloads shown as text;
writes and who may make them; the banner while Redis is lost; and 100 viewers
on one Redis subscription.

Covers kamikaze/web/static/ (index.html, app.js, style.css) with the whole
of kamikaze/web/ behind it, through `kamikaze web` processes.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import os
import re
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis
from playwright.sync_api import Page, expect

from kamikaze.package import Package
from kamikaze.sync import SyncQueue
from kamikaze.web.feed import Snapshot
from kamikaze.web.hub import Hub
from kamikaze.web.page import PageState
from tests.browser.conftest import Watched
from tests.integration.processes import Service, run
from tests.servers import RedisServer, free_port
from tests.webpage import WebProcess

# The page does not depend on the kind of Redis (tests/integration/test_web.py
# runs the web process on every kind).
pytestmark = [pytest.mark.timeout(90), pytest.mark.any_server]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "_static" / "web.png"
WITHIN = 1000  # ms: a change shows on the page within 1 s (issue 16)
BACK_WITHIN = 10_000  # ms: the reconnect backoff is capped at 2 s, plus the reconnect
XSS = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", '"><svg onload=alert(3)>']

OpenPage = Callable[[str], Watched]
# Where to point at a band: near its left end, the part that stays under a still
# mouse longest as the window slides left (and its box's middle may lie past
# its right end: the box holds all of its label, which the band shows cut).
AT_ITS_START = {"position": {"x": 3, "y": 20}, "force": True}


def top(page: Page) -> object:
    return page.locator("#packages tbody tr.top td.payload")


def payload_cells(page: Page) -> object:
    return page.locator("#packages tbody td.payload")


def seconds(ttl_text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?) s", ttl_text.strip())
    assert match, ttl_text
    return float(match[1])


def cli(env: dict[str, str], *args: str) -> None:
    result = run(*args, env=env)
    assert result.returncode == 0, result.stderr


@pytest.fixture(autouse=True)
def quiet_pages() -> Iterator[list[Watched]]:
    """Every page a test opens must end without dialogs or script errors."""
    opened: list[Watched] = []
    yield opened
    for seen in opened:
        assert seen.dialogs == [], seen.dialogs
        assert seen.errors == [], seen.errors


@pytest.fixture
def open_page(watched: OpenPage, quiet_pages: list[Watched]) -> OpenPage:
    def open_(url: str) -> Watched:
        seen = watched(url)
        quiet_pages.append(seen)
        return seen

    return open_


# What the page shows --------------------------------------------------------------------


def test_the_page_follows_pushes_removes_and_expiries_without_a_reload(
    start_web: Callable[..., WebProcess],
    open_page: OpenPage,
    queue: SyncQueue,
    env: dict[str, str],
) -> None:
    queue.push("steady", 60, 5)
    page = open_page(start_web().url).page
    expect(page.locator("#queue")).to_have_text(env["KAMIKAZE_KEY"])
    expect(top(page)).to_have_text("steady")
    expect(page.locator("#size")).to_have_text("1 package")
    expect(page.locator("#banner")).to_be_hidden()
    page.evaluate("window.sameDocument = true")

    cli(env, "push", "urgent", "60", "1")
    expect(top(page)).to_have_text("urgent", timeout=WITHIN)
    expect(payload_cells(page)).to_have_text(["urgent", "steady"])
    expect(page.locator("#size")).to_have_text("2 packages")
    expect(page.locator("#packages tbody tr.top td.priority")).to_have_text("1.0")

    cli(env, "remove", "urgent")
    expect(payload_cells(page)).to_have_text(["steady"], timeout=WITHIN)

    cli(env, "push", "short-lived", "1.5", "0")
    expect(top(page)).to_have_text("short-lived", timeout=WITHIN)
    expect(top(page)).to_have_text("steady", timeout=1500 + WITHIN)  # no service deletes it
    expect(payload_cells(page)).to_have_text(["steady"])

    ttl = page.locator("#packages tbody tr.top .ttl-text")
    bar = page.locator("#packages tbody tr.top .bar .fill")
    before, bar_before = seconds(ttl.inner_text()), bar.evaluate("e => e.style.width")
    page.wait_for_timeout(1200)
    after, bar_after = seconds(ttl.inner_text()), bar.evaluate("e => e.style.width")
    assert before - 2.0 < after < before - 0.5, (before, after)
    assert float(bar_after.rstrip("%")) < float(bar_before.rstrip("%")), (bar_before, bar_after)
    assert page.evaluate("window.sameDocument") is True  # never reloaded


def test_the_header_names_the_active_exclusive_service(
    start_web: Callable[..., WebProcess], open_page: OpenPage, env: dict[str, str]
) -> None:
    page = open_page(start_web().url).page
    expect(page.locator("#size")).to_have_text("0 packages")
    expect(page.locator("#active-service")).to_be_hidden()
    service = Service(
        "service", "example_consumer.consumer.blocking_consumer_func", "--exclusive", env=env
    )
    try:
        service.expect("active now, term")
        expect(page.locator("#active-service")).to_be_visible(timeout=WITHIN)
        expect(page.locator("#active")).to_have_text(
            re.compile(rf":{service.process.pid}, term \d+$")
        )
        assert service.stop(signal.SIGTERM)[0] == 0
        expect(page.locator("#active-service")).to_be_hidden(timeout=WITHIN)
    finally:
        service.kill()


def test_the_timeline_opens_on_the_span_that_holds_the_data(
    start_web: Callable[..., WebProcess], open_page: OpenPage
) -> None:
    """A process that started seconds ago has a minute to show, not an hour
    of grey with a sliver of band; a click still chooses."""
    page = open_page(start_web().url).page
    expect(page.locator("#zoom button[data-seconds='60']")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(page.locator("#zoom button[data-seconds='3600']")).to_have_attribute(
        "aria-pressed", "false"
    )
    page.locator("#zoom button[data-seconds='3600']").click()
    expect(page.locator("#zoom button[data-seconds='3600']")).to_have_attribute(
        "aria-pressed", "true"
    )


def test_the_timeline_has_one_band_per_top_in_order(
    start_web: Callable[..., WebProcess],
    open_page: OpenPage,
    queue: SyncQueue,
    env: dict[str, str],
) -> None:
    page = open_page(start_web().url).page
    expect(page.locator("#size")).to_have_text("0 packages")
    queue.push("first", 60, 5)
    expect(top(page)).to_have_text("first")
    page.wait_for_timeout(1500)
    cli(env, "push", "second", "60", "1")
    expect(top(page)).to_have_text("second")
    page.wait_for_timeout(1500)
    cli(env, "remove", "second")
    expect(top(page)).to_have_text("first")

    labels = page.locator("#timeline .band .label")
    expect(labels).to_have_text(["first", "second", "first"])
    expect(page.locator("#timeline .band.current .label")).to_have_text("first")

    page.get_by_role("button", name="minute", exact=True).click()
    page.locator("#timeline .band").nth(1).hover(**AT_ITS_START)
    tooltip = page.locator("#tooltip")
    expect(tooltip).to_be_visible()
    expect(tooltip.locator(".tip-payload")).to_have_text("second")
    expect(tooltip.locator(".tip-priority")).to_have_text("priority 1.0")
    expect(tooltip.locator(".tip-times")).to_have_text(
        re.compile(r"^on top \d\d:\d\d:\d\d \u2013 \d\d:\d\d:\d\d UTC \(\d+\.\d s\)$")
    )
    expect(tooltip.locator(".tip-expire")).to_contain_text("expires 20")


def test_html_payloads_are_shown_as_text_and_never_run(
    start_web: Callable[..., WebProcess],
    open_page: OpenPage,
    queue: SyncQueue,
    token: tuple[Path, str],
) -> None:
    path, secret = token
    for priority, payload in enumerate(XSS[:2], start=1):
        queue.push(payload, 60, priority)
    seen = open_page(start_web("--allow-writes", "--token-file", str(path)).url)
    page = seen.page
    expect(payload_cells(page)).to_have_text(XSS[:2])
    expect(page.locator("#timeline .band .label")).to_have_text([XSS[0]])

    page.fill("#push-payload", XSS[2])
    page.fill("#push-priority", "0")
    page.fill("#token", secret)
    page.get_by_role("button", name="Push").click()
    expect(page.locator("#write-status")).to_contain_text(f"Pushed {json.dumps(XSS[2])}")
    expect(payload_cells(page)).to_have_text([XSS[2], *XSS[:2]], timeout=WITHIN)

    page.get_by_role("button", name="minute", exact=True).click()
    page.wait_for_timeout(1500)  # the current band grows wide enough to point at
    page.locator("#timeline .band.current").hover(**AT_ITS_START)
    expect(page.locator("#tooltip .tip-payload")).to_have_text(XSS[2])
    page.locator("#packages tbody tr", has_text=XSS[0]).get_by_role("button").click()
    expect(page.locator("#write-status")).to_have_text(
        f"Removed 1 package with payload {json.dumps(XSS[0])}."
    )
    expect(payload_cells(page)).to_have_text([XSS[2], XSS[1]], timeout=WITHIN)

    page.wait_for_timeout(300)  # an onerror or onload would have run by now
    assert page.locator("main img, main script, #packages svg, #tooltip *:not(div)").count() == 0
    assert seen.dialogs == []


# Writes ---------------------------------------------------------------------------------


def test_writes_are_refused_without_the_token_and_from_another_origin(
    start_web: Callable[..., WebProcess],
    open_page: OpenPage,
    queue: SyncQueue,
    token: tuple[Path, str],
    tmp_path: Path,
) -> None:
    path, secret = token
    web = start_web("--allow-writes", "--token-file", str(path))
    page = open_page(web.url).page
    status = page.locator("#write-status")
    page.fill("#push-payload", "no-token")
    page.get_by_role("button", name="Push").click()
    expect(status).to_have_text(re.compile(r"^Refused \(403\): writing needs the token"))
    page.fill("#token", secret + "x")
    page.get_by_role("button", name="Push").click()
    expect(status).to_have_text("Refused (403): wrong token")

    # Another origin (the same host, another port) that knows the token, trying
    # everything a page can: fetch with the header, a no-cors fetch, a form.
    attacker = tmp_path / "attacker"
    attacker.mkdir()
    (attacker / "index.html").write_text(attacker_page(web.url, secret), encoding="utf-8")
    with StaticServer(attacker) as origin:
        evil = open_page(origin).page
        expect(evil.locator("#done")).to_have_text("done", timeout=10_000)
        assert "blocked" in evil.locator("#cors").inner_text()
    web.expect("refused a write from")  # the no-cors fetch and the form reached it
    time.sleep(0.3)
    assert queue.packages() == []
    assert not any("pushed" in line for line in web.lines)


def attacker_page(target: str, token: str) -> str:
    push = target + "api/push"
    body = json.dumps({"payload": "from-evil", "ttl": 60, "priority": 1})
    return f"""<!doctype html><meta charset="utf-8">
<p id="cors"></p><p id="done"></p>
<iframe name="sink"></iframe>
<form id="form" method="post" action="{push}" target="sink" enctype="text/plain">
<input name='{{"payload":"from-evil-form","ttl":60,"priority":1,"x":"' value='"}}'>
<input name="X-Kamikaze-Token" value="{token}"></form>
<script>
(async () => {{
  try {{
    await fetch("{push}", {{method: "POST", body: '{body}',
      headers: {{"Content-Type": "application/json", "X-Kamikaze-Token": "{token}"}}}});
    document.getElementById("cors").textContent = "sent";
  }} catch (e) {{ document.getElementById("cors").textContent = "blocked"; }}
  try {{ await fetch("{push}", {{method: "POST", mode: "no-cors", body: '{body}'}}); }}
  catch (e) {{}}
  document.getElementById("form").submit();
  await new Promise((resolve) => setTimeout(resolve, 500));
  document.getElementById("done").textContent = "done";
}})();
</script>"""


class StaticServer:
    """A plain HTTP server of `directory` on another port: another origin."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://localhost:{self.server.server_address[1]}/"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_push_from_the_form_reaches_a_running_service(
    start_web: Callable[..., WebProcess],
    open_page: OpenPage,
    queue: SyncQueue,
    token: tuple[Path, str],
    env: dict[str, str],
    services: list[Service],
) -> None:
    path, secret = token
    service = Service("service", "example_consumer.consumer.blocking_consumer_func", env=env)
    services.append(service)
    service.expect("Queue is empty")
    page = open_page(start_web("--allow-writes", "--token-file", str(path)).url).page
    page.fill("#push-payload", "from the page")
    page.fill("#push-ttl", "30")
    page.fill("#push-priority", "2")
    page.fill("#token", secret)
    page.get_by_role("button", name="Push").click()
    expect(page.locator("#write-status")).to_contain_text('Pushed "from the page"')
    assert service.expect("Consuming 'from the page' (priority 2.0)", timeout=5)
    expect(top(page)).to_have_text("from the page", timeout=WITHIN)

    page.locator("#packages tbody tr.top").get_by_role("button", name="Remove").click()
    assert service.expect("Queue is empty", timeout=5)
    expect(page.locator("#packages tbody tr.empty")).to_have_text("The queue is empty.")
    assert queue.packages() == []


# Redis lost and back --------------------------------------------------------------------


def test_the_banner_shows_while_redis_is_lost_and_updates_resume(
    start_web: Callable[..., WebProcess],
    open_page: OpenPage,
    server: RedisServer,
    queue: SyncQueue,
    env: dict[str, str],
) -> None:
    queue.push("before", 600, 1)
    web = start_web()
    page = open_page(web.url).page
    banner = page.locator("#banner")
    expect(top(page)).to_have_text("before")
    expect(banner).to_be_hidden()

    server.stop()
    expect(banner).to_be_visible(timeout=5000)
    expect(banner).to_contain_text(f"Redis at {server.url.removesuffix('/0')} is lost since")
    expect(banner).to_contain_text("reconnecting")
    expect(top(page)).to_have_text("before")  # the last known state stays
    web.expect("lost Redis at")

    server.start()
    expect(banner).to_be_hidden(timeout=BACK_WITHIN)
    expect(page.locator("#packages tbody tr.empty")).to_be_visible()  # it came back empty
    cli(env, "push", "after", "60", "1")
    expect(top(page)).to_have_text("after", timeout=WITHIN)
    expect(page.locator("#timeline .gap")).to_have_count(1)


def test_the_page_says_when_kamikaze_web_is_gone_and_reconnects_when_it_is_back(
    start_web: Callable[..., WebProcess],
    open_page: OpenPage,
    queue: SyncQueue,
) -> None:
    port = str(free_port())
    web = start_web("--port", port)
    queue.push("before", 600, 1)
    page = open_page(web.url).page
    banner = page.locator("#banner")
    expect(top(page)).to_have_text("before")
    web.kill()
    expect(banner).to_have_text("Lost the connection to kamikaze web; reconnecting\u2026")
    queue.push("meanwhile", 600, 0)
    start_web("--port", port)
    expect(banner).to_be_hidden(timeout=5000)
    expect(top(page)).to_have_text("meanwhile")


# Many viewers ---------------------------------------------------------------------------


def test_100_event_streams_and_pages_share_one_redis_subscription(
    start_web: Callable[..., WebProcess],
    open_page: OpenPage,
    server: RedisServer,
    env: dict[str, str],
) -> None:
    web = start_web()
    pages = [open_page(web.url).page for _ in range(2)]
    for page in pages:
        expect(page.locator("#size")).to_have_text("0 packages")
    viewers = StreamViewers(web.url + "events", count=100, waiting_for="everyone-sees-this")
    viewers.start()
    try:
        viewers.ready.wait(30)
        assert viewers.connected == 100, viewers.failures
        with redis.Redis(port=server.port) as client:
            assert client.pubsub_numsub(env["KAMIKAZE_KEY"]) == [(env["KAMIKAZE_KEY"].encode(), 1)]
        cli(env, "push", "everyone-sees-this", "60", "1")
        for page in pages:
            expect(top(page)).to_have_text("everyone-sees-this", timeout=WITHIN)
        viewers.join(10)
        assert viewers.updated == 100, viewers.failures
    finally:
        viewers.stop()


class StreamViewers(threading.Thread):
    """`count` event streams read at once (in a thread of their own): each
    waits for a state whose top is `waiting_for`."""

    def __init__(self, url: str, count: int, waiting_for: str) -> None:
        super().__init__(daemon=True)
        self.url, self.count, self.waiting_for = url, count, waiting_for
        self.ready = threading.Event()
        self.connected = self.updated = 0
        self.failures: list[str] = []
        self.loop = asyncio.new_event_loop()

    def run(self) -> None:
        self.loop.run_until_complete(self.main())

    def stop(self) -> None:
        self.join(0.1)

    async def main(self) -> None:
        limits = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=limits, timeout=timeout) as session:
            await asyncio.gather(*(self.view(session) for _ in range(self.count)))
        self.ready.set()

    async def view(self, session: aiohttp.ClientSession) -> None:
        counted = False
        try:
            async with session.get(self.url) as response:
                async for line in response.content:
                    if not line.startswith(b"data: "):
                        continue
                    state = json.loads(line[6:])
                    if state["redis"] == "connected" and not counted:
                        counted = True
                        self.connected += 1
                        if self.connected == self.count:
                            self.ready.set()
                    packages = state["packages"]
                    if packages and packages[0]["payload"] == self.waiting_for:
                        self.updated += 1
                        return
        except Exception as exc:
            self.failures.append(repr(exc))
            self.ready.set()


# The screenshot in the docs -------------------------------------------------------------


def test_a_screenshot_of_a_busy_queue(
    start_web: Callable[..., WebProcess],
    open_page: OpenPage,
    queue: SyncQueue,
    token: tuple[Path, str],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """docs/web.rst shows it: UPDATE_SCREENSHOTS=1 writes docs/_static/web.png."""
    path, _ = token
    page = open_page(start_web("--allow-writes", "--token-file", str(path)).url).page
    expect(page.locator("#size")).to_have_text("0 packages")
    # Long enough for bands a reader can see in the docs' screenshot; short in a test run.
    pause = 2.5 if os.environ.get("UPDATE_SCREENSHOTS") else 0.3
    for payload, ttl, priority in [
        ("rotate-logs", 3000, 5),
        ("backup-db", 1800, 3),
        ("send-invoices", 20, 2),
        ("deploy-hotfix", 2 * pause, 1),
    ]:
        queue.push(payload, ttl, priority)
        page.wait_for_timeout(pause * 1000)
    queue.push("resize-images", 900, 4)
    queue.push("<b>not bold</b>", 600, 6)
    expect(top(page)).to_have_text("send-invoices", timeout=6000)  # deploy-hotfix expired
    page.get_by_role("button", name="minute", exact=True).click()
    page.wait_for_timeout(800)
    page.set_viewport_size({"width": 1200, "height": 640})
    page.locator("#timeline .band").nth(1).hover(**AT_ITS_START)
    expect(page.locator("#tooltip")).to_be_visible()
    shot = tmp_path / "web.png"
    page.screenshot(path=str(shot), full_page=True)
    width, height = struct.unpack(">II", shot.read_bytes()[16:24])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and width == 1200 and height >= 500
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(shot.read_bytes())


# A page that fell behind ----------------------------------------------------------------


def test_a_page_that_fell_behind_merges_the_timeline_changes_it_missed(
    open_page: OpenPage,
) -> None:
    """The page's files, served with a scripted event stream: the state with
    band A, then (the page having missed two states) the timeline changes of
    those two and the latest state: the page shows A, B, C, D in order."""
    hub = Hub()
    page_state = PageState("scripted", "nowhere", writes=False, hub=hub)
    now = time.time()
    for i, payload in enumerate("ABCD"):
        page_state.snapshot(Snapshot([Package.create(payload, -i, now + 600)], 1, now + i))
        if payload == "A":
            first, seen = hub.message_for(0), hub.version
    caught_up = hub.message_for(seen)
    assert caught_up.count(b"event: timeline") == 2 and b'"whole":true' not in caught_up
    with ScriptedServer([first, caught_up]) as url:
        page = open_page(url).page
        labels = page.locator("#timeline .band .label")
        expect(labels).to_have_text(["A", "B", "C", "D"])
        expect(page.locator("#timeline .band.current .label")).to_have_text("D")
        expect(top(page)).to_have_text("D")


class ScriptedServer:
    """The page's own files, and an event stream that sends `messages` 0.5 s apart."""

    def __init__(self, messages: list[bytes]) -> None:
        static = ROOT / "kamikaze" / "web" / "static"
        files = {"/": "index.html", "/app.js": "app.js", "/style.css": "style.css"}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/events":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for message in messages:
                        time.sleep(0.5)
                        self.wfile.write(message)
                        self.wfile.flush()
                    time.sleep(5)
                    return
                name = files.get(self.path)
                if name is None:
                    self.send_error(404)
                    return
                body = (static / name).read_bytes()
                self.send_response(200)
                kind = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
                self.send_header("Content-Type", kind[name.rsplit(".", 1)[1]])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
