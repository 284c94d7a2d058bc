"""Test helpers: a `vidcast serve` child process on 127.0.0.1 and bounded polling."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def vidcast_bin() -> str:
    """The CLI binary the hub runs from: VIDCAST_BIN, else the workspace's debug build."""
    path = os.environ.get("VIDCAST_BIN") or str(REPO / "target" / "debug" / "vidcast")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no vidcast binary at {path} (cargo build -p vidcast, or set VIDCAST_BIN)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, condition, timeout=10.0, interval=0.02):
    """Polls `condition` until it is truthy (returned) or `timeout` seconds pass (fails,
    naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Hub:
    """`vidcast serve` on 127.0.0.1:port as a child process; restartable on the same port."""

    def __init__(self, port: int, *extra: str):
        self.port = port
        self.extra = extra
        self.process = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Hub":
        args = [vidcast_bin(), "serve", "--listen", self.address, "--http", "off", *self.extra]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def listening():
            if self.process.poll() is not None:
                pytest.fail(f"vidcast serve exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(f"the hub to listen on {self.address}", listening)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def hub():
    h = Hub(free_port()).start()
    yield h
    h.stop()
