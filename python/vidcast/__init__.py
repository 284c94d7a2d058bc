"""vidcast from Python: live video from many clients to one hub.

``Sender`` publishes numpy frames (BGR, as OpenCV gives them) to a ``vidcast serve`` hub;
``Receiver`` gets every stream of a hub back as BGR numpy frames, newest frame per stream.
Both run the Rust client crates on threads of their own (encoding, decoding and the socket
never hold the GIL); ``vidcast.imagezmq`` offers imagezmq's ``ImageSender`` and ``ImageHub``
on top of them, so an imagezmq program changes one import.
"""

from ._vidcast import Receiver, Sender, Stream, VidcastError

__all__ = ["Sender", "Receiver", "Stream", "VidcastError"]
