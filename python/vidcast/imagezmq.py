"""imagezmq's ``ImageSender`` and ``ImageHub`` on vidcast: an imagezmq program changes one
import (``import imagezmq`` → ``from vidcast import imagezmq``) and gets vidcast's hub, wall,
reconnection and latest-frame-wins delivery.

Addresses: imagezmq's ``tcp://HOST:PORT`` names the hub. Port 5555 (imagezmq's default)
means vidcast's default port 9999; any other port is the hub's port; ``*`` (an ImageHub's
``open_port='tcp://*:5555'``) means this machine, 127.0.0.1. ``VIDCAST_HUB=host:port`` in the
environment overrides both sides' address. Run ``vidcast serve`` where imagezmq's hub ran.

Differences: ``send_image`` never waits for the hub (REQ/REP and PUB/SUB behave the same:
the reply is always ``b'OK'``); the message string is the stream's name on the hub (1 to
64 bytes, no control characters); ``recv_image`` returns the newest frame of a stream not
yet returned (a slow hub skips frames instead of queueing them); ``send_reply`` does nothing.
"""

import os
from typing import Dict, Optional, Tuple

import numpy as np

from ._vidcast import Receiver, Sender, VidcastError

__all__ = ["ImageSender", "ImageHub", "VidcastError"]

IMAGEZMQ_DEFAULT_PORT = 5555
VIDCAST_DEFAULT_PORT = 9999


def hub_address(address: str) -> str:
    """The vidcast hub an imagezmq address means (see the module's doc)."""
    override = os.environ.get("VIDCAST_HUB")
    if override:
        return override
    rest = address.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    if not host:
        host, port = rest, ""
    if host in ("*", "", "0.0.0.0"):
        host = "127.0.0.1"
    if not port or int(port) == IMAGEZMQ_DEFAULT_PORT:
        port = str(VIDCAST_DEFAULT_PORT)
    return f"{host}:{port}"


class ImageSender:
    """imagezmq's ImageSender: ``send_image(name, image)``, ``send_jpg(name, jpg_buffer)``.

    One vidcast stream per message string (a name), each a ``vidcast.Sender`` made on first
    use. ``codec`` and the other keyword arguments go to every ``Sender`` (default JPEG at
    quality 90, what imagezmq users send with ``send_jpg``)."""

    def __init__(self, connect_to: str = "tcp://127.0.0.1:5555", REQ_REP: bool = True, **sender_options):
        self.hub = hub_address(connect_to)
        self.REQ_REP = REQ_REP
        sender_options.setdefault("codec", "jpeg")
        sender_options.setdefault("quality", 90)
        self._options = sender_options
        self._senders: Dict[str, Sender] = {}

    def _sender(self, msg: str, is_jpeg: bool = False) -> Sender:
        sender = self._senders.get(msg)
        if sender is None:
            options = dict(self._options)
            if is_jpeg:
                # Given JPEGs go out as they are: no lower quality to adapt to.
                options.update(codec="jpeg", adapt=False)
            sender = Sender(self.hub, name=str(msg), **options)
            self._senders[msg] = sender
        return sender

    def send_image(self, msg: str, image: np.ndarray) -> bytes:
        """Sends an OpenCV image (H×W×3 BGR, or H×W grey); returns b'OK' at once."""
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"vidcast sends uint8 pictures, got dtype {image.dtype}")
        self._sender(msg).send(image, format="gray" if image.ndim == 2 else "bgr")
        return b"OK"

    def send_jpg(self, msg: str, jpg_buffer) -> bytes:
        """Sends a JPEG (bytes, or the array cv2.imencode gives) as it is."""
        self._sender(msg, is_jpeg=True).send_jpeg(bytes(np.asarray(jpg_buffer, dtype=np.uint8).tobytes()))
        return b"OK"

    # imagezmq's own names for the two modes.
    send_image_reqrep = send_image
    send_image_pubsub = send_image
    send_jpg_reqrep = send_jpg
    send_jpg_pubsub = send_jpg

    def close(self) -> None:
        """Sends what is waiting and closes every stream."""
        senders, self._senders = self._senders, {}
        for sender in senders.values():
            sender.close()

    def __enter__(self) -> "ImageSender":
        return self

    def __exit__(self, *args) -> None:
        self.close()


class ImageHub:
    """imagezmq's ImageHub: ``recv_image()`` → ``(name, image)``, ``recv_jpg()`` →
    ``(name, jpg_bytes)``, ``send_reply()`` (nothing to do).

    A ``vidcast.Receiver`` on the hub: every stream, newest frame first-come first-served;
    ``names`` and the other keyword arguments go to it."""

    def __init__(self, open_port: str = "tcp://*:5555", REQ_REP: bool = True, **receiver_options):
        self.hub = hub_address(open_port)
        self.REQ_REP = REQ_REP
        self._receiver = Receiver(self.hub, **receiver_options)

    def recv_image(self, copy: bool = False) -> Tuple[str, np.ndarray]:
        """Waits for the next frame: (its stream's name, BGR image)."""
        got = self._receiver.recv()
        if got is None:
            raise VidcastError("the receiver is closed")
        stream, image = got
        return stream.name, image

    def recv_jpg(self, copy: bool = False) -> Tuple[str, bytes]:
        """Waits for the next frame as a JPEG: (its stream's name, JPEG bytes)."""
        got = self._receiver.recv_jpeg()
        if got is None:
            raise VidcastError("the receiver is closed")
        stream, jpg = got
        return stream.name, jpg

    def send_reply(self, reply_message: Optional[bytes] = b"OK") -> None:
        """Nothing to do: vidcast's senders never wait for the hub."""

    def close(self) -> None:
        self._receiver.close()

    def __enter__(self) -> "ImageHub":
        return self

    def __exit__(self, *args) -> None:
        self.close()
