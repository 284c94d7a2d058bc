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
// Encode only while the socket holds less than this unsent (latest frame wins).
const MAX_BUFFERED = 128 * 1024;
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
      case KIND.pong:
        this.rttMs = Number(nowUs() - v.getBigUint64(0) - (v.getBigUint64(16) - v.getBigUint64(8))) / 1000;
        return null;
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
    const busy = this.ws.bufferedAmount > MAX_BUFFERED
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
    this.sent.frames++; this.sent.bytes += data.length;
    this.window.frames++; this.window.bytes += data.length;
  }

  /** Once a second: figures, a ping, and the adaptation step. */
  tick() {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return;
    this.sendBytes(message(KIND.ping, u64s(nowUs())));
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
    const queue = this.encoder ? ` · encoder queue ${this.encoder.encodeQueueSize}` : "";
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

// Kiosks and tests: ?autostart=1 starts at once with the query's settings.
if (params.get("autostart") === "1") start();
