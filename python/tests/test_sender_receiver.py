"""Sender → hub → Receiver, in one Python process, over real sockets on 127.0.0.1."""

import os
import threading
import time

import numpy as np
import pytest

import vidcast
from conftest import Hub, free_port, wait_until

W, H = 320, 240


STRIPES = 4


def pattern(n: int) -> np.ndarray:
    """Frame `n` (0 to 4095) of a known pattern: three flat grey stripes carrying n's hex
    digits as levels 16 apart (JPEG and H.264 keep a flat stripe's centre within a few
    levels), then a coloured stripe that shows whether blue and red were swapped (BGR)."""
    frame = np.zeros((H, W, 3), np.uint8)
    stripe = W // STRIPES
    for i in range(3):
        digit = (n >> (4 * i)) & 0xF
        frame[:, i * stripe : (i + 1) * stripe] = digit * 16 + 8
    frame[:, 3 * stripe :] = (200, 40, 90)
    return frame


def centre(frame: np.ndarray, i: int) -> np.ndarray:
    return frame[H // 2, i * (W // STRIPES) + W // (2 * STRIPES)].astype(int)


def number_of(frame: np.ndarray) -> int:
    """The frame number the pattern carries."""
    return sum(int(round((centre(frame, i).mean() - 8) / 16)) << (4 * i) for i in range(3))


def check_pixels(frame: np.ndarray, n: int, tolerance: int) -> None:
    expected = pattern(n)
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    for i in range(STRIPES):
        diff = np.abs(centre(frame, i) - centre(expected, i)).max()
        assert diff <= tolerance, f"frame {n} stripe {i}: {centre(frame, i)} vs {centre(expected, i)}"


@pytest.mark.parametrize("codec", ["jpeg", "h264"])
def test_300_frames_arrive_in_order_with_their_pixels(hub, codec):
    receiver = vidcast.Receiver(hub.address)
    seen = []
    with vidcast.Sender(hub.address, name=f"pattern-{codec}", codec=codec, quality=95, bitrate=4_000_000, adapt=False) as sender:
        # Announce the stream, then send at 100 fps, each frame given its time to arrive.
        sender.send(pattern(0))
        wait_until("the stream to be listed", lambda: receiver.streams())
        for n in range(300):
            sender.send(pattern(n))
            got = receiver.recv(timeout=0.5)
            while got is not None:
                stream, frame = got
                assert stream.name == f"pattern-{codec}"
                seen.append((number_of(frame), frame))
                got = receiver.recv(timeout=0)
            time.sleep(0.005)
        deadline = time.monotonic() + 5
        while (not seen or seen[-1][0] != 299) and time.monotonic() < deadline:
            got = receiver.recv(timeout=0.2)
            if got:
                seen.append((number_of(got[1]), got[1]))
    receiver.close()
    numbers = [n for n, _ in seen]
    assert numbers == sorted(numbers), f"out of order: {numbers}"
    assert numbers[-1] == 299
    # Latest frame wins may skip a frame when the machine is busy; most must arrive.
    assert len(set(numbers)) >= 200, f"only {len(set(numbers))} of 300 frames arrived"
    for n, frame in seen:
        check_pixels(frame, n, tolerance=12)


def test_a_slow_receiver_gets_recent_frames_not_a_backlog(hub):
    receiver = vidcast.Receiver(hub.address)
    stop = threading.Event()

    def publish():
        with vidcast.Sender(hub.address, name="fast", codec="jpeg") as sender:
            n = 0
            while not stop.is_set():
                sender.send(pattern(n % 4096))
                n += 1
                time.sleep(1 / 60)

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        wait_until("a first frame", lambda: receiver.recv(timeout=0.1))
        latencies = []
        for _ in range(8):
            time.sleep(0.25)  # a detector at 4 fps
            stream, frame = receiver.recv(timeout=2)
            latencies.append(time.time() - stream.received_time)
            assert stream.latency_ms is None or stream.latency_ms < 500
        # Each frame handed out arrived at most one 30 fps interval plus scheduling before
        # it was asked for: the newest, not one queued since the last call 250 ms ago.
        assert max(latencies) < 0.5, latencies
        assert stream.skipped > 0, "a 4 fps consumer of a 30 fps stream must skip frames"
    finally:
        stop.set()
        thread.join(timeout=10)
        receiver.close()


def test_both_sides_recover_from_a_hub_restart():
    hub = Hub(free_port()).start()
    receiver = vidcast.Receiver(hub.address, max_backoff=0.5)
    sender = vidcast.Sender(hub.address, name="survivor", codec="jpeg", max_backoff=0.5)
    try:
        sender.send(pattern(1))
        wait_until("a frame before the restart", lambda: sender.send(pattern(1)) or receiver.recv(timeout=0.05))
        hub.stop()
        wait_until(
            "the disconnect event",
            lambda: any(kind == "disconnected" for kind, _ in receiver.events()),
        )
        hub.start()

        def after_restart():
            sender.send(pattern(2))
            got = receiver.recv(timeout=0.05)
            return got is not None and number_of(got[1]) == 2

        wait_until("a frame after the restart", after_restart, timeout=15)
        assert any(kind == "connected" for kind, _ in receiver.events())
    finally:
        sender.close()
        receiver.close()
        hub.stop()


def test_latest_and_events_follow_a_stream(hub):
    receiver = vidcast.Receiver(hub.address, names=["cam"])
    with vidcast.Sender(hub.address, name="cam", codec="jpeg") as sender:
        with vidcast.Sender(hub.address, name="other", codec="jpeg") as other:
            other.send(pattern(9))

            def newest():
                sender.send(pattern(7))
                return receiver.latest("cam")

            stream, frame = wait_until("cam's newest frame", newest)
            assert stream.name == "cam" and number_of(frame) == 7
            assert receiver.latest("other") is None, "names=['cam'] leaves 'other' out"
            assert [s.name for s in receiver.streams()] == ["cam"]
            # The counters follow the connection a few times a second.
            wait_until("the sent counter", lambda: sender.stats["sent"] >= 1)
    wait_until(
        "cam's disconnect",
        lambda: [(k, s.name) for k, s in receiver.events()].count(("disconnected", "cam")) == 1
        or None,
    )
    receiver.close()


def test_errors_are_exceptions_with_the_cli_words(hub):
    with pytest.raises(ValueError, match="is a http URL"):
        vidcast.Sender("http://127.0.0.1:9999")
    with pytest.raises(ValueError, match="H×W×3"):
        vidcast.Sender(hub.address).send(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="codec must be"):
        vidcast.Sender(hub.address, codec="vp8")
    secured = Hub(free_port(), "--token", "sesame").start()
    try:
        sender = vidcast.Sender(secured.address, token="wrong", codec="jpeg")
        sender.send(pattern(0))
        with pytest.raises(vidcast.VidcastError, match="refused this client"):
            wait_until("the refusal", lambda: sender.send(pattern(0)) or False, timeout=5)
        receiver = vidcast.Receiver(secured.address, token="wrong")
        with pytest.raises(vidcast.VidcastError, match="refused this viewer"):
            receiver.recv(timeout=5)
    finally:
        secured.stop()


def test_an_offline_streams_last_picture_is_not_handed_out(hub):
    watcher = vidcast.Receiver(hub.address)
    with vidcast.Sender(hub.address, name="gone", codec="jpeg") as sender:
        wait_until("a frame", lambda: sender.send(pattern(3)) or watcher.recv(timeout=0.05))
    watcher.close()
    # The hub keeps the stream offline with its last picture; a new receiver lists nothing
    # live and hands out no frame of it.
    late = vidcast.Receiver(hub.address)
    try:
        assert late.recv(timeout=1.0) is None
        assert late.latest("gone") is None
        assert late.streams() == []
    finally:
        late.close()


@pytest.mark.parametrize("layout", ["rgb", "gray", "strided"])
def test_rgb_grey_and_strided_arrays_arrive_as_bgr(hub, layout):
    bgr = pattern(0x5A3)
    if layout == "rgb":
        given, kwargs = np.ascontiguousarray(bgr[:, :, ::-1]), {"format": "rgb"}
    elif layout == "gray":
        given, kwargs = np.ascontiguousarray(bgr[:, :, 1]), {"format": "gray"}
        bgr = np.repeat(given[:, :, None], 3, axis=2)
    else:  # a view with negative strides: the picture mirrored left to right
        given, kwargs = bgr[:, ::-1], {}
        bgr = np.ascontiguousarray(given)
    receiver = vidcast.Receiver(hub.address)
    with vidcast.Sender(hub.address, name=f"layout-{layout}", codec="jpeg", quality=95, adapt=False) as sender:
        def arrived():
            sender.send(given, **kwargs)
            return receiver.recv(timeout=0.05)

        _, frame = wait_until("a frame", arrived)
    receiver.close()
    for x in range(W // (2 * STRIPES), W, W // STRIPES):
        got, want = frame[H // 2, x].astype(int), bgr[H // 2, x].astype(int)
        assert np.abs(got - want).max() <= 12, f"{layout} at x={x}: {got} vs {want}"


def test_arrays_that_are_not_pictures_are_refused(hub):
    sender = vidcast.Sender(hub.address, name="shapes")
    with pytest.raises(ValueError, match="H×W×3"):
        sender.send(np.zeros((48, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="grey frame"):
        sender.send(np.zeros((48, 64, 3), np.uint8), format="gray")
    with pytest.raises(ValueError, match="format must be"):
        sender.send(np.zeros((48, 64, 3), np.uint8), format="yuv")
    with pytest.raises(ValueError, match="2 to 8192 pixels"):
        sender.send(np.zeros((0, 64, 3), np.uint8))
    sender.send(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="the size of its first frame"):
        sender.send(np.zeros((48, 66, 3), np.uint8))
    sender.close()


def decoding_threads() -> list:
    """Names of this process's H.264 decoding threads (one per live H.264 stream a Receiver
    watches), from /proc/self/task."""
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                name = comm.read().strip()
        except FileNotFoundError:  # the thread ended while listed
            continue
        if name.startswith("vidcast-h264-"):
            names.append(name)
    return sorted(names)


def test_several_h264_streams_decode_at_once_with_their_pixels(hub):
    count = 4
    receiver = vidcast.Receiver(hub.address)
    senders = [
        vidcast.Sender(hub.address, name=f"h264-{i}", codec="h264", bitrate=4_000_000, adapt=False)
        for i in range(count)
    ]
    seen = {f"h264-{i}": [] for i in range(count)}

    def take(timeout):
        got = receiver.recv(timeout=timeout)
        while got is not None:
            stream, frame = got
            seen[stream.name].append((number_of(frame), frame))
            got = receiver.recv(timeout=0)

    def every_last_frame():
        take(0.05)
        return all(got and got[-1][0] == 1000 * i + 89 for i, got in enumerate(seen.values()))

    try:
        for i, sender in enumerate(senders):
            sender.send(pattern(1000 * i))
        wait_until("every stream listed", lambda: len(receiver.streams()) == count)
        # Each stream carries its own numbers (stream i: 1000 * i + n), all sent at once.
        for n in range(90):
            for i, sender in enumerate(senders):
                sender.send(pattern(1000 * i + n))
            take(0.2)
            time.sleep(0.01)
        wait_until("every stream's last frame", every_last_frame)
        assert len(decoding_threads()) == count, decoding_threads()
    finally:
        for sender in senders:
            sender.close()
        receiver.close()
    for i, (name, got) in enumerate(seen.items()):
        numbers = [n for n, _ in got]
        assert numbers == sorted(numbers), f"{name} out of order: {numbers}"
        assert all(1000 * i <= n < 1000 * i + 90 for n in numbers), f"{name} has another's frames"
        assert len(set(numbers)) >= 45, f"{name}: only {len(set(numbers))} of 90 frames arrived"
        for n, frame in got:
            check_pixels(frame, n, tolerance=12)


def test_h264_decoding_threads_end_with_their_streams_and_the_receiver(hub):
    before = len(os.listdir("/proc/self/task"))
    assert decoding_threads() == []
    receiver = vidcast.Receiver(hub.address)
    for round_ in range(2):
        # Streams come, and each gets one decoding thread while it is live ...
        senders = [vidcast.Sender(hub.address, name=f"come-go-{round_}-{i}", codec="h264") for i in range(3)]

        def all_three_decoding():
            for sender in senders:
                sender.send(pattern(5))
            receiver.recv(timeout=0.05)
            return len(decoding_threads()) == 3

        wait_until(f"three decoding threads (round {round_})", all_three_decoding)
        # ... and go: their threads end (streams the hub keeps offline included).
        for sender in senders[:2]:
            sender.close()
        wait_until("two streams' threads to end", lambda: len(decoding_threads()) == 1)
        senders[2].close()
        wait_until("the last stream's thread to end", lambda: decoding_threads() == [])
    with vidcast.Sender(hub.address, name="left-running", codec="h264") as sender:
        wait_until(
            "a thread for a stream still live",
            lambda: sender.send(pattern(6)) or receiver.recv(timeout=0.05) and len(decoding_threads()) == 1,
        )
        # Closing the receiver ends the threads of streams still live.
        receiver.close()
        assert decoding_threads() == []
    wait_until("every thread to end", lambda: len(os.listdir("/proc/self/task")) <= before)
