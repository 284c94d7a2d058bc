"""imagezmq + simplejpeg publishers, measured the way `vidcast bench --encode` measures vidcast's.

N sender processes (fork: the Y4M frames are read into numpy once, before) each encode a frame
with simplejpeg at --quality and send it with imagezmq's ImageSender (REQ/REP, as imagezmq's
docs do), paced at --fps with their phases spread over one period; a late sender skips to the
frame due now, as vidcast's sources do. One receiver process (ImageHub on 127.0.0.1) replies at
once and stamps each frame's arrival. After --warmup, for --duration: frames delivered of those
due, capture-to-receipt latency p50/p99, each sender's CPU time (getrusage, utime + stime) per
frame it delivered, the receiver's CPU. Run by scripts/compare-imagezmq (which makes the venv).
"""

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time

import numpy as np
import imagezmq
import simplejpeg


def read_y4m_bgr(path):
    """Every frame of an 8-bit 4:2:0 Y4M file as a BGR uint8 array (BT.601 limited range,
    the same integer maths as vidcast's yuv_to_rgb)."""
    with open(path, "rb") as f:
        data = f.read()
    header_end = data.index(b"\n")
    fields = data[:header_end].split()
    if fields[0] != b"YUV4MPEG2":
        sys.exit(f"{path}: not a Y4M file")
    width = height = None
    for field in fields[1:]:
        if field[:1] == b"W":
            width = int(field[1:])
        elif field[:1] == b"H":
            height = int(field[1:])
        elif field[:1] == b"C" and not field.startswith(b"C420"):
            sys.exit(f"{path}: only 4:2:0 Y4M is read here, not {field.decode()}")
    cw, ch = (width + 1) // 2, (height + 1) // 2
    frame_bytes = width * height + 2 * cw * ch
    frames = []
    pos = header_end + 1
    while pos < len(data):
        line_end = data.index(b"\n", pos)
        pos = line_end + 1
        plane = np.frombuffer(data, np.uint8, frame_bytes, pos)
        pos += frame_bytes
        y = plane[: width * height].reshape(height, width).astype(np.int32)
        u = plane[width * height : width * height + cw * ch].reshape(ch, cw).astype(np.int32)
        v = plane[width * height + cw * ch :].reshape(ch, cw).astype(np.int32)
        u = u.repeat(2, 0).repeat(2, 1)[:height, :width] - 128
        v = v.repeat(2, 0).repeat(2, 1)[:height, :width] - 128
        c = 298 * (y - 16)
        r = (c + 409 * v + 128) >> 8
        g = (c - 100 * u - 208 * v + 128) >> 8
        b = (c + 516 * u + 128) >> 8
        bgr = np.clip(np.stack([b, g, r], axis=-1), 0, 255).astype(np.uint8)
        frames.append(np.ascontiguousarray(bgr))
    return frames, width, height


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sender(index, args, frames, start, warm, end, results):
    name = f"izmq-{index + 1}"
    out = imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{args.port}")
    period = 1.0 / args.fps
    due = start + index * period / args.senders
    seq = 0
    frames_in_window = 0
    cpu_at_warm = None
    while True:
        now = time.time()
        if due > now:
            time.sleep(due - now)
        now = time.time()
        if now - due > period:
            # More than a frame late: the frame due now, no burst of old ones.
            skipped = int((now - due) / period)
            seq += skipped
            due += skipped * period
        if now >= end:
            break
        if now >= warm and cpu_at_warm is None:
            cpu_at_warm = cpu_seconds()
        capture = time.time()
        jpg = simplejpeg.encode_jpeg(
            frames[seq % len(frames)],
            quality=args.quality,
            colorspace="BGR",
            colorsubsampling=args.subsampling,
        )
        out.send_jpg(f"{name}|{capture:.6f}", jpg)  # REQ: waits for the receiver's reply
        if warm <= capture < end:
            frames_in_window += 1
        seq += 1
        due += period
    cpu = cpu_seconds() - (cpu_at_warm if cpu_at_warm is not None else cpu_seconds())
    results.put({"name": name, "frames": frames_in_window, "cpu_s": cpu})
    out.close()


def receiver(args, ready, warm, end, results):
    hub = imagezmq.ImageHub(open_port=f"tcp://127.0.0.1:{args.port}")
    ready.set()
    latencies = []
    frames = 0
    total_bytes = 0
    cpu_at_warm = None
    cpu_at_end = None
    while time.time() < end + 2.0:
        now = time.time()
        if cpu_at_warm is None and now >= warm:
            cpu_at_warm = cpu_seconds()
        if cpu_at_end is None and now >= end:
            cpu_at_end = cpu_seconds()
        if not hub.zmq_socket.poll(timeout=50):
            continue
        msg, jpg = hub.recv_jpg()
        arrived = time.time()
        if args.decode:
            simplejpeg.decode_jpeg(jpg, colorspace="BGR")
        hub.send_reply(b"OK")
        capture = float(msg.rsplit("|", 1)[1])
        if warm <= capture < end:
            frames += 1
            total_bytes += len(jpg)
            latencies.append((arrived - capture) * 1000.0)
    if cpu_at_warm is None:
        cpu_at_warm = 0.0
    if cpu_at_end is None:
        cpu_at_end = cpu_seconds()
    results.put(
        {
            "frames": frames,
            "bytes": total_bytes,
            "latencies_ms": latencies,
            "cpu_s": cpu_at_end - cpu_at_warm,
        }
    )


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(p / 100.0 * len(sorted_values)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--y4m", required=True)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--port", type=int, default=5555)
    # simplejpeg's default is 4:4:4; vidcast's JPEG encoder (and cameras) use 4:2:0.
    parser.add_argument("--subsampling", default="420", choices=["444", "422", "420"])
    parser.add_argument("--decode", action="store_true", help="the receiver decodes each JPEG")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    frames, width, height = read_y4m_bgr(args.y4m)
    ctx = mp.get_context("fork")  # the senders share the frames read above
    results = ctx.Queue()
    ready = ctx.Event()
    start = time.time() + 1.0 + 0.05 * args.senders
    warm = start + args.warmup
    end = warm + args.duration
    recv = ctx.Process(target=receiver, args=(args, ready, warm, end, results))
    recv.start()
    if not ready.wait(10):
        sys.exit("the receiver did not start")
    senders = [
        ctx.Process(target=sender, args=(i, args, frames, start, warm, end, results))
        for i in range(args.senders)
    ]
    for p in senders:
        p.start()
    got = [results.get(timeout=end - time.time() + 30) for _ in range(args.senders + 1)]
    for p in senders + [recv]:
        p.join(10)
        if p.is_alive():
            p.kill()
    hub = next(r for r in got if "latencies_ms" in r)
    per_sender = [r for r in got if "name" in r]
    sent = sum(r["frames"] for r in per_sender)
    cpu = sum(r["cpu_s"] for r in per_sender)
    each = sorted(r["cpu_s"] * 1000.0 / r["frames"] for r in per_sender if r["frames"])
    lat = sorted(hub["latencies_ms"])
    delivered = hub["frames"]
    result = {
        "system": "imagezmq",
        "setting": f"simplejpeg q{args.quality} {args.subsampling}, REQ/REP",
        "width": width,
        "height": height,
        "senders": args.senders,
        "fps_target": args.fps,
        "duration_s": args.duration,
        "frames_expected": round(args.fps * args.duration) * args.senders,
        "frames_delivered": delivered,
        "frames_sent": sent,
        "latency_ms_p50": percentile(lat, 50),
        "latency_ms_p99": percentile(lat, 99),
        "frame_bytes_avg": hub["bytes"] / max(delivered, 1),
        "sender_cpu_ms_per_frame": cpu * 1000.0 / max(sent, 1),
        "sender_cpu_ms_per_frame_min": each[0] if each else 0.0,
        "sender_cpu_ms_per_frame_max": each[-1] if each else 0.0,
        "sender_cpu_percent": cpu / args.duration / args.senders * 100.0,
        "hub_cpu_ms_per_frame": hub["cpu_s"] * 1000.0 / max(delivered, 1),
        "hub_cpu_percent": hub["cpu_s"] / args.duration * 100.0,
        "versions": {
            "imagezmq": getattr(imagezmq, "__version__", "?"),
            "simplejpeg": getattr(simplejpeg, "__version__", "?"),
            "numpy": np.__version__,
        },
    }
    if args.json:
        print(json.dumps(result))
        return
    fmt = lambda v: "-" if v is None else f"{v:.1f}"
    print(
        f"imagezmq: {args.senders} sender processes at {args.fps:g} fps, {width}x{height} "
        f"from {args.y4m}, {args.duration:g} s measured"
    )
    print("| system | delivered / expected | latency p50 / p99 ms | sender CPU per frame "
          "| sender CPU | receiver CPU per frame | bytes per frame |")
    print("|---|---|---|---|---|---|---|")
    r = result
    print(
        f"| imagezmq {r['setting']} | {delivered} / {r['frames_expected']} "
        f"| {fmt(r['latency_ms_p50'])} / {fmt(r['latency_ms_p99'])} "
        f"| {r['sender_cpu_ms_per_frame']:.2f} ms ({r['sender_cpu_ms_per_frame_min']:.2f}–"
        f"{r['sender_cpu_ms_per_frame_max']:.2f}) | {r['sender_cpu_percent']:.1f} % "
        f"| {r['hub_cpu_ms_per_frame']:.2f} ms ({r['hub_cpu_percent']:.0f} %) "
        f"| {r['frame_bytes_avg']:.0f} |"
    )


if __name__ == "__main__":
    main()
