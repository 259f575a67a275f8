#!/usr/bin/env python3
"""Writes the JPEG fixtures of crates/codec/tests/libjpeg.rs, and libjpeg's luma of each.

Every fixture is a small JPEG that OpenCV's libjpeg-turbo encodes (sampling factors, restart
intervals, quality, grayscale, odd sizes, progressive), next to a binary PGM holding what
libjpeg-turbo decodes as its grayscale output (`cv2.IMREAD_GRAYSCALE`, the Y plane with the
default IDCT). The test holds dsobel's decoder to those bytes exactly.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install opencv-python-headless==5.0.0.93 numpy
    /tmp/venv/bin/python scripts/make-jpeg-fixtures.py crates/codec/tests/fixtures/libjpeg
"""
import os
import sys

import cv2
import numpy as np


def content(width, height, seed):
    """Smooth gradients, hard edges and noise: every kind of coefficient and code length."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    image[..., 0] = 128 + 100 * np.sin(x / 7.0 + seed) * np.cos(y / 11.0)
    image[..., 1] = (x * 255.0 / max(width - 1, 1))
    image[..., 2] = np.where((x // 9 + y // 13) % 2 == 0, 230, 20)
    image += rng.normal(0, 25 if seed % 2 else 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


CASES = [
    # name, width, height, quality, sampling (None = grayscale), restart interval (MCUs), progressive
    ("q90-420", 333, 251, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, 0, False),
    ("q100-444", 97, 61, 100, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, 0, False),
    ("q75-422", 130, 77, 75, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422, 0, False),
    ("q85-440", 71, 130, 85, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440, 0, False),
    ("q95-411", 259, 33, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411, 0, False),
    ("q50-420-restart", 301, 199, 50, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, 3, False),
    ("q98-444-restart1", 45, 37, 98, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, 1, False),
    ("gray-q90", 203, 117, 90, None, 0, False),
    ("gray-q100-restart", 129, 65, 100, None, 5, False),
    ("tiny-1x1", 1, 1, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, 0, False),
    ("thin-1x40", 1, 40, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, 0, False),
    ("thin-40x1", 40, 1, 90, None, 0, False),
    ("edge-17x9", 17, 9, 92, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, 2, False),
    ("progressive-420", 150, 90, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, 0, True),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "crates/codec/tests/fixtures/libjpeg"
    os.makedirs(out, exist_ok=True)
    for seed, (name, width, height, quality, sampling, restart, progressive) in enumerate(CASES):
        image = content(width, height, seed)
        params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_RST_INTERVAL, restart,
                  cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
        if sampling is None:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        else:
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
        ok, encoded = cv2.imencode(".jpg", image, params)
        assert ok, name
        path = os.path.join(out, name + ".jpg")
        with open(path, "wb") as f:
            f.write(encoded.tobytes())
        luma = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        assert luma.shape == (height, width), (name, luma.shape)
        with open(os.path.join(out, name + ".pgm"), "wb") as f:
            f.write(b"P5\n%d %d\n255\n" % (width, height))
            f.write(luma.tobytes())
        print(f"{name}: {len(encoded)} bytes")


if __name__ == "__main__":
    main()
