#!/usr/bin/env python3
"""Draws icons/source.png (1024x1024): a blue rounded square holding a box with a check mark.
The platform icons are made from it with `npx tauri icon icons/source.png -o icons`.
Standard library only, so it runs anywhere Python does."""
import math, struct, zlib, pathlib

N = 1024
BG, BOX, CHECK = (47, 91, 211), (255, 255, 255), (126, 226, 168)

def rounded_rect_alpha(x, y, x0, y0, x1, y1, r):
    cx, cy = min(max(x, x0 + r), x1 - r), min(max(y, y0 + r), y1 - r)
    d = math.hypot(x - cx, y - cy) - r
    return max(0.0, min(1.0, 0.5 - d))

def seg_dist(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)

rows = []
for y in range(N):
    row = bytearray([0])
    for x in range(N):
        a = rounded_rect_alpha(x + 0.5, y + 0.5, 40, 40, 984, 984, 210)
        color = BG
        outer = rounded_rect_alpha(x + 0.5, y + 0.5, 250, 250, 774, 774, 70)
        inner = rounded_rect_alpha(x + 0.5, y + 0.5, 310, 310, 714, 714, 30)
        box = max(0.0, outer - inner)
        d = min(seg_dist(x, y, 380, 520, 480, 620), seg_dist(x, y, 480, 620, 660, 400))
        check = max(0.0, min(1.0, 36 - d))
        mix = lambda c1, c2, t: tuple(round(c1[i] * (1 - t) + c2[i] * t) for i in range(3))
        color = mix(color, BOX, box)
        color = mix(color, CHECK, check)
        row += bytes(color) + bytes([round(255 * a)])
    rows.append(bytes(row))

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", N, N, 8, 6, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
pathlib.Path(__file__).with_name("source.png").write_bytes(png)
