// vidcast's browser publisher: capture (camera or screen), encode (WebCodecs H.264, else JPEG
// from a canvas), and vidcast's own protocol (PROTOCOL.md) over the hub's /publish/ws
// WebSocket: the binary messages, concatenated, are the byte stream a TCP publisher sends.
// Latest frame wins: a frame is encoded only when the socket has room; none is ever queued.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// ---- the wire protocol (PROTOCOL.md; big-endian) ----
const MAGIC = [0x89, 0x56, 0x43, 0x41, 0x53, 0x54, 0x0d, 0x0a];
const KIND = { hello: 0x01, welcome: 0x02, reject: 0x03, frame: 0x10, ping: 0x20, pong: 0x21,
  goodbye: 0x30, keyframeRequest: 0x81, encoderReport: 0x83 };
const CODEC = { jpeg: 1, h264: 2 };
// The hub takes WebSocket messages of at most 64 KiB (browser.rs MAX_MESSAGE).
const MAX_MESSAGE = 64 * 1024;
// Encode only while the socket holds less than this unsent (latest frame wins)...
const MAX_BUFFERED = 128 * 1024;
// ...and the hub has answered a ping sent after all but this many bytes. Chromium drains
// bufferedAmount into a socket buffer that can hold seconds of video on a slow link, so the
// hub's pong is what tells what it has received: a ping follows a frame at most every
// PING_EVERY_MS (well under the hub's 50 pings a second).
const MAX_UNACKED = 128 * 1024;
const PING_EVERY_MS = 40;
const KEYFRAME_EVERY_MS = 2000;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Now on this machine's wall clock, µs since the Unix epoch (monotonic within the page). */
const nowUs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));

function message(kind, payload) {
  const out = new Uint8Array(5 + payload.length);
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

function helloPayload(codec, width, height, fps, name, token) {
  const n = enc.encode(name), t = enc.encode(token);
  const p = new Uint8Array(2 + 1 + 1 + 2 + 2 + 4 + 1 + n.length + 1 + t.length);
  const v = new DataView(p.buffer);
  v.setUint16(0, 1); p[2] = 1; p[3] = codec; v.setUint16(4, width); v.setUint16(6, height);
  v.setUint32(8, Math.round(fps * 1000)); p[12] = n.length; p.set(n, 13);
  p[13 + n.length] = t.length; p.set(t, 14 + n.length);
  return p;
}

function frameMessage(seq, captureUs, isKey, data) {
  const out = new Uint8Array(5 + 17 + data.length);
  const v = new DataView(out.buffer);
  out[0] = KIND.frame; v.setUint32(1, 17 + data.length);
  v.setBigUint64(5, BigInt(seq)); v.setBigUint64(13, captureUs); out[21] = isKey ? 1 : 0;
  out.set(data, 22);
  return out;
}

function u64s(...values) {
  const p = new Uint8Array(8 * values.length);
  const v = new DataView(p.buffer);
  values.forEach((x, i) => v.setBigUint64(8 * i, x));
  return p;
}

function encoderReport(level, quality, fps, width, height, linkBps) {
  const p = new Uint8Array(18);
  const v = new DataView(p.buffer);
  p[0] = level; p[1] = quality; v.setUint32(2, Math.round(fps * 1000));
  v.setUint16(6, width); v.setUint16(8, height); v.setBigUint64(10, BigInt(Math.round(linkBps)));
  return message(KIND.encoderReport, p);
}

/** Splits the hub's byte stream into messages (after its magic). */
class Reader {
  constructor() { this.buf = new Uint8Array(0); this.magicLeft = MAGIC.length; }
  push(bytes) {
    const b = new Uint8Array(this.buf.length + bytes.length);
    b.set(this.buf); b.set(bytes, this.buf.length); this.buf = b;
    const out = [];
    if (this.magicLeft > 0) {
      const n = Math.min(this.magicLeft, this.buf.length);
      for (let i = 0; i < n; i++) {
        if (this.buf[i] !== MAGIC[MAGIC.length - this.magicLeft + i]) throw new Error("not a vidcast hub");
      }
      this.magicLeft -= n; this.buf = this.buf.slice(n);
    }
    while (this.magicLeft === 0 && this.buf.length >= 5) {
      const len = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(1);
      if (len > 1 << 20) throw new Error(`message of ${len} bytes from the hub`);
      if (this.buf.length < 5 + len) break;
      out.push({ kind: this.buf[0], payload: this.buf.slice(5, 5 + len) });
      this.buf = this.buf.slice(5 + len);
    }
    return out;
  }
}

// ---- the page ----
const sizes = ["320x240", "640x480", "1280x720", "1920x1080"];
const form = { source: $("source"), name: $("name"), size: $("size"), fps: $("fps"), codec: $("codec"), token: $("token") };
form.name.value = params.get("name") || localStorage.getItem("vidcast-publish-name") || "";
for (const key of ["source", "size", "fps", "codec"]) {
  const v = params.get(key) || localStorage.getItem(`vidcast-publish-${key}`);
  if (v) form[key].value = v;
}
if (!window.isSecureContext) {
  $("insecure").hidden = false;
  $("https-url").textContent = `https://${location.host}/publish`;
}

let session = null;

$("form").addEventListener("submit", (e) => { e.preventDefault(); start(); });
$("stop").addEventListener("click", () => stop("stopped"));
window.addEventListener("pagehide", () => stop("page closed"));

function setState(text) { $("state").textContent = text; }

async function start() {
  if (session) return;
  const name = form.name.value.trim();
  if (!name) { setState("a name is needed"); return; }
  localStorage.setItem("vidcast-publish-name", name);
  for (const key of ["source", "size", "fps", "codec"]) localStorage.setItem(`vidcast-publish-${key}`, form[key].value);
  const [width, height] = form.size.value.split("x").map(Number);
  const fps = Math.max(1, Math.min(60, Number(form.fps.value) || 30));
  $("start").disabled = true; $("stop").disabled = false;
  try {
    session = new Publisher({ name, width, height, fps, token: form.token.value,
      source: form.source.value, codec: form.codec.value });
    await session.run();
  } catch (e) {
    setState(`error: ${e.message || e}`);
    if (session) session.close(`error: ${e.message || e}`);
    session = null;
    $("start").disabled = false; $("stop").disabled = true;
  }
}

function stop(why) {
  if (!session) return;
  session.close(why);
  session = null;
  $("start").disabled = false; $("stop").disabled = true;
  setState(why);
}

/** Whether this browser's WebCodecs can encode H.264 at this size; the codec string or null. */
async function h264Support(width, height, fps) {
  if (typeof VideoEncoder === "undefined") return null;
  // Constrained baseline; level 3.1 up to 1280x720@30, 4.0 above.
  const codec = width * height * fps > 1280 * 720 * 30 ? "avc1.42E028" : "avc1.42E01F";
  try {
    const r = await VideoEncoder.isConfigSupported({ codec, width, height, bitrate: 1e6, framerate: fps, avc: { format: "annexb" } });
    return r.supported ? codec : null;
  } catch { return null; }
}

/** The adaptation ladder (the idea of `vidcast send`'s): quality or bit rate first, then the
 *  frame rate, then the size. Level 0 is what the user asked for. */
function ladder(fps) {
  return [
    { q: 100, fps, scale: 1 }, { q: 70, fps, scale: 1 }, { q: 50, fps, scale: 1 },
    { q: 35, fps, scale: 1 }, { q: 35, fps: Math.max(1, fps / 2), scale: 1 },
    { q: 35, fps: Math.max(1, fps / 2), scale: 0.5 },
  ];
}

class Publisher {
  constructor(o) {
    Object.assign(this, o);
    this.seq = 0; this.closed = false; this.level = 0; this.streamId = null;
    this.sent = { frames: 0, bytes: 0, skipped: 0 }; this.window = { frames: 0, skipped: 0, bytes: 0, at: performance.now() };
    this.lastKeyAt = 0; this.wantKey = true; this.lastFrameAt = 0; this.captured = new Map();
    this.stableSince = performance.now(); this.figures = "–"; this.latency = "…";
    // Bytes handed to the socket, and those the hub has confirmed (its pong to a ping sent
    // after them); pings not answered yet, oldest first (at most 64).
    this.bytesOut = 0; this.bytesAcked = 0; this.pingsOut = []; this.lastPingAt = 0;
  }

  async run() {
    setState(`asking for the ${this.source}…`);
    const video = { width: { ideal: this.width }, height: { ideal: this.height }, frameRate: { ideal: this.fps } };
    this.stream = this.source === "screen"
      ? await navigator.mediaDevices.getDisplayMedia({ video, audio: false })
      : await navigator.mediaDevices.getUserMedia({ video, audio: false });
    this.track = this.stream.getVideoTracks()[0];
    this.track.addEventListener("ended", () => stop(`the ${this.source} ended`));
    $("preview").srcObject = this.stream;
    const wantH264 = this.codec !== "jpeg";
    this.h264Codec = wantH264 ? await h264Support(this.width, this.height, this.fps) : null;
    if (this.codec === "h264" && !this.h264Codec) throw new Error("this browser cannot encode H.264 (WebCodecs)");
    this.codecName = this.h264Codec ? "h264" : "jpeg";
    this.steps = ladder(this.fps);
    this.bitrate = Math.round(this.width * this.height * this.fps * 0.15);
    await this.connect();
    this.ticker = setInterval(() => this.tick(), 1000);
    this.capture();
  }

  connect() {
    return new Promise((resolve, reject) => {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${scheme}//${location.host}/publish/ws`);
      ws.binaryType = "arraybuffer";
      this.ws = ws; this.reader = new Reader();
      ws.onopen = () => {
        setState("handshake…");
        const codec = CODEC[this.codecName];
        this.sendBytes(Uint8Array.from(MAGIC));
        this.sendBytes(message(KIND.hello, helloPayload(codec, this.width, this.height, this.fps, this.name, this.token)));
      };
      ws.onmessage = (e) => {
        let msgs;
        try { msgs = this.reader.push(new Uint8Array(e.data)); } catch (err) { this.close(err.message); return; }
        for (const m of msgs) {
          const r = this.onMessage(m);
          if (r === "welcome") resolve();
          if (typeof r === "object") { reject(r); }
        }
      };
      ws.onclose = () => {
        if (!this.closed) { reject(new Error("the hub closed the connection")); stop(this.why || "the hub closed the connection"); }
      };
      ws.onerror = () => reject(new Error("cannot connect to the hub"));
    });
  }

  onMessage({ kind, payload }) {
    const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    switch (kind) {
      case KIND.welcome: {
        this.streamId = Number(v.getBigUint64(2));
        let shown = this.name;
        if (payload.length > 18) shown = dec.decode(payload.slice(19, 19 + payload[18]));
        this.shownName = shown;
        setState(`publishing as "${shown}" (stream ${this.streamId}, ${this.codecName === "h264" ? "H.264" : "JPEG"})`);
        this.report(0);
        return "welcome";
      }
      case KIND.reject: {
        this.why = `refused: ${dec.decode(payload.slice(1))}`;
        return new Error(this.why);
      }
      case KIND.ping:
        // The hub's clock offset estimate: our receive and send times (PROTOCOL.md).
        this.sendBytes(message(KIND.pong, u64s(v.getBigUint64(0), nowUs(), nowUs())));
        return null;
      case KIND.pong: {
        const sent = v.getBigUint64(0);
        this.rttMs = Number(nowUs() - sent - (v.getBigUint64(16) - v.getBigUint64(8))) / 1000;
        // The hub keeps only its newest pong: earlier pings may never be answered.
        const at = this.pingsOut.findIndex((p) => p.sentUs === sent);
        if (at >= 0) { this.bytesAcked = this.pingsOut[at].bytesOut; this.pingsOut.splice(0, at + 1); }
        return null;
      }
      case KIND.goodbye:
        this.why = `the hub said goodbye: ${dec.decode(payload.slice(1))}`;
        return new Error(this.why);
      case KIND.keyframeRequest:
        this.wantKey = true;
        return null;
      default:
        return null; // optional kinds (>= 0x80) are skipped
    }
  }

  sendBytes(bytes) {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.bytesOut += bytes.length;
    for (let at = 0; at < bytes.length; at += MAX_MESSAGE) this.ws.send(bytes.subarray(at, at + MAX_MESSAGE));
  }

  /** Sends an EncoderReport for `level` (PROTOCOL.md). */
  report(level) {
    const s = this.steps[level];
    const [w, h] = this.sizeAt(level);
    const linkBps = level > 0 ? this.linkBps || 0 : 0;
    this.sendBytes(encoderReport(level, this.codecName === "h264" ? s.q : this.jpegQuality(level), s.fps, w, h, linkBps));
  }

  jpegQuality(level) { return Math.round(80 * this.steps[level].q / 100); }

  sizeAt(level) {
    const s = this.steps[level].scale;
    // Even sizes (4:2:0).
    return [Math.max(2, Math.round(this.width * s / 2) * 2), Math.max(2, Math.round(this.height * s / 2) * 2)];
  }

  /** Reads frames from the track: MediaStreamTrackProcessor where there is one, else the
   *  preview element on a timer. */
  async capture() {
    if (typeof MediaStreamTrackProcessor !== "undefined") {
      const reader = new MediaStreamTrackProcessor({ track: this.track }).readable.getReader();
      this.stopReader = () => reader.cancel().catch(() => {});
      while (!this.closed) {
        const { value: frame, done } = await reader.read();
        if (done) break;
        this.onFrame(frame, frame.displayWidth, frame.displayHeight);
      }
      return;
    }
    const el = $("preview");
    const grab = () => {
      if (this.closed) return;
      if (el.videoWidth > 0) {
        const frame = typeof VideoFrame !== "undefined" ? new VideoFrame(el, { timestamp: performance.now() * 1000 }) : el;
        this.onFrame(frame, el.videoWidth, el.videoHeight);
      }
      this.grabTimer = setTimeout(grab, 1000 / this.fps / 2);
    };
    grab();
  }

  /** One captured picture: sent if it is due and the socket has room, else let go. */
  onFrame(frame, srcW, srcH) {
    const capturedAt = nowUs();
    const step = this.steps[this.level];
    const now = performance.now();
    const release = () => { if (frame.close) frame.close(); };
    if (this.closed || this.streamId === null || now - this.lastFrameAt < 1000 / step.fps * 0.85) { release(); return; }
    const busy = this.ws.bufferedAmount > MAX_BUFFERED || this.bytesOut - this.bytesAcked > MAX_UNACKED
      || (this.encoder && this.encoder.encodeQueueSize > 1) || this.jpegBusy;
    if (busy) {
      // A JPEG stream numbers every captured frame, so one let go shows as a gap the hub
      // counts; an H.264 stream numbers encoded frames (a gap would break its chain).
      if (this.codecName === "jpeg") this.seq++;
      this.window.skipped++; this.sent.skipped++; release(); return;
    }
    this.lastFrameAt = now;
    const [w, h] = this.sizeAt(this.level);
    if (this.codecName === "h264") this.encodeH264(frame, capturedAt, w, h, srcW, srcH);
    else this.encodeJpeg(frame, capturedAt, w, h);
  }

  scaled(frame, w, h) {
    if (!this.canvas || this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas = typeof OffscreenCanvas !== "undefined" ? new OffscreenCanvas(w, h) : Object.assign(document.createElement("canvas"), { width: w, height: h });
      this.ctx = this.canvas.getContext("2d");
    }
    this.ctx.drawImage(frame, 0, 0, w, h);
    return this.canvas;
  }

  configureH264(w, h) {
    const step = this.steps[this.level];
    const bitrate = Math.max(100e3, Math.round(this.bitrate * step.q / 100 * step.fps / this.fps * (w * h) / (this.width * this.height)));
    const config = { codec: this.h264Codec, width: w, height: h, bitrate, framerate: step.fps,
      avc: { format: "annexb" }, latencyMode: "realtime" };
    if (!this.encoder) {
      this.encoder = new VideoEncoder({
        output: (chunk) => this.onChunk(chunk),
        error: (e) => stop(`encoder error: ${e.message}`),
      });
    }
    this.encoder.configure(config);
    this.encoderSize = `${w}x${h}@${bitrate}`;
    this.wantKey = true;
  }

  encodeH264(frame, capturedAt, w, h, srcW, srcH) {
    if (this.encoderSize === undefined || !this.encoderSize.startsWith(`${w}x${h}@`) || this.reconfigure) {
      this.reconfigure = false;
      this.configureH264(w, h);
    }
    let input = frame;
    if (srcW !== w || srcH !== h || !(frame instanceof VideoFrame)) {
      input = new VideoFrame(this.scaled(frame, w, h), { timestamp: frame.timestamp || performance.now() * 1000 });
      if (frame.close) frame.close();
    }
    const now = performance.now();
    const keyFrame = this.wantKey || now - this.lastKeyAt >= KEYFRAME_EVERY_MS;
    if (keyFrame) { this.wantKey = false; this.lastKeyAt = now; }
    this.captured.set(input.timestamp, capturedAt);
    if (this.captured.size > 64) this.captured.delete(this.captured.keys().next().value);
    this.encoder.encode(input, { keyFrame });
    input.close();
  }

  onChunk(chunk) {
    if (this.closed) return;
    const data = new Uint8Array(chunk.byteLength);
    chunk.copyTo(data);
    const capturedAt = this.captured.get(chunk.timestamp) || nowUs();
    this.captured.delete(chunk.timestamp);
    this.sendFrame(capturedAt, chunk.type === "key", data);
  }

  encodeJpeg(frame, capturedAt, w, h) {
    const canvas = this.scaled(frame, w, h);
    if (frame.close) frame.close();
    const quality = this.jpegQuality(this.level) / 100;
    this.jpegBusy = true;
    const done = (blob) => {
      this.jpegBusy = false;
      if (!blob || this.closed) return;
      blob.arrayBuffer().then((b) => this.sendFrame(capturedAt, true, new Uint8Array(b)));
    };
    if (canvas.convertToBlob) canvas.convertToBlob({ type: "image/jpeg", quality }).then(done, () => { this.jpegBusy = false; });
    else canvas.toBlob(done, "image/jpeg", quality);
  }

  sendFrame(capturedAt, isKey, data) {
    if (this.closed) return;
    this.seq += 1;
    this.sendBytes(frameMessage(this.seq, capturedAt, isKey, data));
    if (performance.now() - this.lastPingAt >= PING_EVERY_MS) this.ping();
    this.sent.frames++; this.sent.bytes += data.length;
    this.window.frames++; this.window.bytes += data.length;
  }

  ping() {
    const sentUs = nowUs();
    this.lastPingAt = performance.now();
    this.sendBytes(message(KIND.ping, u64s(sentUs)));
    this.pingsOut.push({ sentUs, bytesOut: this.bytesOut });
    if (this.pingsOut.length > 64) this.pingsOut.shift();
  }

  /** Once a second: figures, a ping, and the adaptation step. */
  tick() {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return;
    this.ping();
    const now = performance.now();
    const secs = (now - this.window.at) / 1000;
    const fps = this.window.frames / secs, kbps = this.window.bytes * 8 / secs / 1000;
    const offered = this.window.frames + this.window.skipped;
    const skippedShare = offered > 0 ? this.window.skipped / offered : 0;
    // While backlogged, what left is about what the link takes.
    if (skippedShare > 0.15) this.linkBps = this.window.bytes * 8 / secs;
    const before = this.level;
    if (skippedShare > 0.15 && this.level < this.steps.length - 1) { this.level++; this.stableSince = now; }
    else if (skippedShare === 0 && this.level > 0 && now - this.stableSince > 5000) { this.level--; this.stableSince = now; }
    else if (skippedShare > 0) this.stableSince = now;
    if (this.level !== before) { this.reconfigure = this.codecName === "h264"; this.report(this.level); }
    const step = this.steps[this.level];
    const [w, h] = this.sizeAt(this.level);
    const adapting = this.level > 0
      ? `adapting: level ${this.level} (${this.codecName === "h264" ? `${step.q}% bit rate` : `quality ${this.jpegQuality(this.level)}`}, ${step.fps} fps, ${w}x${h}${this.linkBps ? `, link ${(this.linkBps / 1e6).toFixed(1)} Mbit/s` : ""})`
      : "full quality";
    const queue = (this.encoder ? ` · encoder queue ${this.encoder.encodeQueueSize}` : "")
      + (this.rttMs !== undefined ? ` · rtt ${this.rttMs.toFixed(0)} ms` : "");
    this.figures = `${fps.toFixed(1)} fps · ${kbps.toFixed(0)} kbit/s · hub latency ${this.latency} · ${this.sent.skipped} let go${queue} · ${adapting}`;
    $("figures").textContent = this.figures;
    this.window = { frames: 0, skipped: 0, bytes: 0, at: now };
    this.fetchLatency();
  }

  /** The capture-to-hub latency the hub measured (needs a token that may view). */
  async fetchLatency() {
    try {
      const r = await fetch("/api/streams", { cache: "no-store" });
      if (!r.ok) { this.latency = r.status === 401 || r.status === 403 ? "(needs a view token)" : "?"; return; }
      const s = (await r.json()).find((x) => x.id === this.streamId);
      this.latency = s && s.latency_ms ? `${s.latency_ms.p50.toFixed(1)} ms` : "…";
    } catch { this.latency = "?"; }
  }

  close(why) {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ticker); clearTimeout(this.grabTimer);
    if (this.stopReader) this.stopReader();
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      const r = enc.encode(String(why).slice(0, 200));
      const p = new Uint8Array(1 + r.length); p[0] = 0; p.set(r, 1);
      this.sendBytes(message(KIND.goodbye, p));
      this.ws.close();
    }
    if (this.encoder && this.encoder.state !== "closed") this.encoder.close();
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
  }
}


// ---- a QR code of this page's address, so a phone can join by pointing at the screen ----
// Byte mode, error correction level M, versions 1 to 10 (up to 213 bytes), after ISO/IEC
// 18004; the structure follows Project Nayuki's QR Code generator. Written here: no CDN.
const QR_ECC_PER_BLOCK = [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26];
const QR_BLOCKS = [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5];

function qrRawModules(ver) {
  let n = (16 * ver + 128) * ver + 64;
  if (ver >= 2) { const a = Math.floor(ver / 7) + 2; n -= (25 * a - 10) * a - 55; if (ver >= 7) n -= 36; }
  return n;
}

function gfMul(x, y) {
  let z = 0;
  for (let i = 7; i >= 0; i--) { z = (z << 1) ^ ((z >>> 7) * 0x11d); z ^= ((y >>> i) & 1) * x; }
  return z;
}

function rsDivisor(degree) {
  const r = new Array(degree).fill(0); r[degree - 1] = 1;
  let root = 1;
  for (let i = 0; i < degree; i++) {
    for (let j = 0; j < r.length; j++) { r[j] = gfMul(r[j], root); if (j + 1 < r.length) r[j] ^= r[j + 1]; }
    root = gfMul(root, 0x02);
  }
  return r;
}

function rsRemainder(data, divisor) {
  const r = new Array(divisor.length).fill(0);
  for (const b of data) {
    const factor = b ^ r.shift(); r.push(0);
    divisor.forEach((c, i) => { r[i] ^= gfMul(c, factor); });
  }
  return r;
}

/** The QR matrix (rows of booleans, true = dark) for `text`, or null if it is too long. */
function qrEncode(text) {
  const bytes = enc.encode(text);
  let ver = 1;
  for (; ver <= 10; ver++) {
    const dataCodewords = Math.floor(qrRawModules(ver) / 8) - QR_ECC_PER_BLOCK[ver] * QR_BLOCKS[ver];
    const countBits = ver < 10 ? 8 : 16;
    if (4 + countBits + 8 * bytes.length <= dataCodewords * 8) break;
  }
  if (ver > 10) return null;
  const dataCodewords = Math.floor(qrRawModules(ver) / 8) - QR_ECC_PER_BLOCK[ver] * QR_BLOCKS[ver];
  // Bits: mode 0100, the count, the bytes, a terminator, padding.
  const bits = [];
  const put = (v, n) => { for (let i = n - 1; i >= 0; i--) bits.push((v >>> i) & 1); };
  put(4, 4); put(bytes.length, ver < 10 ? 8 : 16);
  for (const b of bytes) put(b, 8);
  put(0, Math.min(4, dataCodewords * 8 - bits.length));
  put(0, (8 - bits.length % 8) % 8);
  for (let pad = 0xec; bits.length < dataCodewords * 8; pad ^= 0xec ^ 0x11) put(pad, 8);
  const data = [];
  for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  // Blocks, error correction, interleaving.
  const numBlocks = QR_BLOCKS[ver], eccLen = QR_ECC_PER_BLOCK[ver];
  const raw = Math.floor(qrRawModules(ver) / 8);
  const numShort = numBlocks - raw % numBlocks, shortLen = Math.floor(raw / numBlocks);
  const divisor = rsDivisor(eccLen);
  const blocks = [];
  for (let i = 0, k = 0; i < numBlocks; i++) {
    const dat = data.slice(k, k + shortLen - eccLen + (i < numShort ? 0 : 1));
    k += dat.length;
    const ecc = rsRemainder(dat, divisor);
    if (i < numShort) dat.push(0);
    blocks.push(dat.concat(ecc));
  }
  const codewords = [];
  for (let i = 0; i < blocks[0].length; i++) {
    blocks.forEach((b, j) => { if (i !== shortLen - eccLen || j >= numShort) codewords.push(b[i]); });
  }
  // The matrix: function patterns, then data, then the mask with the lowest penalty.
  const size = ver * 4 + 17;
  const dark = Array.from({ length: size }, () => new Array(size).fill(false));
  const fixed = Array.from({ length: size }, () => new Array(size).fill(false));
  const set = (x, y, d) => { dark[y][x] = d; fixed[y][x] = true; };
  for (let i = 0; i < size; i++) { set(6, i, i % 2 === 0); set(i, 6, i % 2 === 0); }
  for (const [cx, cy] of [[3, 3], [size - 4, 3], [3, size - 4]]) {
    for (let dy = -4; dy <= 4; dy++) for (let dx = -4; dx <= 4; dx++) {
      const d = Math.max(Math.abs(dx), Math.abs(dy)), x = cx + dx, y = cy + dy;
      if (x >= 0 && x < size && y >= 0 && y < size) set(x, y, d !== 2 && d !== 4);
    }
  }
  const align = [];
  if (ver > 1) {
    const n = Math.floor(ver / 7) + 2;
    const step = Math.ceil((ver * 4 + 4) / (n * 2 - 2)) * 2;
    align.push(6);
    for (let pos = size - 7; align.length < n; pos -= step) align.splice(1, 0, pos);
  }
  align.forEach((ax, i) => align.forEach((ay, j) => {
    if ((i === 0 && j === 0) || (i === 0 && j === align.length - 1) || (i === align.length - 1 && j === 0)) return;
    for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) set(ax + dx, ay + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
  }));
  const format = (mask) => {
    const d = (0 << 3) | mask; // level M's format bits are 00
    let rem = d;
    for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
    const f = ((d << 10) | rem) ^ 0x5412;
    const bit = (i) => ((f >>> i) & 1) !== 0;
    for (let i = 0; i <= 5; i++) set(8, i, bit(i));
    set(8, 7, bit(6)); set(8, 8, bit(7)); set(7, 8, bit(8));
    for (let i = 9; i < 15; i++) set(14 - i, 8, bit(i));
    for (let i = 0; i < 8; i++) set(size - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i++) set(8, size - 15 + i, bit(i));
    set(8, size - 8, true);
  };
  format(0);
  if (ver >= 7) {
    let rem = ver;
    for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
    const v = (ver << 12) | rem;
    for (let i = 0; i < 18; i++) {
      const b = ((v >>> i) & 1) !== 0, a = size - 11 + (i % 3), c = Math.floor(i / 3);
      set(a, c, b); set(c, a, b);
    }
  }
  let i = 0;
  for (let right = size - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    for (let vert = 0; vert < size; vert++) {
      for (let j = 0; j < 2; j++) {
        const x = right - j, upward = ((right + 1) & 2) === 0, y = upward ? size - 1 - vert : vert;
        if (!fixed[y][x] && i < codewords.length * 8) { dark[y][x] = ((codewords[i >>> 3] >>> (7 - (i & 7))) & 1) !== 0; i++; }
      }
    }
  }
  const masks = [
    (x, y) => (x + y) % 2 === 0, (x, y) => y % 2 === 0, (x) => x % 3 === 0, (x, y) => (x + y) % 3 === 0,
    (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0, (x, y) => (x * y) % 2 + (x * y) % 3 === 0,
    (x, y) => ((x * y) % 2 + (x * y) % 3) % 2 === 0, (x, y) => ((x + y) % 2 + (x * y) % 3) % 2 === 0,
  ];
  const applyMask = (m) => {
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if (!fixed[y][x] && masks[m](x, y)) dark[y][x] = !dark[y][x];
  };
  // Penalty: runs of 5+ (N1), 2x2 blocks (N2), dark/light balance (N4); N3 left out, which
  // only tunes the choice: every mask decodes.
  const penalty = () => {
    let p = 0, darkCount = 0;
    for (let a = 0; a < size; a++) {
      let rowRun = 1, colRun = 1;
      for (let b = 1; b < size; b++) {
        if (dark[a][b] === dark[a][b - 1]) { rowRun++; if (rowRun === 5) p += 3; else if (rowRun > 5) p++; } else rowRun = 1;
        if (dark[b][a] === dark[b - 1][a]) { colRun++; if (colRun === 5) p += 3; else if (colRun > 5) p++; } else colRun = 1;
      }
    }
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
      if (dark[y][x]) darkCount++;
      if (x + 1 < size && y + 1 < size && dark[y][x] === dark[y][x + 1] && dark[y][x] === dark[y + 1][x] && dark[y][x] === dark[y + 1][x + 1]) p += 3;
    }
    return p + Math.floor(Math.abs(darkCount * 20 - size * size * 10) / (size * size)) * 10;
  };
  let best = 0, bestPenalty = Infinity;
  for (let m = 0; m < 8; m++) {
    applyMask(m); format(m);
    const p = penalty();
    if (p < bestPenalty) { best = m; bestPenalty = p; }
    applyMask(m);
  }
  applyMask(best); format(best);
  return dark;
}

function drawQr(canvas, text) {
  const m = qrEncode(text);
  if (!m) { canvas.hidden = true; return; }
  // 4 pixels a module, 4 modules of quiet zone.
  const quiet = 4, px = 4, n = (m.length + 2 * quiet) * px;
  canvas.width = n; canvas.height = n;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, n, n);
  ctx.fillStyle = "#000";
  m.forEach((row, y) => row.forEach((d, x) => { if (d) ctx.fillRect((x + quiet) * px, (y + quiet) * px, px, px); }));
  canvas.dataset.modules = String(m.length);
}

// The address a phone should open: HTTPS when the hub has it (getUserMedia needs it there).
drawQr($("qr"), `${location.protocol}//${location.host}/publish`);

// Kiosks and tests: ?autostart=1 starts at once with the query's settings.
if (params.get("autostart") === "1") start();
