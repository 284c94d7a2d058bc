"""N Python senders at --fps → one Python receiver: vidcast (Sender → hub → Receiver) or
imagezmq (ImageSender → ImageHub, JPEG by simplejpeg at --quality, REQ/REP as its docs do,
or PUB/SUB), measured in the receiving Python process.

Senders are forked processes sharing the camera-like frames read from a Y4M file once
(scripts/imagezmq_bench.py's reader), each paced at --fps with phases spread over a period.
The receiver, after --warmup, for --duration: frames it got per second (of N × fps due),
capture-to-receipt latency p50/p99/max (receipt = a decoded BGR ndarray in Python), CPU
time of the receiving process (all its threads: getrusage) per frame. With --slow S the
receiver sleeps S seconds after each frame (a detector), and the latency of the first and
last seconds shows whether it stays bounded. Run by scripts/compare-python-imagezmq.
"""

import argparse
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imagezmq_bench import cpu_seconds, read_y4m_bgr  # noqa: E402


def pace(index, senders, fps, stop_at, send):
    """Calls send(frame_number) at fps until stop_at; a late sender skips to the frame due."""
    period = 1.0 / fps
    start = time.time() + index * period / senders
    n = 0
    while True:
        due = start + n * period
        now = time.time()
        if due > stop_at:
            return
        if due > now:
            time.sleep(due - now)
        send(n)
        n = max(n + 1, int((time.time() - start) / period))


def vidcast_sender(args, frames, index, stop_at):
    import vidcast

    with vidcast.Sender(
        args.hub, name=f"cam-{index}", codec=args.codec, quality=args.quality, fps=args.fps, adapt=args.adapt
    ) as sender:
        pace(index, args.senders, args.fps, stop_at, lambda n: sender.send(frames[n % len(frames)]))


def imagezmq_sender(args, frames, index, stop_at):
    import imagezmq
    import simplejpeg

    if args.pubsub:
        sender = imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{args.port + index}", REQ_REP=False)
    else:
        sender = imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{args.port}")

    def send(n):
        jpg = simplejpeg.encode_jpeg(frames[n % len(frames)], quality=args.quality, colorspace="BGR")
        sender.send_jpg(f"cam-{index}|{time.time():.6f}", jpg)

    pace(index, args.senders, args.fps, stop_at, send)
    sender.close()


def receive(args, start_at, stop_at):
    """(latencies in s with their receipt times, frames, cpu seconds) over the window."""
    latencies = []
    if args.system == "vidcast":
        import vidcast

        receiver = vidcast.Receiver(args.hub)

        def next_frame():
            got = receiver.recv(timeout=0.5)
            if got is None:
                return None
            stream, frame = got
            return stream.capture_time, frame

    else:
        import imagezmq
        import simplejpeg

        if args.pubsub:
            hub = imagezmq.ImageHub(open_port=f"tcp://127.0.0.1:{args.port}", REQ_REP=False)
            for i in range(1, args.senders):
                hub.connect(f"tcp://127.0.0.1:{args.port + i}")
        else:
            hub = imagezmq.ImageHub(open_port=f"tcp://127.0.0.1:{args.port}")
        hub.zmq_socket.setsockopt(__import__("zmq").RCVTIMEO, 500)

        def next_frame():
            try:
                msg, jpg = hub.recv_jpg()
            except Exception:  # zmq.Again on timeout
                return None
            frame = simplejpeg.decode_jpeg(jpg, colorspace="BGR")
            if not args.pubsub:
                hub.send_reply(b"OK")
            return float(msg.split("|")[1]), frame

    cpu0 = None
    while time.time() < stop_at:
        got = next_frame()
        now = time.time()
        if got is None:
            continue
        capture, frame = got
        assert frame.shape == (args.height, args.width, 3)
        if now >= start_at:
            if cpu0 is None:
                cpu0 = cpu_seconds()
            latencies.append((now, now - capture))
        if args.slow:
            time.sleep(args.slow)
    cpu = cpu_seconds() - (cpu0 or cpu_seconds())
    return latencies, cpu


def percentile(values, p):
    return float(np.percentile(values, p)) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=["vidcast", "imagezmq"], required=True)
    parser.add_argument("--y4m", required=True)
    parser.add_argument("--senders", type=int, default=1)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--codec", default="jpeg", help="vidcast: jpeg or h264")
    parser.add_argument("--hub", default="127.0.0.1:9999", help="vidcast: the hub")
    parser.add_argument(
        "--adapt", action="store_true", help="vidcast: let the link steer quality and rate (imagezmq cannot)"
    )
    parser.add_argument("--port", type=int, default=5555, help="imagezmq: the receiver's port")
    parser.add_argument("--pubsub", action="store_true", help="imagezmq: PUB/SUB instead of REQ/REP")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--slow", type=float, default=0.0, help="receiver sleeps this long per frame")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    frames, args.width, args.height = read_y4m_bgr(args.y4m)
    start_at = time.time() + 1.0 + args.warmup
    stop_at = start_at + args.duration
    target = vidcast_sender if args.system == "vidcast" else imagezmq_sender
    ctx = mp.get_context("fork")
    senders = [ctx.Process(target=target, args=(args, frames, i, stop_at)) for i in range(args.senders)]
    for p in senders:
        p.start()
    try:
        latencies, cpu = receive(args, start_at, stop_at)
    finally:
        # One deadline for all: a REQ/REP sender waits forever for a reply the receiver,
        # done, never sends (joining each for 10 s in turn took minutes at 16 senders).
        deadline = time.time() + 5
        for p in senders:
            p.join(timeout=max(0.0, deadline - time.time()))
            if p.is_alive():
                p.kill()
                p.join()
    values = [l for _, l in latencies]
    first = [l for t, l in latencies if t < start_at + 2]
    last = [l for t, l in latencies if t >= stop_at - 2]
    label = args.system + (f" {args.codec}" if args.system == "vidcast" else (" pub/sub" if args.pubsub else " req/rep"))
    result = {
        "system": label,
        "senders": args.senders,
        "fps_due": args.senders * args.fps,
        "fps_delivered": len(values) / args.duration,
        "latency_p50_ms": percentile(values, 50) * 1000,
        "latency_p99_ms": percentile(values, 99) * 1000,
        "latency_max_ms": max(values, default=float("nan")) * 1000,
        "latency_first_2s_ms": percentile(first, 50) * 1000,
        "latency_last_2s_ms": percentile(last, 50) * 1000,
        "receiver_cpu_ms_per_frame": cpu / max(len(values), 1) * 1000,
        "slow_s": args.slow,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{label:18} {args.senders:2} x {args.fps:g} fps: {result['fps_delivered']:6.1f} fps delivered, "
            f"latency p50 {result['latency_p50_ms']:7.1f} ms p99 {result['latency_p99_ms']:7.1f} ms "
            f"(first 2 s {result['latency_first_2s_ms']:.0f}, last 2 s {result['latency_last_2s_ms']:.0f}), "
            f"receiver CPU {result['receiver_cpu_ms_per_frame']:.2f} ms/frame"
        )


if __name__ == "__main__":
    main()
