#!/usr/bin/env python3
"""Real numpy pickles for crates/legacy's golden tests (src/python_tests.rs). No network.

  numpy_pickles.py version        prints "numpy X.Y.Z python A.B.C"
  numpy_pickles.py dump SPEC...   writes to stdout, for each SPEC, exactly what the original
                                  client.py sends: struct.pack("Q", len(a)) + a where
                                  a = pickle.dumps(frame, protocol)
  numpy_pickles.py load SPEC...   reads frames from stdin the way the original server.py does
                                  (struct.unpack("Q"), then pickle.loads) and checks each array
                                  against its SPEC; any warning is an error. Exit 1 on mismatch.

SPEC is HxW:ORDER:PROTOCOL[:ro]. ORDER is C, F (np.asfortranarray) or S (a strided view, not
contiguous); "ro" makes the array read-only. The pixels are the test pattern of
crates/legacy/src/cases.rs: byte n of the C-ordered array is (7n + n // 251) % 256.
"""

import pickle
import platform
import struct
import sys
import warnings

import numpy as np


def pattern(h, w):
    n = np.arange(h * w * 3, dtype=np.int64)
    return ((n * 7 + n // 251) % 256).astype(np.uint8).reshape(h, w, 3)


def parse(spec):
    parts = spec.split(":")
    h, w = (int(x) for x in parts[0].split("x"))
    return h, w, parts[1], int(parts[2]), parts[3:] == ["ro"]


def frame_for(spec):
    h, w, order, protocol, readonly = parse(spec)
    a = pattern(h, w)
    if order == "F":
        a = np.asfortranarray(a)
    elif order == "S":
        wide = np.zeros((h, 2 * w, 3), dtype=np.uint8)
        wide[:, ::2] = a
        a = wide[:, ::2]
        # A 1x1 view is contiguous whatever its strides.
        assert h * w == 1 or not (a.flags.c_contiguous or a.flags.f_contiguous)
    if readonly:
        a.flags.writeable = False
    return a, protocol


def read_exact(stream, n):
    data = stream.read(n)
    if len(data) != n:
        sys.exit(f"stream ended after {len(data)} of {n} bytes")
    return data


def main():
    cmd, specs = sys.argv[1], sys.argv[2:]
    if cmd == "version":
        print(f"numpy {np.__version__} python {platform.python_version()}")
    elif cmd == "dump":
        out = sys.stdout.buffer
        for spec in specs:
            frame, protocol = frame_for(spec)
            a = pickle.dumps(frame, protocol=protocol)
            out.write(struct.pack("Q", len(a)) + a)
        out.flush()
    elif cmd == "load":
        stream = sys.stdin.buffer
        for i, spec in enumerate(specs):
            (size,) = struct.unpack("Q", read_exact(stream, struct.calcsize("Q")))
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                frame = pickle.loads(read_exact(stream, size))
            want, _ = frame_for(spec)
            if not (
                isinstance(frame, np.ndarray)
                and frame.dtype == np.uint8
                and frame.shape == want.shape
                and np.array_equal(frame, want)
            ):
                sys.exit(f"frame {i} ({spec}) differs: got {type(frame)} {getattr(frame, 'shape', None)}")
        rest = stream.read()
        if rest:
            sys.exit(f"{len(rest)} bytes after the last frame")
        print(f"{len(specs)} frames ok")
    else:
        sys.exit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
