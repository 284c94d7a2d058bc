// vidcast web wall: one WebSocket for everything; frames arrive as binary messages
// (24-byte header + JPEG or H.264 access unit), are decoded off the main thread
// (createImageBitmap for JPEG, WebCodecs VideoDecoder for H.264), drawn to a canvas, then
// acked so the hub sends that stream's next (newest) frame.
"use strict";

const wall = document.getElementById("wall");
const emptyNote = document.getElementById("empty");
const liveEl = document.getElementById("live");
const connEl = document.getElementById("conn");
const eventList = document.getElementById("event-list");
const eventsPanel = document.getElementById("events");
const clearOffline = document.getElementById("clear-offline");

const tiles = new Map(); // id -> { el, canvas, ctx, label, stats, note, info, glassMs, drawn }
let ws = null;
let hubOffsetUs = 0; // hub clock minus this browser's clock
const offsetSamples = []; // recent (hub now − browser now); delivery delay only lowers them
let enlarged = null;
let subscribed = "";
const visible = new Set();
const decoding = new Set();
// Without WebCodecs' H.264 (or with ?decoder=jpeg) the hub transcodes H.264 streams to JPEG
// for this page, only while it watches them.
let jpegOnly = new URLSearchParams(location.search).get("decoder") === "jpeg" ||
  typeof VideoDecoder === "undefined";
const H264_ERRORS_BEFORE_JPEG = 3;
function useJpeg(why) {
  if (jpegOnly) return;
  console.warn(`H.264 in this browser: ${why}; asking the hub for JPEG`);
  jpegOnly = true;
  updateSubscription();
}
if (!jpegOnly) {
  VideoDecoder.isConfigSupported({ codec: "avc1.42C01E", optimizeForLatency: true })
    .then((r) => { if (!r.supported) useJpeg("no decoder for constrained baseline"); })
    .catch(() => useJpeg("decoder support unknown"));
}

// Offline tiles go when dismissed (each, or all at once); a stream that reconnects comes back.
clearOffline.onclick = () => fetch("/api/streams", { method: "DELETE" }).catch(() => {});
function dismiss(tile) {
  fetch(`/api/streams/${tile.info.id}`, { method: "DELETE" }).catch(() => {});
}

document.getElementById("toggle-events").onclick = () => {
  eventsPanel.classList.toggle("hidden");
  layout();
};

// Milliseconds with the precision they deserve: 0.04 ms, 2.5 ms, 28 ms.
function fmtMs(ms) {
  return `${ms < 1 ? ms.toPrecision(1) : ms < 10 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
}

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

// The hub sends the whole stream list once ("streams"), then only what changed ("delta":
// streams added or changed, ids removed, new events), one message per second for all tabs.
const streamList = new Map(); // id -> the stream's latest JSON, in id order
let listSeq = 0;

function onJson(msg) {
  if (msg.type === "hello") {
    eventList.textContent = "";
    lastEventSeq = 0;
    for (const e of msg.events) addEvent(e);
  } else if (msg.type === "streams") {
    streamList.clear();
    for (const s of msg.streams) streamList.set(s.id, s);
    listSeq = msg.seq;
    onList(msg);
  } else if (msg.type === "delta") {
    if (msg.seq <= listSeq) return;
    listSeq = msg.seq;
    for (const e of msg.events) addEvent(e);
    for (const id of msg.removed) streamList.delete(id);
    let added = false;
    for (const s of msg.changed) { if (!streamList.has(s.id)) added = true; streamList.set(s.id, s); }
    if (added) {
      const sorted = [...streamList.values()].sort((a, b) => a.id - b.id);
      streamList.clear();
      for (const s of sorted) streamList.set(s.id, s);
    }
    onList(msg);
  }
}

function onList(msg) {
  // A message that waited in transit understates the offset, so take the largest recent one.
  offsetSamples.push(msg.now_us - Date.now() * 1000);
  if (offsetSamples.length > 20) offsetSamples.shift();
  hubOffsetUs = Math.max(...offsetSamples);
  liveEl.textContent = `${msg.live} live`;
  updateTiles([...streamList.values()]);
}

// A new page gets the recent events in "hello" and may get some of them again in the next
// "delta" (sent to every tab at once): each event is shown once, by its number.
let lastEventSeq = 0;

function addEvent(e) {
  if (e.seq <= lastEventSeq) return;
  lastEventSeq = e.seq;
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
  const adapt = document.createElement("div"); adapt.className = "adapt"; adapt.hidden = true;
  const netButton = document.createElement("button");
  netButton.className = "net-button"; netButton.type = "button"; netButton.textContent = "net";
  netButton.title = "Network view: throughput, RTT, congestion window, time-sequence";
  const net = document.createElement("div"); net.className = "net";
  netButton.onclick = (e) => { e.stopPropagation(); toggleNet(tile); };
  net.onclick = (e) => e.stopPropagation();
  // Shown only when the hub records (--record): start or stop this stream's recording.
  const recButton = document.createElement("button");
  recButton.className = "rec-button"; recButton.type = "button"; recButton.hidden = true;
  recButton.onclick = (e) => { e.stopPropagation(); toggleRecording(tile); };
  // Shown on offline tiles: forget this stream now.
  const dismissButton = document.createElement("button");
  dismissButton.className = "dismiss"; dismissButton.type = "button"; dismissButton.hidden = true;
  dismissButton.textContent = "\u00d7"; dismissButton.title = "Remove this offline tile (it comes back if the stream reconnects)";
  dismissButton.onclick = (e) => { e.stopPropagation(); dismiss(tile); };
  el.append(canvas, label, stats, note, adapt, recButton, dismissButton, netButton, net);
  el.onclick = () => toggleEnlarge(s.id);
  wall.append(el);
  observer.observe(el);
  const tile = { el, canvas, ctx: canvas.getContext("2d"), label, stats, note, adapt, net, recButton, dismissButton, info: s, glassMs: null, drawn: 0, netTimer: null };
  tiles.set(s.id, tile);
  return tile;
}

function showRecording(tile) {
  const rec = tile.info.recording;
  tile.recButton.hidden = !rec;
  if (!rec) return;
  // An offline stream writes nothing: its file is closed, and recording resumes when it is back.
  const writing = rec.on && !rec.error && tile.info.live;
  tile.recButton.classList.toggle("on", writing);
  tile.recButton.textContent = !rec.on ? "rec off" : rec.error ? "rec error" : writing ? "\u25cf rec" : "rec when live";
  tile.recButton.title = rec.error ? `recording failed: ${rec.error}`
    : writing ? `recording to ${rec.file || "(a new file)"}; click to stop`
    : rec.on ? "records again when the stream is back; click to stop" : "not recording; click to record";
}

async function toggleRecording(tile) {
  const on = !(tile.info.recording && tile.info.recording.on);
  const response = await fetch(`/api/streams/${tile.info.id}/record`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ on }),
  });
  if (response.ok) { tile.info.recording = await response.json(); showRecording(tile); }
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
    const addr = document.createElement("span"); addr.className = "addr"; addr.textContent = `CLIENT: ${s.peer}`;
    addr.title = s.peer;
    const name = document.createElement("b"); name.textContent = s.name; name.title = s.name;
    tile.label.append(addr, name);
    if (s.browser) {
      const mark = document.createElement("span"); mark.className = "browser-mark"; mark.textContent = " browser";
      tile.label.append(mark);
    }
    const kbps = s.frames > 0 ? (s.bytes / s.frames) * s.fps * 8 / 1000 : 0;
    const lat = s.latency_ms ? `${s.latency_ms.p50.toFixed(1)} ms` : "–";
    // Capture to glass, only while pictures arrive (an offline tile's last one is old news);
    // clock estimates a millisecond off must not show a negative latency.
    if (!s.live) tile.glassMs = null;
    const glass = tile.glassMs === null ? "" : ` · glass ${Math.max(0, tile.glassMs).toFixed(0)} ms`;
    const p = s.tcp && s.tcp.publisher;
    // One RTT, with where it comes from: the hub's ping, else the publisher kernel's.
    const rtt = s.rtt ? ` · rtt ${fmtMs(s.rtt.ms)} (${s.rtt.source})` : "";
    const tcp = p ? ` · cwnd ${p.cwnd} · ${p.retransmissions} retrans` : "";
    const codec = s.codec === "h264" ? (jpegOnly ? " · H.264→JPEG by hub" : " · H.264") : "";
    tile.stats.textContent =
      `${s.width}x${s.height} · ${s.fps.toFixed(1)} fps · ${kbps.toFixed(0)} kbps${codec} · ${lat}${glass} · ${s.dropped} drops${rtt}${tcp}`;
    // The publisher lowered quality, rate or size to fit its link: say so, and why.
    const enc = s.encoder;
    tile.adapt.hidden = !(enc && enc.adapting);
    if (enc && enc.adapting) {
      const link = enc.link_mbps === null ? "link congested" : `link ${enc.link_mbps.toFixed(1)} Mbit/s`;
      tile.adapt.textContent = `adapting: ${link}`;
      const quality = s.codec === "h264" ? `${enc.quality}% of its bit rate` : `quality ${enc.quality}`;
      tile.adapt.title = `sending ${quality}, ${enc.fps.toFixed(1)} fps, ${enc.width}x${enc.height} (level ${enc.level})`;
    }
    showRecording(tile);
    tile.el.classList.toggle("offline", !s.live);
    tile.dismissButton.hidden = s.live;
    tile.note.textContent = s.live ? "" : `offline since ${hhmmss(s.disconnected_at_us)}`;
  }
  for (const [id, tile] of tiles) {
    if (!seen.has(id)) {
      if (tile.netTimer) clearInterval(tile.netTimer);
      observer.unobserve(tile.el); tile.el.remove(); tiles.delete(id); visible.delete(id);
    }
  }
  emptyNote.hidden = tiles.size > 0;
  clearOffline.hidden = ![...tiles.values()].some((t) => !t.info.live);
  if (enlarged !== null && !tiles.has(enlarged)) toggleEnlarge(enlarged);
  layout();
  updateSubscription();
}

// Draws a decoded picture (ImageBitmap or VideoFrame) and notes capture-to-glass latency.
function draw(tile, picture, captureUs) {
  tile.ctx.drawImage(picture, 0, 0, tile.canvas.width, tile.canvas.height);
  picture.close();
  tile.drawn += 1;
  // Capture time on the publisher's clock → hub clock → this browser's clock.
  const offsetUs = (tile.info.clock_offset_ms || 0) * 1000;
  tile.glassMs = (Date.now() * 1000 + hubOffsetUs - (captureUs - offsetUs)) / 1000;
}

function sendAck(id) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ack", id }));
}

function onFrame(buf) {
  const view = new DataView(buf);
  if (view.getUint8(0) !== 1) return;
  const codec = view.getUint8(1);
  const isKeyframe = (view.getUint8(2) & 1) === 1;
  const id = view.getUint32(4);
  const captureUs = Number(view.getBigUint64(16));
  const tile = tiles.get(id);
  const ack = () => sendAck(id);
  if (!tile) { ack(); return; }
  if (codec === 2) { onH264(tile, id, new Uint8Array(buf, 24), isKeyframe, captureUs); return; }
  if (decoding.has(id)) { ack(); return; }
  decoding.add(id);
  createImageBitmap(new Blob([new Uint8Array(buf, 24)], { type: "image/jpeg" }))
    .then((bmp) => draw(tile, bmp, captureUs))
    .catch(() => {})
    .finally(() => { decoding.delete(id); ack(); });
}

// RFC 6381 codec string ("avc1.PPCCLL") from the SPS of an Annex B access unit, or null.
function avcCodec(data) {
  for (let i = 0; i + 6 < data.length; i++) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1 && (data[i + 3] & 0x1f) === 7) {
      const hex = (b) => b.toString(16).padStart(2, "0").toUpperCase();
      return `avc1.${hex(data[i + 4])}${hex(data[i + 5])}${hex(data[i + 6])}`;
    }
  }
  return null;
}

// H.264: every frame the hub sends must be decoded, in order (the hub itself skips only to
// keyframes). A decoder starts at a keyframe; after an error the tile waits for the next one.
// The ack goes out once the decoder has taken the chunk with little queued (a decoder may
// hold a picture until the next chunk arrives), else when a picture comes out, so the hub
// never runs ahead of the decoder.
function onH264(tile, id, data, isKeyframe, captureUs) {
  if (!tile.h264 || tile.h264.state === "closed") {
    const codec = isKeyframe ? avcCodec(data) : null;
    if (!codec || typeof VideoDecoder === "undefined") { sendAck(id); return; }
    tile.h264 = new VideoDecoder({
      output: (frame) => {
        draw(tile, frame, frame.timestamp);
        if (tile.ackPending) { tile.ackPending = false; sendAck(id); }
      },
      error: (e) => {
        tile.h264 = null; tile.h264Errors = (tile.h264Errors || 0) + 1;
        console.warn("H.264 decoder", e);
        if (tile.h264Errors >= H264_ERRORS_BEFORE_JPEG) useJpeg(`${tile.h264Errors} decoder errors`);
        sendAck(id);
      },
    });
    // No description: the stream is Annex B, parameter sets in band before each keyframe.
    tile.h264.configure({ codec, optimizeForLatency: true });
  }
  try {
    tile.h264.decode(new EncodedVideoChunk({ type: isKeyframe ? "key" : "delta", timestamp: captureUs, data }));
    if (tile.h264.decodeQueueSize <= 1) sendAck(id); else tile.ackPending = true;
  } catch (e) {
    tile.h264 = null;
    sendAck(id);
  }
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
  const key = ids.join(",") + (jpegOnly ? " jpeg" : "");
  if (key === subscribed || !ws || ws.readyState !== WebSocket.OPEN) return;
  subscribed = key;
  ws.send(JSON.stringify({ type: "subscribe", ids, jpeg: jpegOnly }));
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

// The network view of one tile: four small graphs from /api/streams/{id}/net, refreshed
// every second while open.
const NET_GRAPHS = [
  { title: "throughput (Mbit/s)", series: (d) => [[d.hub_t, d.hub_throughput_mbps, "#4cf"]] },
  // The kernel's receive-side estimate (hub_rcv_rtt_ms) times whole windows, seconds for a
  // video stream: not a round trip, so not drawn.
  { title: "RTT (ms): app ping (green), publisher TCP srtt (yellow)", series: (d) => [[d.ping_t, d.ping_rtt_ms, "#8d8"], [d.pub_t, d.pub_rtt_ms, "#fc4"]] },
  { title: "congestion window (segments)", series: (d) => [[d.pub_t, d.pub_cwnd, "#f8c"]] },
  { title: "time-sequence: bytes received", series: (d) => [[d.hub_t, d.hub_bytes_received, "#9f6"]] },
];

function toggleNet(tile) {
  if (tile.netTimer) {
    clearInterval(tile.netTimer); tile.netTimer = null;
    tile.el.classList.remove("net-open"); tile.net.textContent = "";
    return;
  }
  tile.el.classList.add("net-open");
  tile.net.textContent = "";
  const canvases = NET_GRAPHS.map((g) => {
    const c = document.createElement("canvas"); c.width = 320; c.height = 150; c.title = g.title;
    tile.net.append(c); return c;
  });
  const refresh = () => fetch(`/api/streams/${tile.info.id}/net`)
    .then((r) => r.ok ? r.json() : null)
    .then((d) => { if (d) NET_GRAPHS.forEach((g, i) => plot(canvases[i], g.title, g.series(d))); })
    .catch(() => {});
  refresh();
  tile.netTimer = setInterval(refresh, 1000);
}

function plot(canvas, title, series) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 44, B = 18, T = 16;
  ctx.fillStyle = "rgba(10,10,10,0.92)"; ctx.fillRect(0, 0, W, H);
  ctx.fillStyle = "#ddd"; ctx.font = "11px sans-serif"; ctx.fillText(title, L, 11);
  const xs = series.flatMap(([t]) => t), ys = series.flatMap(([, v]) => v);
  canvas.dataset.points = xs.length;
  if (xs.length < 2) { ctx.fillStyle = "#888"; ctx.fillText("no data yet", L, H / 2); return; }
  const x0 = Math.min(...xs), x1 = Math.max(0, ...xs), y0 = 0, y1 = Math.max(...ys) * 1.1 || 1;
  const px = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - 6);
  const py = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - B - T);
  ctx.strokeStyle = "#555"; ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - 6, H - B); ctx.stroke();
  ctx.fillStyle = "#aaa"; ctx.textAlign = "right";
  const fmt = (v) => v >= 1e6 ? (v / 1e6).toFixed(1) + "M" : v >= 1e3 ? (v / 1e3).toFixed(1) + "k" : v.toFixed(v < 10 ? 1 : 0);
  ctx.fillText(fmt(y1), L - 3, T + 8); ctx.fillText("0", L - 3, H - B);
  ctx.textAlign = "left"; ctx.fillText(`${x0.toFixed(0)} s`, L, H - 4);
  ctx.textAlign = "right"; ctx.fillText("now", W - 6, H - 4); ctx.textAlign = "left";
  for (const [t, v, color] of series) {
    ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
    t.forEach((x, i) => (i ? ctx.lineTo(px(x), py(v[i])) : ctx.moveTo(px(x), py(v[i]))));
    ctx.stroke();
  }
}

// Pick the column count that makes pictures (of the streams' typical aspect) as large as
// possible, then let the grid fill the whole wall: cells stretch, each picture keeps its
// aspect inside its cell (object-fit), so no band of the window stays empty.
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
  const rows = Math.ceil(n / best.cols);
  wall.style.gridTemplateColumns = `repeat(${best.cols}, minmax(0, 1fr))`;
  wall.style.gridTemplateRows = `repeat(${rows}, minmax(0, 1fr))`;
}
window.addEventListener("resize", layout);

connect();
