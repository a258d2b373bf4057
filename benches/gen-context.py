#!/usr/bin/env python3
"""Write a big build context for benches/bigctx.sh: FILES files in DIRS directories adding up
to about SIZE bytes, half of the bytes random (incompressible) and half text. The same
arguments give the same bytes (a seeded generator), so every tool and run reads the same
context.

Usage: gen-context.py DEST [--files 50000] [--size 1GiB] [--dirs 500]
"""

import argparse
import os
import random

WORDS = (
    "the build context holds files of every kind source code configuration assets "
    "models weights vendor modules lockfiles fixtures documentation images layers "
    "cache registry manifest digest compression snapshot overlay namespace"
).split()


def size(text):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.lower().rstrip("ib")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def text_bytes(rng, n):
    out = []
    total = 0
    while total < n:
        line = " ".join(rng.choice(WORDS) for _ in range(12)) + "\n"
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:n]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dest")
    p.add_argument("--files", type=int, default=50_000)
    p.add_argument("--size", type=size, default=size("1GiB"))
    p.add_argument("--dirs", type=int, default=500)
    a = p.parse_args()
    rng = random.Random(20261207)
    per_file = a.size // a.files
    # A pool of text to slice from: generating text word by word for 512 MiB is slow.
    pool = text_bytes(rng, 4 << 20)
    for i in range(a.files):
        d = os.path.join(a.dest, f"d{i % a.dirs:04d}")
        os.makedirs(d, exist_ok=True)
        # Sizes vary around the mean (0.5x to 1.5x), deterministically.
        n = int(per_file * (0.5 + rng.random()))
        if i % 2 == 0:
            data = rng.randbytes(n)
        else:
            start = rng.randrange(0, len(pool) - n) if n < len(pool) else 0
            data = pool[start:start + n]
        with open(os.path.join(d, f"f{i:06d}.dat" if i % 2 == 0 else f"f{i:06d}.txt"), "wb") as f:
            f.write(data)
    with open(os.path.join(a.dest, "Dockerfile"), "w") as f:
        f.write("FROM scratch\nCOPY . /ctx\n")


if __name__ == "__main__":
    main()
