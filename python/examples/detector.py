"""A detector loop: every stream of a hub in, boxes drawn, each annotated stream published
back under a new name ("NAME-boxes"), so the wall shows it next to the original.

    python detector.py HUB [--max-frames N]

The "detector" is a stand-in (the brightest region of a grey, blurred picture, found with
numpy alone) so the example runs anywhere; put a real model where `detect` is. A detector
slower than the cameras always gets each camera's newest picture: frames it had no time
for are skipped by the hub, never queued.
"""
import argparse

import numpy as np

import vidcast

SUFFIX = "-boxes"


def detect(frame: np.ndarray):
    """Boxes (x, y, w, h) around the brightest 32x32 block: a stand-in for a model."""
    grey = frame.mean(axis=2)
    h, w = grey.shape
    bh, bw = max(h // 32, 1), max(w // 32, 1)
    blocks = grey[: bh * 32, : bw * 32].reshape(bh, 32, bw, 32).mean(axis=(1, 3))
    y, x = np.unravel_index(np.argmax(blocks), blocks.shape)
    return [(int(x) * 32, int(y) * 32, 32, 32)]


def draw(frame: np.ndarray, boxes, colour=(0, 255, 0), thickness=3) -> np.ndarray:
    """Rectangles in `colour` (BGR), drawn with numpy (cv2.rectangle does the same)."""
    out = frame.copy()
    for x, y, w, h in boxes:
        out[y : y + thickness, x : x + w] = colour
        out[y + h - thickness : y + h, x : x + w] = colour
        out[y : y + h, x : x + thickness] = colour
        out[y : y + h, x + w - thickness : x + w] = colour
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hub")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: never)")
    args = parser.parse_args()
    outputs = {}
    handled = 0
    with vidcast.Receiver(args.hub) as receiver:
        for stream, frame in receiver:
            if stream.name.endswith(SUFFIX):
                continue  # our own output: do not annotate it again
            out = outputs.get(stream.name)
            if out is None:
                out = outputs[stream.name] = vidcast.Sender(args.hub, name=stream.name + SUFFIX, codec=stream.codec or "h264")
            out.send(draw(frame, detect(frame)))
            handled += 1
            if args.max_frames and handled >= args.max_frames:
                break
    for out in outputs.values():
        out.close()


if __name__ == "__main__":
    main()
