from typing import Iterator, List, Optional, Sequence, Tuple, TypedDict

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]

class VidcastError(RuntimeError):
    """The hub could not be reached or refused, or a sender or receiver stopped; the message
    is the one `vidcast send` or `vidcast view` prints."""

class SenderStats(TypedDict):
    sent: int
    dropped: int
    rtt_ms: Optional[float]
    adapting: bool

class Sender:
    """Publishes numpy frames to a vidcast hub (`host` or `host:port`, default port 9999).

    `send` copies the picture and returns: the newest picture wins, encoding (H.264 or JPEG,
    adapted to the link) and the socket run on Rust threads, and the sender reconnects like
    `vidcast send`. The stream's size is that of the first frame. `fps` is the stream's
    nominal rate: the hub shows it, and with `adapt=True` (the link steers quality, rate and
    size, as `vidcast send` does by default) frames sent faster are thinned to it."""

    def __init__(
        self,
        hub: str,
        name: Optional[str] = None,
        codec: str = "h264",
        quality: int = 80,
        bitrate: int = 1_500_000,
        fps: float = 30.0,
        token: Optional[str] = None,
        tls_fingerprint: Optional[str] = None,
        adapt: bool = True,
        reconnect: bool = True,
        max_backoff: float = 5.0,
    ) -> None: ...
    def send(self, frame: Frame, format: str = "bgr") -> None:
        """H×W×3 uint8 (BGR, or "rgb"), or H×W for format="gray"."""
    def send_jpeg(self, data: bytes) -> None:
        """An already encoded JPEG, sent as it is on a JPEG stream at full quality."""
    @property
    def stats(self) -> SenderStats: ...
    @property
    def name(self) -> str: ...
    def close(self, timeout: float = 2.0) -> None:
        """Sends what is waiting, says goodbye, stops; raises the error that stopped it early."""
    def __enter__(self) -> "Sender": ...
    def __exit__(self, *args: object) -> bool: ...

class Stream:
    """A stream of the hub, and the frame it came with (seq, times and latency are those of
    that frame; 0 or None with events)."""

    id: int
    name: str
    peer: str
    codec: Optional[str]
    width: int
    height: int
    live: bool
    seq: int
    capture_time: Optional[float]
    received_time: Optional[float]
    latency_ms: Optional[float]
    frames: int
    skipped: int

class Receiver:
    """Every stream of a hub (or those in `names`) as BGR numpy frames, newest per stream:
    a consumer slower than the streams gets the newest picture, never a backlog. Reconnects
    after a lost hub like `vidcast view`."""

    def __init__(
        self,
        hub: str,
        names: Optional[Sequence[str]] = None,
        token: Optional[str] = None,
        tls_fingerprint: Optional[str] = None,
        reconnect: bool = True,
        max_backoff: float = 5.0,
        name: str = "python",
    ) -> None: ...
    def recv(self, timeout: Optional[float] = None) -> Optional[Tuple[Stream, Frame]]:
        """The next frame not handed out yet, of any stream; None after `timeout` seconds."""
    def recv_jpeg(
        self, timeout: Optional[float] = None, quality: int = 90
    ) -> Optional[Tuple[Stream, bytes]]: ...
    def latest(self, name: str) -> Optional[Tuple[Stream, Frame]]:
        """The newest frame of the live stream `name`, without waiting."""
    def streams(self) -> List[Stream]: ...
    def events(self) -> List[Tuple[str, Stream]]:
        """("connected" | "disconnected", stream) since the last call, oldest first."""
    @property
    def status(self) -> str: ...
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[Tuple[Stream, Frame]]: ...
    def __next__(self) -> Tuple[Stream, Frame]: ...
    def __enter__(self) -> "Receiver": ...
    def __exit__(self, *args: object) -> bool: ...
