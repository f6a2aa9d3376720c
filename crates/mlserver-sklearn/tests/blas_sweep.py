"""Reference products for the `blas` module's sweep test: numpy's
`X @ W.T` (float64, as scikit-learn's linear models compute it) on many
shapes and mixed-magnitude values.

Usage: python blas_sweep.py OUT.json

Writes {"cases": [{"n", "d", "k", "x", "w", "out"}], "cast_mismatches": [...]}
with x, w, out the base64 of little-endian float64 (row-major). It also
checks, in numpy itself, that float32 and int64 inputs give exactly the
product of their float64 casts and that a 1-d coefficient vector gives the
same as a (1, d) matrix; any difference is listed in cast_mismatches.
"""

import base64
import json
import sys

import numpy as np


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f8").tobytes()).decode("ascii")


def values(rng, shape):
    mag = 10.0 ** rng.uniform(-3, 3, size=shape)
    v = rng.standard_normal(shape) * mag
    # Some exact zeros, negative zeros and ties.
    v[rng.random(shape) < 0.03] = 0.0
    v[rng.random(shape) < 0.01] = -0.0
    return v


def main():
    out_path = sys.argv[1]
    rng = np.random.default_rng(7)
    rows = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17, 23, 24, 25, 31, 36, 47, 64, 70]
    feats = list(range(1, 18)) + [20, 24, 31, 32, 33, 40, 47, 48, 63, 64]
    shapes = [(n, d, k) for n in rows for d in feats for k in (1, 2, 3, 4, 5)]
    shapes += [(n, d, k) for n in (100, 250, 500, 1000, 2000, 4096) for d in (3, 8, 33, 64) for k in (1, 3)]
    shapes += [(n, d, k) for n in (12, 24, 30) for d in (300, 500, 800, 2100) for k in (1, 3)]
    cases = []
    mismatches = []
    for n, d, k in shapes:
        x = values(rng, (n, d))
        w = values(rng, (k, d))
        out = x @ w.T
        cases.append({"n": n, "d": d, "k": k, "x": b64(x), "w": b64(w), "out": b64(out)})
        if k == 1 and not np.array_equal((x @ w[0]).view(np.int64), out[:, 0].view(np.int64)):
            mismatches.append(f"1-d coef {n}x{d}")
        if n * d <= 4096:
            x32 = x.astype(np.float32)
            if not np.array_equal((x32 @ w.T).view(np.int64), (x32.astype(np.float64) @ w.T).view(np.int64)):
                mismatches.append(f"float32 {n}x{d}x{k}")
            xi = np.rint(x).astype(np.int64)
            if not np.array_equal((xi @ w.T).view(np.int64), (xi.astype(np.float64) @ w.T).view(np.int64)):
                mismatches.append(f"int64 {n}x{d}x{k}")
    with open(out_path, "w") as f:
        json.dump({"cases": cases, "cast_mismatches": mismatches}, f)


if __name__ == "__main__":
    main()
