#!/usr/bin/env python3
"""dsobel's engine and OpenCV, side by side, on the same generated photographs.

Measures, on one thread unless said otherwise, best of --repeat runs, all in memory:

- OpenCV: grayscale JPEG decode; the exact L2 binary pipeline (Sobel CV_32F x2, magnitude,
  compare); the fastest approximate one (Sobel CV_16S x2, convertScaleAbs, add, threshold);
  1-bit PNG encode (IMWRITE_PNG_BILEVEL); and the whole JPEG bytes -> binary PNG bytes path
  built from the fastest pieces.
- dsobel: `dsobel engine-bench --json` on the same files (decode, kernel luma -> binary bytes,
  and JPEG bytes -> PNG bytes end to end), with 1 thread and with 2.
- The other operators, luma in memory to their result in memory, one thread each, side by side
  in the same run: `cv2.Sobel(gray, CV_16S, 1, 0)` against dsobel's `gx`, and
  `cv2.Canny(gray, low, high, L2gradient=...)` against dsobel's `canny` (L1 and L2, each
  --canny pair; OpenCV optimized, `cv2.setNumThreads(1)`).

Prints a Markdown table for docs/performance.md. Usage:

    scripts/compare-opencv.py [--dsobel target/release/dsobel] [--sizes 2,12,48] [--repeat 5]

Needs numpy and opencv-python-headless (`pip install opencv-python-headless==5.0.0.93`); with
--venv DIR it creates that virtual environment and installs them itself.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time


def ensure_modules(venv):
    try:
        import cv2  # noqa: F401
        import numpy  # noqa: F401
        return
    except ImportError:
        if not venv:
            sys.exit("needs numpy and opencv-python-headless (or pass --venv DIR)")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([python, "-m", "pip", "install", "-q", "opencv-python-headless==5.0.0.93", "numpy"])
    os.execv(python, [python] + sys.argv)


SIZES = {2: (1920, 1080), 12: (4000, 3000), 48: (8000, 6000)}


def photo_like(width, height, seed):
    """Gradients, discs, stripes, texture and noise: edges where a photograph has them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 60 + 120 * (x / width) * 0.6 + 80 * (y / height) * 0.4
    img = np.stack([base, base * 0.8 + 20, 200 - base * 0.5], axis=-1)
    for _ in range(12):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.03, 0.2) * min(width, height)
        color = rng.uniform(0, 255, size=3)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[mask] = img[mask] * 0.3 + color * 0.7
    texture = 18 * np.sin(x / 7.0) * np.cos(y / 11.0)
    img += texture[..., None]
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def best(repeat, fn):
    fastest = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def opencv_figures(jpeg, threshold, repeat):
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    buf = np.frombuffer(jpeg, dtype=np.uint8)
    gray = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)

    def exact():
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
        mag = cv2.magnitude(gx, gy)
        return ((mag > threshold) * 255).astype(np.uint8)

    def approximate(g):
        gx = cv2.Sobel(g, cv2.CV_16S, 1, 0)
        gy = cv2.Sobel(g, cv2.CV_16S, 0, 1)
        s = cv2.add(cv2.convertScaleAbs(gx), cv2.convertScaleAbs(gy))
        return cv2.threshold(s, threshold, 255, cv2.THRESH_BINARY)[1]

    edges = approximate(gray)

    def encode():
        return cv2.imencode(".png", edges, [cv2.IMWRITE_PNG_BILEVEL, 1])[1]

    def end_to_end():
        g = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        return cv2.imencode(".png", approximate(g), [cv2.IMWRITE_PNG_BILEVEL, 1])[1]

    return {
        "decode_s": best(repeat, lambda: cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)),
        "exact_l2_s": best(repeat, exact),
        "approx_s": best(repeat, lambda: approximate(gray)),
        "encode_s": best(repeat, encode),
        "end_to_end_s": best(repeat, end_to_end),
        "png_bytes": len(encode()),
        "version": cv2.__version__,
    }


def dsobel_figures(binary, path, threads, repeat, threshold):
    out = subprocess.check_output(
        [binary, "engine-bench", path, "--threads", str(threads), "--repeat", str(repeat), "--json",
         "--threshold", str(threshold)],
        text=True,
    )
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsobel", default="target/release/dsobel")
    parser.add_argument("--sizes", default="2,12,48", help="megapixels, from 2, 12, 48")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threshold", type=int, default=100)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--venv", default=None)
    parser.add_argument("--keep", default=None, help="directory to keep the generated JPEGs in")
    parser.add_argument("--canny", default="100:200,50:150", help="low:high pairs for Canny")
    parser.add_argument("--photo", action="append", default=[],
                        help="also compare the operators on this image file (any size)")
    args = parser.parse_args()
    ensure_modules(args.venv)
    import cv2

    workdir = args.keep or tempfile.mkdtemp(prefix="dsobel-vs-opencv-")
    os.makedirs(workdir, exist_ok=True)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"machine: {cpu}, {os.cpu_count()} cores; OpenCV {cv2.__version__}; JPEG quality {args.quality}; "
          f"best of {args.repeat}; threshold {args.threshold}\n")
    print("| image | MP | stage | OpenCV ms | dsobel ms | dsobel GPx/s or MPx/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for mp in [int(s) for s in args.sizes.split(",")]:
        width, height = SIZES[mp]
        path = os.path.join(workdir, f"photo-{mp}mp.jpg")
        if not os.path.exists(path):
            ok, jpeg = cv2.imencode(".jpg", photo_like(width, height, mp), [cv2.IMWRITE_JPEG_QUALITY, args.quality])
            with open(path, "wb") as f:
                f.write(jpeg.tobytes())
        with open(path, "rb") as f:
            jpeg = f.read()
        pixels = width * height
        cv = opencv_figures(jpeg, args.threshold, args.repeat)
        one = dsobel_figures(args.dsobel, path, 1, args.repeat, args.threshold)
        two = dsobel_figures(args.dsobel, path, 2, args.repeat, args.threshold)
        label = f"{width}x{height} ({len(jpeg) / 1e6:.1f} MB)"
        rows = [
            ("decode (gray JPEG), 1 thread", cv["decode_s"] * 1e3, one["decode_ms"], "MPx/s"),
            ("kernel exact L2 vs OpenCV exact, 1 thread", cv["exact_l2_s"] * 1e3, one["kernel_ms"], "GPx/s"),
            ("kernel exact L2 vs OpenCV approximate, 1 thread", cv["approx_s"] * 1e3, one["kernel_ms"], "GPx/s"),
            ("JPEG -> binary PNG, 1 thread", cv["end_to_end_s"] * 1e3, one["end_to_end_ms"], "MPx/s"),
            ("JPEG -> binary PNG, 2 threads (OpenCV 1)", cv["end_to_end_s"] * 1e3, two["end_to_end_ms"], "MPx/s"),
        ]
        for stage, cv_ms, ds_ms, unit in rows:
            rate = pixels / (ds_ms / 1e3) / (1e9 if unit == "GPx/s" else 1e6)
            print(f"| {label} | {mp} | {stage} | {cv_ms:.2f} | {ds_ms:.2f} | {rate:.2f} {unit} | {cv_ms / ds_ms:.2f}x |")
        print(f"| {label} | {mp} | 1-bit PNG size | {cv['png_bytes']} B | {one['png_bytes']} B | | "
              f"{one['png_bytes'] / cv['png_bytes']:.2f} of OpenCV's |")
        operator_rows(args, path, label, mp)
        sys.stdout.flush()
    for photo in args.photo:
        import cv2
        gray = cv2.imread(photo, cv2.IMREAD_GRAYSCALE)
        label = f"{os.path.basename(photo)} {gray.shape[1]}x{gray.shape[0]}"
        operator_rows(args, photo, label, round(gray.size / 1e6, 1))


def operator_rows(args, path, label, mp):
    """gx and Canny: OpenCV and dsobel on the same decoded luma, one thread, in this run."""
    import cv2

    cv2.setNumThreads(1)
    cv2.setUseOptimized(True)
    gray = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    pixels = gray.size
    jobs = [("gx (CV_16S Sobel 3x3)", lambda: cv2.Sobel(gray, cv2.CV_16S, 1, 0),
             ["--output", "gx", "--format", "npy"])]
    for pair in args.canny.split(","):
        low, high = (int(v) for v in pair.split(":"))
        for l2 in (False, True):
            jobs.append((f"Canny {'L2' if l2 else 'L1'} {low}/{high}",
                         lambda low=low, high=high, l2=l2: cv2.Canny(gray, low, high, L2gradient=l2),
                         ["--output", "canny", "--low", str(low), "--high", str(high),
                          "--magnitude", "l2" if l2 else "l1"]))
    for stage, cv_run, flags in jobs:
        cv_ms = best(args.repeat, cv_run) * 1e3
        out = subprocess.check_output(
            [args.dsobel, "engine-bench", path, "--threads", "1", "--repeat", str(args.repeat), "--json"] + flags,
            text=True)
        ds_ms = json.loads(out.strip().splitlines()[-1])["kernel_ms"]
        rate = pixels / (ds_ms / 1e3) / 1e9
        print(f"| {label} | {mp} | {stage}, luma to result, 1 thread | {cv_ms:.2f} | {ds_ms:.2f} | "
              f"{rate:.2f} GPx/s | {cv_ms / ds_ms:.2f}x |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
