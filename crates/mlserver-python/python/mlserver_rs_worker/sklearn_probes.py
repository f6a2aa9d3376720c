"""Probes for the hand-over (`sklearn_handover`): rows run through the
estimator's own `predict`, `predict_proba` and `transform`, with the answers
scikit-learn gave, which the server recomputes bit for bit before it serves
a method natively.

Rows are drawn around what the estimator saw (scalers' statistics, the
trees' split thresholds, each hit exactly and one float32 / float64 step to
either side), plus zeros, extreme magnitudes, and NaN where the estimator
accepts it; as float64, float32 and int64, the arrays MLServer's numpy codec
hands scikit-learn for FP64, FP32 and INT64 tensors.
"""

import numpy as np

#: Rows per probe input (per method and input dtype).
PROBE_ROWS = 32

#: Leading rows of the probe input probed again on their own for linear
#: models: numpy hands the product to a different BLAS routine for one row,
#: and OpenBLAS's kernels sum a row differently by its position in the
#: batch (groups of 2, 4 and 12 rows), so several batch sizes are checked.
LINEAR_BATCHES = (1, 2, 3, 5, 13)


class UnsupportedOutput(Exception):
    """An output the hand-over cannot carry."""


def _hints(est):
    """`(lo, hi, specials)` for the features the estimator reads: the range
    probe values are drawn from and per-feature values worth hitting exactly
    (split thresholds)."""
    from sklearn.pipeline import Pipeline

    if type(est) is Pipeline:
        for _, step in est.steps:
            if step is not None and not isinstance(step, str):
                return _hints(step)
    n = int(est.n_features_in_)
    lo = np.full(n, -3.0)
    hi = np.full(n, 3.0)
    specials = [[] for _ in range(n)]
    if hasattr(est, "mean_") and getattr(est, "var_", None) is not None:
        sd = np.sqrt(np.asarray(est.var_, dtype=np.float64))
        lo, hi = est.mean_ - 3 * sd, est.mean_ + 3 * sd
    elif hasattr(est, "data_min_"):
        lo, hi = np.asarray(est.data_min_, dtype=np.float64), np.asarray(est.data_max_, dtype=np.float64)
    elif getattr(est, "center_", None) is not None and getattr(est, "scale_", None) is not None:
        lo, hi = est.center_ - 3 * est.scale_, est.center_ + 3 * est.scale_
    trees = []
    if hasattr(est, "tree_"):
        trees = [est.tree_]
    elif hasattr(est, "estimators_"):
        trees = [e.tree_ for e in np.asarray(est.estimators_, dtype=object).reshape(-1)[:20]]
    for t in trees:
        internal = t.children_left != -1
        for f, thr in zip(t.feature[internal], t.threshold[internal]):
            specials[f].append(float(thr))
    if hasattr(est, "_predictors"):
        # With categorical features the trees read the encoder's layout:
        # categorical columns first, then the others.
        columns = np.arange(n)
        categorical = getattr(est, "is_categorical_", None)
        if getattr(est, "_preprocessor", None) is not None and categorical is not None:
            categorical = np.asarray(categorical, dtype=bool)
            columns = np.concatenate([np.flatnonzero(categorical), np.flatnonzero(~categorical)])
            for f in np.flatnonzero(categorical):
                specials[f].extend(float(v) for v in range(8))
        for stage in est._predictors[:20]:
            for p in stage:
                nodes = p.nodes[p.nodes["is_leaf"] == 0]
                for f, thr, cat in zip(nodes["feature_idx"], nodes["num_threshold"], nodes["is_categorical"]):
                    if not cat and np.isfinite(thr):
                        specials[columns[f]].append(float(thr))
    for f in range(n):
        if specials[f]:
            lo[f] = min(lo[f], min(specials[f]))
            hi[f] = max(hi[f], max(specials[f]))
    lo = np.where(np.isfinite(lo), lo, -3.0)
    hi = np.where(np.isfinite(hi), hi, 3.0)
    return lo, hi, [np.unique(np.asarray(s, dtype=np.float64))[:200] for s in specials]


def _accepts_nan(est):
    from sklearn.pipeline import Pipeline

    if type(est) is Pipeline:
        return all(
            _accepts_nan(s) for _, s in est.steps if s is not None and not isinstance(s, str)
        )
    try:
        return bool(est.__sklearn_tags__().input_tags.allow_nan)
    except Exception:  # noqa: BLE001
        return False


def _probe_rows(est, hints, dtype, rng):
    lo, hi, specials = hints
    n = len(lo)
    span = np.maximum(hi - lo, 1e-3)
    rows = [lo - 0.25 * span + rng.random((16, n)) * 1.5 * span]
    if any(len(s) for s in specials):
        block = lo + rng.random((10, n)) * span
        for r in range(block.shape[0]):
            for f in range(n):
                s = specials[f]
                if len(s):
                    t = s[rng.integers(len(s))]
                    t32 = np.float32(t)
                    block[r, f] = rng.choice(
                        [
                            t,
                            float(t32),
                            float(np.nextafter(t32, np.float32(np.inf))),
                            float(np.nextafter(t32, np.float32(-np.inf))),
                            float(np.nextafter(t, np.inf)),
                            float(np.nextafter(t, -np.inf)),
                        ]
                    )
        rows.append(block)
    rows.append(np.zeros((1, n)))
    rows.append(np.full((1, n), -1.0))
    mags = rng.choice([1e30, -1e30, 1e-30, -1e-30, 1e6, -1e6, 1e-300], size=(2, n))
    rows.append(mags)
    x = np.vstack(rows)[:PROBE_ROWS]
    if dtype == np.int64:
        x = np.clip(np.rint(x), -(2.0**62), 2.0**62).astype(np.int64)
        x[-1, :] = rng.choice([2**53 + 1, -(2**53) - 1, 2**31 + 1, 16777217, -16777217], size=n)
        return x
    x = x.astype(dtype)
    if _accepts_nan(est):
        nan_rows = x[:3].copy()
        nan_rows[0, :] = np.nan
        mask = rng.random(nan_rows[1:].shape) < 0.5
        nan_rows[1:][mask] = np.nan
        x = np.vstack([x, nan_rows])
    return x


def _final(est):
    from sklearn.pipeline import Pipeline

    while type(est) is Pipeline:
        est = est.steps[-1][1]
    return est


def _batches(est, x):
    """`x`, and for linear models its leading rows in several batch sizes."""
    if not hasattr(_final(est), "coef_"):
        return [x]
    return [x[:r] for r in LINEAR_BATCHES if r < len(x)] + [x]


def _methods(est):
    methods = []
    for m in ("predict", "predict_proba", "transform"):
        try:
            if hasattr(est, m):
                methods.append(m)
        except Exception:  # noqa: BLE001 - available_if may raise anything
            pass
    return methods


def probes(est):
    """`(method, input, output)` for every method `est` has and every input
    dtype scikit-learn computes it for; raises `UnsupportedOutput` for an
    output the payload cannot carry."""
    hints = _hints(est)
    rng = np.random.default_rng(20240611)
    probes = []
    for method in _methods(est):
        fn = getattr(est, method)
        for dtype in (np.float64, np.float32, np.int64):
            x = _probe_rows(est, hints, dtype, rng)
            out = _run_probe(fn, x)
            if out is None and x.dtype.kind == "f":
                finite = np.all(np.isfinite(x), axis=1) & np.all(np.abs(x) < 1e20, axis=1)
                x = x[finite]
                out = _run_probe(fn, x) if len(x) else None
            if out is None:
                continue
            for rows in _batches(est, x)[:-1]:
                sub = _run_probe(fn, rows)
                if sub is not None:
                    probes.append((method, rows, sub))
            probes.append((method, x, out))
    return probes


def _run_probe(fn, x):
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(x)
    except Exception:  # noqa: BLE001
        return None
    out = np.asarray(out)
    if out.dtype.kind == "O":
        if not all(isinstance(v, str) for v in out.ravel()):
            raise UnsupportedOutput("outputs of object dtype are not served natively")
    return out
