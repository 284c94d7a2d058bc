"""The examples run: detector.py republishes each stream with boxes drawn."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import vidcast
from conftest import wait_until

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_detector_republishes_each_stream_with_boxes(hub):
    stop = threading.Event()

    def camera():
        frame = np.full((240, 320, 3), 40, np.uint8)
        frame[96:128, 160:192] = 250  # the bright block the stand-in detector finds
        with vidcast.Sender(hub.address, name="cam", codec="jpeg") as sender:
            while not stop.is_set():
                sender.send(frame)
                time.sleep(1 / 30)

    thread = threading.Thread(target=camera)
    thread.start()
    detector = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "detector.py"), hub.address, "--max-frames", "60"],
        stderr=subprocess.PIPE,
    )
    receiver = vidcast.Receiver(hub.address, names=["cam-boxes"])
    try:
        stream, frame = wait_until("the annotated stream", lambda: receiver.recv(timeout=0.1), timeout=20)
        assert stream.name == "cam-boxes"
        # A green frame around the bright block (BGR), within JPEG's error.
        b, g, r = frame[97, 175].astype(int)
        assert g > 200 and b < 60 and r < 60, frame[97, 175]
    finally:
        stop.set()
        thread.join(timeout=10)
        receiver.close()
        detector.kill()
        detector.wait(timeout=10)
