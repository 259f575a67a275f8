#!/usr/bin/env python3
"""Writes a WIDTHxHEIGHT 16-bit RGBA PNG (a repeating ramp, so it compresses to a few MB even
at 100 megapixels), for measuring memory by pixel depth:

    python3 scripts/png16.py 10000 10000 big16.png
"""
import struct
import sys
import zlib


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def main() -> None:
    width, height, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    row = b"\x00" + bytes((i * 37) % 256 for i in range(width * 8))
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


if __name__ == "__main__":
    main()
