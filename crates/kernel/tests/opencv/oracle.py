#!/usr/bin/env python3
"""OpenCV's answers for the oracle test of `opencv_oracle.rs`.

Usage: oracle.py DIR. DIR holds `jobs.json` ({"images": [{"name", "width", "height"}], "sobel":
[{"dx", "dy", "ksize"}], "canny": [{"low", "high", "ksize", "l2"}]}) and each image's luma as
`NAME.u8` (row-major bytes). For every image and job this writes OpenCV's result with its
generic code path (`cv2.setUseOptimized(False)`): `NAME.sobel-DX-DY-K.f32` (little-endian
float32, `cv2.Sobel(gray, cv2.CV_32F, dx, dy, ksize=K, borderType=cv2.BORDER_REFLECT_101)`,
K = -1 for Scharr) and `NAME.canny-LOW-HIGH-K-L2.u8` (`cv2.Canny(gray, LOW, HIGH,
apertureSize=K, L2gradient=L2)`). It also runs every job with the optimized path
(`cv2.setUseOptimized(True)`) and prints one JSON line per job whose optimized result differs
from the generic one, with the count and the first few differing pixels, and a last line
`{"done": N, "opencv": VERSION}`.
"""

import json
import os
import sys

import cv2
import numpy as np


def run(gray, job, kind):
    if kind == "sobel":
        return cv2.Sobel(gray, cv2.CV_32F, job["dx"], job["dy"], ksize=job["ksize"],
                         borderType=cv2.BORDER_REFLECT_101)
    return cv2.Canny(gray, job["low"], job["high"], apertureSize=job["ksize"], L2gradient=bool(job["l2"]))


def name_of(job, kind):
    if kind == "sobel":
        return f"sobel-{job['dx']}-{job['dy']}-{job['ksize']}.f32"
    return f"canny-{job['low']}-{job['high']}-{job['ksize']}-{int(job['l2'])}.u8"


def main():
    folder = sys.argv[1]
    with open(os.path.join(folder, "jobs.json")) as f:
        jobs = json.load(f)
    cv2.setNumThreads(1)
    done = 0
    for image in jobs["images"]:
        with open(os.path.join(folder, image["name"] + ".u8"), "rb") as f:
            gray = np.frombuffer(f.read(), dtype=np.uint8).reshape(image["height"], image["width"]).copy()
        for kind in ("sobel", "canny"):
            for job in jobs[kind]:
                cv2.setUseOptimized(False)
                generic = run(gray, job, kind)
                cv2.setUseOptimized(True)
                optimized = run(gray, job, kind)
                out = generic.astype("<f4") if kind == "sobel" else generic.astype(np.uint8)
                with open(os.path.join(folder, image["name"] + "." + name_of(job, kind)), "wb") as f:
                    f.write(out.tobytes())
                differ = np.argwhere(generic != optimized)
                if len(differ):
                    print(json.dumps({"image": image["name"], "job": name_of(job, kind), "differing": len(differ),
                                      "first": [[int(y), int(x)] for y, x in differ[:5]]}))
                done += 1
    cv2.setUseOptimized(True)
    print(json.dumps({"done": done, "opencv": cv2.__version__}))


if __name__ == "__main__":
    main()
