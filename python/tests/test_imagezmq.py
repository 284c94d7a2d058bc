"""imagezmq's README programs, changed only in their import, against `vidcast serve`."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import vidcast
from vidcast import imagezmq

PROGRAMS = Path(__file__).parent / "imagezmq_programs"


def test_imagezmq_addresses_map_to_the_hub(monkeypatch):
    monkeypatch.delenv("VIDCAST_HUB", raising=False)
    assert imagezmq.hub_address("tcp://jeff-macbook:5555") == "jeff-macbook:9999"
    assert imagezmq.hub_address("tcp://*:5555") == "127.0.0.1:9999"
    assert imagezmq.hub_address("tcp://10.0.0.2:7000") == "10.0.0.2:7000"
    monkeypatch.setenv("VIDCAST_HUB", "127.0.0.1:4000")
    assert imagezmq.hub_address("tcp://jeff-macbook:5555") == "127.0.0.1:4000"


def test_the_readme_programs_run_unchanged_but_for_the_import(hub):
    env = dict(os.environ, VIDCAST_HUB=hub.address)
    receiver = subprocess.Popen(
        [sys.executable, str(PROGRAMS / "receive_images.py"), "tcp://*:5555", "10"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sender = subprocess.run(
        [sys.executable, str(PROGRAMS / "send_images.py"), "tcp://127.0.0.1:5555", "90"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert sender.returncode == 0, sender.stderr.decode()
    out, err = receiver.communicate(timeout=30)
    assert receiver.returncode == 0, err.decode()
    assert out.decode().startswith("received 10 images from ")


def test_send_jpg_and_recv_jpg_carry_jpeg_bytes(hub):
    hub_side = imagezmq.ImageHub(open_port=f"tcp://{hub.address}")
    # A real JPEG without OpenCV: what a vidcast JPEG stream carries, taken raw.
    with vidcast.Sender(hub.address, name="maker", codec="jpeg") as maker:
        made = None
        for _ in range(100):
            maker.send(np.full((120, 160, 3), (10, 200, 60), np.uint8))
            made = hub_side._receiver.recv_jpeg(timeout=0.1)
            if made:
                break
    assert made is not None, "no JPEG came from the maker stream"
    jpg = np.frombuffer(made[1], np.uint8)  # as cv2.imencode gives it
    with imagezmq.ImageSender(connect_to=f"tcp://{hub.address}") as sender:
        got = None
        for _ in range(100):
            sender.send_jpg("jpg-cam", jpg)
            got = hub_side._receiver.recv_jpeg(timeout=0.1)
            if got and got[0].name == "jpg-cam":
                break
        assert got is not None and got[0].name == "jpg-cam", "no JPEG arrived within 100 tries"
        assert got[1] == jpg.tobytes(), "a JPEG stream's frames go through untouched"
    hub_side.close()
