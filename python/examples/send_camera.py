"""The original project's client in six lines: a camera (or a video file) to a vidcast hub.

    python send_camera.py HUB [CAMERA_INDEX_OR_FILE]

Needs OpenCV (pip install opencv-python); `vidcast send --source camera HUB` does the same
without Python.
"""
import sys

import cv2
import vidcast

source = sys.argv[2] if len(sys.argv) > 2 else "0"
capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
with vidcast.Sender(sys.argv[1]) as sender:
    while (frame := capture.read()[1]) is not None:
        sender.send(frame)  # returns at once: the newest frame wins, encoding runs in Rust
