// kamikaze web: the page's script. It draws the state the server pushes
// (server-sent events on "events"), counts TTLs down between pushes, and,
// when writes are allowed, sends the push form and the remove buttons.
// Data from the queue is only ever set as text (textContent, SVG text
// nodes): a payload is shown, never run.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN_HEADER = "X-Kamikaze-Token";
  const TICK_MS = 100;
  const TIMELINE_HEIGHT = 72;
  const BAND_TOP = 6;
  const BAND_HEIGHT = 40;
  const REBASE_PX = 1e6;
  const TICK_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  let windowSeconds = 3600; // how much of the timeline is shown: the zoom buttons
  let zoomChosen = false; // the page opens on the shortest span that holds the data

  const $ = (id) => document.getElementById(id);
  const ui = {
    queue: $("queue"),
    size: $("size"),
    activeService: $("active-service"),
    active: $("active"),
    address: $("address"),
    clock: $("clock"),
    banner: $("banner"),
    timeline: $("timeline"),
    zoom: $("zoom"),
    tooltip: $("tooltip"),
    writes: $("writes"),
    form: $("push-form"),
    payload: $("push-payload"),
    ttl: $("push-ttl"),
    priority: $("push-priority"),
    token: $("token"),
    status: $("write-status"),
    rows: document.querySelector("#packages tbody"),
    more: $("more"),
  };

  let state = null;
  let receivedAt = 0; // performance.now() when `state` arrived
  let streamOpen = false;
  let rows = []; // {tr, ttlText, fill, expire, seen}

  // The server's clock now, estimated from the last state (as the server does).
  function serverNow() {
    if (state === null) return Date.now() / 1000;
    return state.server_time + (performance.now() - receivedAt) / 1000;
  }

  // Formatting --------------------------------------------------------------------------

  function utc(seconds, withDate) {
    const date = new Date(seconds * 1000);
    if (Number.isNaN(date.getTime())) return "?";
    const text = date.toISOString();
    return withDate ? text.slice(0, 19) : text.slice(11, 19);
  }

  function duration(seconds) {
    seconds = Math.max(0, seconds);
    if (seconds < 60) return seconds.toFixed(1) + " s";
    const s = Math.floor(seconds) % 60;
    const m = Math.floor(seconds / 60) % 60;
    const h = Math.floor(seconds / 3600);
    if (h === 0) return m + " min " + s + " s";
    if (h < 48) return h + " h " + m + " min";
    return Math.floor(h / 24) + " d " + (h % 24) + " h";
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    return node;
  }

  // The header and the banner --------------------------------------------------------

  function drawHeader() {
    ui.queue.textContent = state.queue;
    ui.address.textContent = state.address;
    document.title = "kamikaze: " + state.queue;
    if (state.size === null) {
      ui.size.textContent = "\u2026";
    } else {
      ui.size.textContent = state.size + (state.size === 1 ? " package" : " packages");
    }
    // The exclusive service that calls its consumer, and its term (docs/ha.rst).
    ui.activeService.hidden = !state.active;
    ui.active.textContent = state.active || "";
  }

  function drawBanner() {
    let text = "";
    let info = false;
    if (!streamOpen) {
      text = "Lost the connection to kamikaze web; reconnecting\u2026";
    } else if (state !== null && state.redis === "lost") {
      text = "Redis at " + state.address + " is lost since " + utc(state.lost_since, false) +
        " UTC (" + state.reason + "); reconnecting\u2026 The page shows the last known state.";
    } else if (state !== null && state.redis === "connecting") {
      text = "Connecting to Redis at " + state.address + "\u2026";
      info = true;
    }
    ui.banner.textContent = text;
    ui.banner.classList.toggle("info", info);
    ui.banner.hidden = text === "";
  }

  // The packages ---------------------------------------------------------------------

  function drawRows() {
    const packages = state.packages;
    const body = document.createDocumentFragment();
    rows = [];
    packages.forEach((pkg, index) => {
      const tr = el("tr", index === 0 ? "top" : "");
      tr.appendChild(el("td", "priority", pkg.priority));
      tr.appendChild(el("td", "payload", pkg.payload));
      tr.appendChild(el("td", "expire", pkg.expire_text));
      const ttl = el("td", "ttl");
      const ttlText = el("span", "ttl-text");
      const bar = el("span", "bar");
      const fill = el("span", "fill");
      bar.appendChild(fill);
      ttl.append(ttlText, " ", bar);
      tr.appendChild(ttl);
      const actions = el("td", "actions");
      if (state.writes) {
        const button = el("button", "remove", "Remove");
        button.type = "button";
        button.addEventListener("click", () => remove(pkg.payload));
        actions.appendChild(button);
      }
      tr.appendChild(actions);
      body.appendChild(tr);
      rows.push({ tr, ttlText, fill, expire: pkg.expire_time, seen: pkg.seen });
    });
    if (packages.length === 0 && state.size !== null) {
      const tr = el("tr", "empty");
      const td = el("td", "", "The queue is empty.");
      td.colSpan = 5;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    ui.rows.replaceChildren(body);
    const hidden = (state.size || 0) - packages.length;
    ui.more.hidden = hidden <= 0;
    ui.more.textContent = hidden > 0 ? "\u2026 and " + hidden + " more (kamikaze web --rows)" : "";
    countDown();
  }

  function countDown() {
    const now = serverNow();
    for (const row of rows) {
      if (row.expire === null) {
        row.ttlText.textContent = "never expires";
        row.fill.style.width = "100%";
        continue;
      }
      const left = row.expire - now;
      row.tr.classList.toggle("expired", left <= 0);
      row.ttlText.textContent = left > 0 ? duration(left) : "expired";
      const full = row.expire - (row.seen === null ? now : row.seen);
      const fraction = full > 0 ? Math.min(1, Math.max(0, left / full)) : 0;
      row.fill.style.width = (fraction * 100).toFixed(1) + "%";
    }
    ui.clock.textContent = utc(now, true) + " UTC";
  }

  // The timeline ---------------------------------------------------------------------

  function hue(text) {
    let hash = 0;
    for (let i = 0; i < text.length; i++) hash = (hash * 31 + text.charCodeAt(i)) | 0;
    return Math.abs(hash) % 360;
  }

  // The timeline's parts are kept between states: a new state adds the bands
  // it did not have, closes the one that ended and drops those it no longer
  // has. Bands are placed once, at times measured from a fixed origin; as time
  // passes only the group that holds them slides (one transform) and the
  // current band grows. So an update or a tick costs the same however many
  // bands there are, and a hover stays put between them.
  const timeline = { slides: [], before: null, axis: null, width: 0, origin: null, scale: 0 };
  const shown = new Map(); // key -> {node, start, end (null: now), minWidth, band}

  function buildTimeline() {
    const defs = svg("defs");
    const hatch = svg("pattern", { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
    hatch.appendChild(svg("line", { class: "hatch-line", x1: 0, y1: 0, x2: 0, y2: 6 }));
    defs.appendChild(hatch);
    timeline.axis = svg("g", { class: "axis" });
    // Two sliding layers: the shading before the start under the axis, the bands over it.
    timeline.slides = [svg("g", { class: "slide" }), svg("g", { class: "slide" })];
    timeline.before = svg("rect", { class: "before", y: BAND_TOP, height: BAND_HEIGHT, width: 0 });
    timeline.before.appendChild(titled("before kamikaze web started"));
    timeline.bands = svg("g", { class: "bands" });
    timeline.gaps = svg("g", { class: "gaps" });
    timeline.slides[0].append(timeline.before);
    timeline.slides[1].append(timeline.bands, timeline.gaps);
    ui.timeline.replaceChildren(defs, timeline.slides[0], timeline.axis, timeline.slides[1]);
    measureTimeline();
  }

  function measureTimeline() {
    timeline.width = Math.max(ui.timeline.clientWidth, 100);
    timeline.scale = timeline.width / windowSeconds;
    for (const item of shown.values()) place(item);
  }

  // x of time t in the sliding group.
  function at(t) {
    return (t - timeline.origin) * timeline.scale;
  }

  function place(item) {
    const end = item.end === null ? serverNow() : item.end;
    item.node.setAttribute("x", String(at(item.start)));
    item.node.setAttribute("width", String(Math.max((end - item.start) * timeline.scale, item.minWidth)));
  }

  function drawTimeline() {
    const line = state.timeline;
    if (timeline.origin === null) timeline.origin = line.since === null ? state.server_time : line.since;
    const wanted = new Set();
    for (const band of line.bands) {
      const key = "band " + band.seq;
      wanted.add(key);
      let item = shown.get(key);
      if (item === undefined) {
        item = { node: null, start: band.start, end: band.end, minWidth: 1, band };
        item.node = bandNode(item);
        timeline.bands.appendChild(item.node);
        shown.set(key, item);
        place(item);
      } else if (item.end !== band.end) {
        item.end = band.end;
        place(item);
      }
      item.band = band;
      item.node.classList.toggle("current", band.end === null);
    }
    for (const gap of line.gaps) {
      const key = "gap " + gap.start;
      wanted.add(key);
      let item = shown.get(key);
      if (item === undefined) {
        const node = svg("rect", { class: "gap", y: BAND_TOP, height: BAND_HEIGHT });
        node.appendChild(titled("Redis was lost"));
        timeline.gaps.appendChild(node);
        item = { node, start: gap.start, end: gap.end, minWidth: 2 };
        shown.set(key, item);
        place(item);
      } else if (item.end !== gap.end) {
        item.end = gap.end;
        place(item);
      }
    }
    for (const [key, item] of shown) {
      if (!wanted.has(key)) {
        item.node.remove();
        shown.delete(key);
      }
    }
    slideTimeline();
  }

  // The window follows the clock: slide the bands, grow the open ones, redo the axis.
  function slideTimeline() {
    const width = timeline.width;
    const now = serverNow();
    const from = now - windowSeconds;
    if (Math.abs(at(from)) > REBASE_PX) {
      timeline.origin = from; // far from the origin, coordinates lose precision
      for (const item of shown.values()) place(item);
    }
    for (const slide of timeline.slides) {
      slide.setAttribute("transform", "translate(" + (-at(from)) + " 0)");
    }
    const since = state.timeline.since;
    const beforeFrom = from - windowSeconds;
    timeline.before.setAttribute("x", String(at(beforeFrom)));
    timeline.before.setAttribute("width", String(since === null ? 0 : Math.max(at(since) - at(beforeFrom), 0)));
    for (const item of shown.values()) {
      if (item.end === null) place(item);
    }
    const x = (t) => (t - from) * timeline.scale;
    const step = TICK_STEPS.find((s) => windowSeconds / s <= 8);
    const ticks = [];
    for (let t = Math.ceil(from / step) * step; t <= now; t += step) {
      ticks.push(svg("line", { class: "tick", x1: x(t), y1: BAND_TOP, x2: x(t), y2: BAND_TOP + BAND_HEIGHT + 4 }));
      const label = svg("text", { class: "tick-label", x: x(t) + 2, y: TIMELINE_HEIGHT - 6 });
      label.textContent = utc(t, false).slice(0, step < 60 ? 8 : 5);
      ticks.push(label);
    }
    timeline.axis.replaceChildren(...ticks);
    ui.timeline.setAttribute("viewBox", "0 0 " + width + " " + TIMELINE_HEIGHT);
  }

  function titled(text) {
    const title = svg("title");
    title.textContent = text;
    return title;
  }

  function bandNode(item) {
    const band = item.band;
    const node = svg("svg", { class: "band", y: BAND_TOP, height: BAND_HEIGHT });
    node.appendChild(svg("rect", { x: 0, y: 0, width: "100%", height: "100%", fill: "hsl(" + hue(band.payload) + ", 60%, 78%)" }));
    const label = svg("text", { class: "label", x: 4, y: BAND_HEIGHT / 2 + 4 });
    label.textContent = band.payload;
    node.appendChild(label);
    node.addEventListener("mousemove", (event) => showTooltip(item.band, event));
    node.addEventListener("mouseleave", hideTooltip);
    return node;
  }

  function chooseWindow(seconds) {
    windowSeconds = seconds;
    for (const button of ui.zoom.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.seconds) === seconds));
    }
    measureTimeline();
    if (state !== null) slideTimeline();
  }

  function showTooltip(band, event) {
    const end = band.end === null ? serverNow() : band.end;
    const lines = [
      el("div", "tip-payload", band.payload),
      el("div", "tip-priority", "priority " + band.priority),
      el("div", "tip-times", band.end === null
        ? "on top since " + utc(band.start, false) + " UTC (" + duration(end - band.start) + "), still on top"
        : "on top " + utc(band.start, false) + " \u2013 " + utc(band.end, false) + " UTC (" + duration(end - band.start) + ")"),
    ];
    if (band.expire_time !== null) {
      lines.push(el("div", "tip-expire", "expires " + utc(band.expire_time, true) + " UTC"));
    }
    ui.tooltip.replaceChildren(...lines);
    ui.tooltip.hidden = false;
    const box = ui.timeline.parentElement.getBoundingClientRect();
    const left = Math.min(event.clientX - box.left + 12, box.width - ui.tooltip.offsetWidth);
    ui.tooltip.style.left = Math.max(0, left) + "px";
    ui.tooltip.style.top = (event.clientY - box.top + 16) + "px";
  }

  function hideTooltip() {
    ui.tooltip.hidden = true;
  }

  // Writes ---------------------------------------------------------------------------

  async function write(path, body) {
    const headers = { "Content-Type": "application/json" };
    if (ui.token.value) headers[TOKEN_HEADER] = ui.token.value;
    let response;
    try {
      response = await fetch(path, {
        method: "POST", headers, body: JSON.stringify(body), credentials: "omit", cache: "no-store",
      });
    } catch (error) {
      return { ok: false, status: 0, reply: { error: "kamikaze web cannot be reached" } };
    }
    const reply = await response.json().catch(() => ({ error: response.statusText }));
    return { ok: response.ok, status: response.status, reply };
  }

  function report(result, done) {
    ui.status.className = result.ok ? "done" : "refused";
    ui.status.textContent = result.ok
      ? done(result.reply)
      : "Refused (" + result.status + "): " + result.reply.error;
  }

  async function push(event) {
    event.preventDefault();
    const result = await write("api/push", {
      payload: ui.payload.value, ttl: ui.ttl.value, priority: ui.priority.value,
    });
    report(result, (reply) => "Pushed " + JSON.stringify(reply.pushed.payload) +
      " with priority " + reply.pushed.priority + ", expiring " + reply.pushed.expire_text + " UTC.");
  }

  async function remove(payload) {
    const result = await write("api/remove", { payload });
    report(result, (reply) => "Removed " + reply.removed + (reply.removed === 1 ? " package" : " packages") +
      " with payload " + JSON.stringify(payload) + ".");
  }

  // The event stream -----------------------------------------------------------------

  // The timeline's bands by number: a state brings them whole, or only those
  // that changed since the state before (the others stand).
  const bands = new Map();

  function mergeBands(line) {
    if (line.whole) bands.clear();
    for (const band of line.bands) bands.set(band.seq, band);
    for (const seq of bands.keys()) {
      if (seq >= line.first) break;
      bands.delete(seq);
    }
    line.bands = Array.from(bands.values());
  }

  function receive(event) {
    state = JSON.parse(event.data);
    receivedAt = performance.now();
    mergeBands(state.timeline);
    if (!zoomChosen) {
      zoomChosen = true;
      const kept = state.server_time - state.timeline.since; // how long the process has watched
      const spans = Array.from(ui.zoom.querySelectorAll("button"), (b) => Number(b.dataset.seconds));
      const fits = spans.filter((seconds) => seconds >= kept);
      chooseWindow(fits.length ? Math.min(...fits) : Math.max(...spans));
    }
    ui.writes.hidden = !state.writes;
    drawHeader();
    drawBanner();
    drawRows();
    drawTimeline();
    document.body.dataset.version = String(Number(document.body.dataset.version || 0) + 1);
  }

  function connect() {
    const events = new EventSource("events");
    events.onopen = () => { streamOpen = true; drawBanner(); };
    events.onmessage = receive;
    // The timeline's changes in states this page skipped (it was slow): merged,
    // drawn with the state that follows.
    events.addEventListener("timeline", (event) => mergeBands(JSON.parse(event.data)));
    events.onerror = () => { streamOpen = false; drawBanner(); };
  }

  buildTimeline();
  ui.form.addEventListener("submit", push);
  setInterval(() => { if (state !== null) countDown(); }, TICK_MS);
  setInterval(() => { if (state !== null) slideTimeline(); }, 500);
  window.addEventListener("resize", () => {
    measureTimeline();
    measureTimeline();
    if (state !== null) slideTimeline();
  });
  for (const button of ui.zoom.querySelectorAll("button")) {
    button.addEventListener("click", () => {
      zoomChosen = true;
      chooseWindow(Number(button.dataset.seconds));
    });
  }
  chooseWindow(windowSeconds);
  streamOpen = true;
  connect();
})();
