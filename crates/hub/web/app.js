// vidcast web wall: one WebSocket for everything; frames arrive as binary messages
// (24-byte header + JPEG), are decoded off the main thread by createImageBitmap, drawn to a
// canvas, then acked so the hub sends that stream's next (newest) frame.
"use strict";

const wall = document.getElementById("wall");
const emptyNote = document.getElementById("empty");
const liveEl = document.getElementById("live");
const connEl = document.getElementById("conn");
const eventList = document.getElementById("event-list");
const eventsPanel = document.getElementById("events");

const tiles = new Map(); // id -> { el, canvas, ctx, label, stats, note, info, glassMs, drawn }
let ws = null;
let hubOffsetUs = 0; // hub clock minus this browser's clock
let enlarged = null;
let subscribed = "";
const visible = new Set();
const decoding = new Set();

document.getElementById("toggle-events").onclick = () => {
  eventsPanel.classList.toggle("hidden");
  layout();
};

function hhmmss(us) {
  return new Date(us / 1000).toLocaleTimeString([], { hour12: false });
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${proto}//${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  connEl.textContent = "connecting…";
  ws.onopen = () => { connEl.textContent = ""; subscribed = ""; updateSubscription(); };
  ws.onclose = () => {
    connEl.textContent = "hub unreachable, retrying…";
    setTimeout(connect, 1500);
  };
  ws.onmessage = (msg) => {
    if (typeof msg.data === "string") onJson(JSON.parse(msg.data));
    else onFrame(msg.data);
  };
}

function onJson(msg) {
  if (msg.type === "hello") {
    eventList.textContent = "";
    for (const e of msg.events) addEvent(e);
  } else if (msg.type === "event") {
    addEvent(msg.event);
  } else if (msg.type === "streams") {
    hubOffsetUs = msg.now_us - Date.now() * 1000;
    liveEl.textContent = `${msg.live} live`;
    updateTiles(msg.streams);
  }
}

function addEvent(e) {
  const li = document.createElement("li");
  li.className = e.kind;
  const what = e.kind === "connected" ? "connected" : (e.orderly ? "left" : "disconnected");
  li.innerHTML = `<span class="t"></span><span class="k"></span> <b></b> <span class="p"></span><div class="r"></div>`;
  li.querySelector(".t").textContent = hhmmss(e.at_us);
  li.querySelector(".k").textContent = what;
  li.querySelector("b").textContent = e.name;
  li.querySelector(".p").textContent = `${e.peer} — ${e.live} live`;
  if (e.reason) li.querySelector(".r").textContent = e.reason;
  eventList.prepend(li);
  while (eventList.children.length > 200) eventList.lastChild.remove();
}

function makeTile(s) {
  const el = document.createElement("div");
  el.className = "tile";
  el.dataset.id = s.id;
  const canvas = document.createElement("canvas");
  canvas.width = s.width; canvas.height = s.height;
  const label = document.createElement("div"); label.className = "label";
  const stats = document.createElement("div"); stats.className = "stats";
  const note = document.createElement("div"); note.className = "offline-note";
  el.append(canvas, label, stats, note);
  el.onclick = () => toggleEnlarge(s.id);
  wall.append(el);
  observer.observe(el);
  const tile = { el, canvas, ctx: canvas.getContext("2d"), label, stats, note, info: s, glassMs: null, drawn: 0 };
  tiles.set(s.id, tile);
  return tile;
}

function updateTiles(streams) {
  const seen = new Set();
  for (const s of streams) {
    seen.add(s.id);
    const tile = tiles.get(s.id) || makeTile(s);
    tile.info = s;
    if (tile.canvas.width !== s.width || tile.canvas.height !== s.height) {
      tile.canvas.width = s.width; tile.canvas.height = s.height;
    }
    tile.label.innerHTML = "";
    tile.label.append(`CLIENT: ${s.peer}`);
    const name = document.createElement("b"); name.textContent = s.name; tile.label.append(name);
    const kbps = s.frames > 0 ? (s.bytes / s.frames) * s.fps * 8 / 1000 : 0;
    const lat = s.latency_ms ? `${s.latency_ms.p50.toFixed(1)} ms` : "–";
    const glass = tile.glassMs === null ? "" : ` · glass ${tile.glassMs.toFixed(0)} ms`;
    tile.stats.textContent =
      `${s.width}x${s.height} · ${s.fps.toFixed(1)} fps · ${kbps.toFixed(0)} kbps · ${lat}${glass} · ${s.dropped} drops`;
    tile.el.classList.toggle("offline", !s.live);
    tile.note.textContent = s.live ? "" : `offline since ${hhmmss(s.disconnected_at_us)}`;
  }
  for (const [id, tile] of tiles) {
    if (!seen.has(id)) { observer.unobserve(tile.el); tile.el.remove(); tiles.delete(id); visible.delete(id); }
  }
  emptyNote.hidden = tiles.size > 0;
  if (enlarged !== null && !tiles.has(enlarged)) toggleEnlarge(enlarged);
  layout();
  updateSubscription();
}

function onFrame(buf) {
  const view = new DataView(buf);
  if (view.getUint8(0) !== 1) return;
  const id = view.getUint32(4);
  const captureUs = Number(view.getBigUint64(16));
  const tile = tiles.get(id);
  const ack = () => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ack", id })); };
  if (!tile || decoding.has(id)) { ack(); return; }
  decoding.add(id);
  createImageBitmap(new Blob([new Uint8Array(buf, 24)], { type: "image/jpeg" }))
    .then((bmp) => {
      tile.ctx.drawImage(bmp, 0, 0, tile.canvas.width, tile.canvas.height);
      bmp.close();
      tile.drawn += 1;
      // Capture time on the publisher's clock → hub clock → this browser's clock.
      const offsetUs = (tile.info.clock_offset_ms || 0) * 1000;
      tile.glassMs = (Date.now() * 1000 + hubOffsetUs - (captureUs - offsetUs)) / 1000;
    })
    .catch(() => {})
    .finally(() => { decoding.delete(id); ack(); });
}

// Only tiles on screen, in a visible tab, get frames.
const observer = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const id = Number(e.target.dataset.id);
    if (e.isIntersecting) visible.add(id); else visible.delete(id);
  }
  updateSubscription();
});
document.addEventListener("visibilitychange", updateSubscription);

function updateSubscription() {
  let ids = document.hidden ? [] : [...visible].filter((id) => tiles.has(id));
  if (enlarged !== null) ids = ids.filter((id) => id === enlarged);
  ids.sort((a, b) => a - b);
  const key = ids.join(",");
  if (key === subscribed || !ws || ws.readyState !== WebSocket.OPEN) return;
  subscribed = key;
  ws.send(JSON.stringify({ type: "subscribe", ids }));
}

function toggleEnlarge(id) {
  if (enlarged === id) {
    enlarged = null;
    wall.classList.remove("enlarged");
    for (const t of tiles.values()) t.el.classList.remove("big");
  } else {
    enlarged = id;
    wall.classList.add("enlarged");
    for (const [tid, t] of tiles) t.el.classList.toggle("big", tid === id);
  }
  layout();
  updateSubscription();
}
document.addEventListener("keydown", (e) => { if (e.key === "Escape" && enlarged !== null) toggleEnlarge(enlarged); });

// Pick the column count that makes tiles (of the streams' typical aspect) as large as possible.
function layout() {
  const n = enlarged !== null ? 1 : tiles.size;
  if (n === 0) return;
  const W = wall.clientWidth - 12, H = wall.clientHeight - 12, gap = 6;
  const first = tiles.values().next().value.info;
  const aspect = first.width / first.height || 4 / 3;
  let best = { cols: 1, w: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const w = Math.min((W - gap * (cols - 1)) / cols, ((H - gap * (rows - 1)) / rows) * aspect);
    if (w > best.w) best = { cols, w };
  }
  const w = Math.max(80, Math.floor(best.w));
  wall.style.gridTemplateColumns = `repeat(${best.cols}, ${w}px)`;
  wall.style.gridAutoRows = `${Math.floor(w / aspect)}px`;
}
window.addEventListener("resize", layout);

connect();
