"""Hands a fitted scikit-learn estimator over to the Rust server.

`handover(estimator)` writes the fitted parameters of a supported estimator
(or `Pipeline` of them) as the JSON payload the `mlserver-sklearn` crate
reads, with probes: inputs this module ran through scikit-learn's own
methods and the outputs scikit-learn returned. The Rust side recomputes
every probe and compares the outputs bit for bit before it serves anything,
so a payload that disagrees with scikit-learn is never served natively.

Only exact types are accepted (`type(x) is C`, not `isinstance`): a
subclass may override `predict` and then the parameters alone would not
say what it computes.

The function never raises: anything unsupported or unexpected comes back
as `(None, reason)` and the model stays with the Python worker.
"""

import base64
import json

import numpy as np

FORMAT = "mlserver-rs/sklearn-handover"
VERSION = 1

#: Rows per probe input (per method and input dtype).
PROBE_ROWS = 32


class Unsupported(Exception):
    """Why an estimator is not handed over."""


def handover(estimator):
    """`(payload, None)` when every part of `estimator` is served natively,
    else `(None, reason)`."""
    try:
        return _handover(estimator), None
    except Unsupported as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - never raise into the worker
        return None, f"handing over {_name(estimator)} failed: {type(e).__name__}: {e}"


def _name(obj):
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _public_name(obj):
    """The dotted name users know (`sklearn.svm.SVC`, not `sklearn.svm._classes.SVC`)."""
    t = type(obj)
    parts = t.__module__.split(".")
    public = ".".join(p for p in parts if not p.startswith("_"))
    return f"{public}.{t.__qualname__}"


def _handover(estimator):
    import sklearn

    model, final = _node(estimator)
    hints = _hints(estimator)
    probes = _probes(estimator, model, hints)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "sklearn": sklearn.__version__,
        "final_type": str(type(final)),
        "model": model,
        "probes": probes,
    }
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")


# ---------------------------------------------------------------- arrays


_DTYPES = {
    ("f", 8): "<f8",
    ("f", 4): "<f4",
    ("i", 8): "<i8",
    ("i", 4): "<i4",
    ("u", 4): "<u4",
    ("u", 1): "|u1",
    ("b", 1): "|b1",
}


def _array(a):
    """An array as the payload writes it: dtype, shape, base64 of the C-order
    little-endian bytes (strings as a list of items)."""
    a = np.asarray(a)
    if a.dtype.kind in ("U", "S", "O"):
        if a.dtype.kind == "O" and not all(isinstance(v, str) for v in a.ravel()):
            raise Unsupported("class labels of mixed or object types are not served natively")
        return {"dtype": "str", "shape": list(a.shape), "items": [str(v) for v in a.ravel()]}
    code = _DTYPES.get((a.dtype.kind, a.dtype.itemsize))
    if code is None:
        raise Unsupported(f"arrays of dtype {a.dtype} are not served natively")
    raw = np.ascontiguousarray(a, dtype=np.dtype(code)).tobytes()
    return {"dtype": code, "shape": list(a.shape), "data": base64.b64encode(raw).decode("ascii")}


def _f8(a):
    return _array(np.asarray(a, dtype=np.float64))


# ---------------------------------------------------------------- estimators


def _node(est):
    """`(node, final estimator)` for an estimator or pipeline."""
    from sklearn.pipeline import Pipeline

    if type(est) is Pipeline:
        steps = []
        final = None
        for _, step in est.steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                steps.append({"kind": "passthrough"})
                final = step
                continue
            node, final = _node(step)
            steps.append(node)
        if not steps:
            raise Unsupported("an empty Pipeline is not served natively")
        return {"kind": "Pipeline", "steps": steps}, final
    if isinstance(est, str) or est is None:
        raise Unsupported(f"{est!r} is not served natively")
    handler = _HANDLERS.get(_name(est))
    if handler is None or type(est).__module__.split(".")[0] != "sklearn":
        raise Unsupported(f"{_public_name(est)} is not served natively")
    if getattr(est, "n_features_in_", None) is None:
        raise Unsupported(f"{_public_name(est)} is not fitted")
    node = handler(est)
    node.setdefault("n_features", int(est.n_features_in_))
    return node, est


def _standard_scaler(est):
    return {
        "kind": "StandardScaler",
        "mean": _f8(est.mean_) if est.with_mean else None,
        "scale": _f8(est.scale_) if est.with_std else None,
    }


def _min_max_scaler(est):
    lo, hi = est.feature_range
    return {
        "kind": "MinMaxScaler",
        "scale": _f8(est.scale_),
        "min": _f8(est.min_),
        "clip": bool(est.clip),
        "feature_range": _f8([lo, hi]),
    }


def _robust_scaler(est):
    return {
        "kind": "RobustScaler",
        "center": _f8(est.center_) if est.with_centering else None,
        "scale": _f8(est.scale_) if est.with_scaling else None,
    }


def _tree(tree_, n_values):
    value = np.asarray(tree_.value, dtype=np.float64)
    if value.ndim != 3 or value.shape[1] != 1:
        raise Unsupported("multi-output trees are not served natively")
    return {
        "children_left": _array(np.asarray(tree_.children_left, dtype=np.int64)),
        "children_right": _array(np.asarray(tree_.children_right, dtype=np.int64)),
        "feature": _array(np.asarray(tree_.feature, dtype=np.int64)),
        "threshold": _f8(tree_.threshold),
        "missing_go_to_left": _array(np.asarray(tree_.missing_go_to_left, dtype=np.uint8)),
        "value": _f8(value.reshape(value.shape[0], value.shape[2])[:, :n_values]),
    }


def _single_output(est):
    if getattr(est, "n_outputs_", 1) != 1:
        raise Unsupported(f"multi-output {_public_name(est)} is not served natively")


def _classes(est):
    classes = est.classes_
    if isinstance(classes, list):
        raise Unsupported(f"multi-output {_public_name(est)} is not served natively")
    return _array(classes)


def _decision_tree(est):
    _single_output(est)
    classifier = hasattr(est, "classes_")
    n_values = len(est.classes_) if classifier else 1
    node = {
        "kind": "Forest",
        "classifier": classifier,
        "averaged": False,
        "trees": [_tree(est.tree_, n_values)],
    }
    if classifier:
        node["classes"] = _classes(est)
    return node


def _forest(est):
    _single_output(est)
    classifier = hasattr(est, "classes_")
    n_values = len(est.classes_) if classifier else 1
    node = {
        "kind": "Forest",
        "classifier": classifier,
        "averaged": True,
        "trees": [_tree(e.tree_, n_values) for e in est.estimators_],
    }
    if classifier:
        node["classes"] = _classes(est)
    return node


def _gradient_boosting(est):
    from sklearn.ensemble import GradientBoostingClassifier

    classifier = type(est) is GradientBoostingClassifier
    if est.init is not None and not (isinstance(est.init, str) and est.init == "zero"):
        raise Unsupported(
            f"{_public_name(est)} with init={type(est.init).__name__} is not served natively"
        )
    if classifier and est.loss != "log_loss":
        raise Unsupported(f"{_public_name(est)} with loss={est.loss!r} is not served natively")
    k = int(est.n_trees_per_iteration_) if hasattr(est, "n_trees_per_iteration_") else int(
        est.estimators_.shape[1]
    )
    # The init estimator's raw prediction is the same for every row (a
    # DummyEstimator's constant, or zeros): sklearn's own code computes it.
    row = np.zeros((1, int(est.n_features_in_)), dtype=np.float32)
    init = np.asarray(est._raw_predict_init(row), dtype=np.float64).reshape(-1)
    if init.shape != (k,):
        raise Unsupported(f"{_public_name(est)}: unexpected init shape {init.shape}")
    trees = [_tree(e.tree_, 1) for e in est.estimators_.reshape(-1)]
    node = {
        "kind": "GradientBoosting",
        "classifier": classifier,
        "learning_rate": _f8(float(est.learning_rate)),
        "init": _f8(init),
        "n_trees_per_iteration": k,
        "trees": trees,
    }
    if classifier:
        node["classes"] = _classes(est)
    return node


def _hist_gradient_boosting(est):
    from sklearn.ensemble import HistGradientBoostingClassifier

    classifier = type(est) is HistGradientBoostingClassifier
    encoder = _hgb_encoder(est)
    loss = type(est._loss).__name__
    if classifier and loss not in ("HalfBinomialLoss", "HalfMultinomialLoss"):
        raise Unsupported(f"{_public_name(est)} with loss {loss} is not served natively")
    if not classifier and loss not in (
        "HalfSquaredError",
        "AbsoluteError",
        "PinballLoss",
        "HuberLoss",
        "HalfPoissonLoss",
        "HalfGammaLoss",
        "HalfTweedieLoss",
        "HalfTweedieLossIdentity",
    ):
        raise Unsupported(f"{_public_name(est)} with loss {loss} is not served natively")
    link = type(est._loss.link).__name__
    if not classifier and link not in ("IdentityLink", "LogLink"):
        raise Unsupported(f"{_public_name(est)} with link {link} is not served natively")
    k = int(est.n_trees_per_iteration_)
    known = est._bin_mapper.make_known_categories_bitsets()
    known_bitsets, f_idx_map = known
    predictors = []
    for stage in est._predictors:
        for p in stage:
            nodes = p.nodes
            predictors.append(
                {
                    "value": _f8(nodes["value"]),
                    "feature_idx": _array(nodes["feature_idx"].astype(np.int64)),
                    "num_threshold": _f8(nodes["num_threshold"]),
                    "missing_go_to_left": _array(nodes["missing_go_to_left"].astype(np.uint8)),
                    "left": _array(nodes["left"].astype(np.int64)),
                    "right": _array(nodes["right"].astype(np.int64)),
                    "is_leaf": _array(nodes["is_leaf"].astype(np.uint8)),
                    "is_categorical": _array(nodes["is_categorical"].astype(np.uint8)),
                    "bitset_idx": _array(nodes["bitset_idx"].astype(np.int64)),
                    "raw_left_cat_bitsets": _array(
                        np.asarray(p.raw_left_cat_bitsets, dtype=np.uint32).reshape(-1, 8)
                    ),
                }
            )
    node = {
        "kind": "HistGradientBoosting",
        "classifier": classifier,
        "link": "log" if link == "LogLink" else "identity",
        "baseline": _f8(np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)),
        "n_trees_per_iteration": k,
        "predictors": predictors,
        "known_cat_bitsets": _array(np.asarray(known_bitsets, dtype=np.uint32).reshape(-1, 8)),
        "f_idx_map": _array(np.asarray(f_idx_map, dtype=np.int64)),
        "encoder": encoder,
    }
    if classifier:
        node["classes"] = _classes(est)
    return node


def _hgb_encoder(est):
    """The `ColumnTransformer` HistGradientBoosting puts before its trees
    when it has categorical features: an `OrdinalEncoder` of those columns
    (unknown and missing values to NaN), then the other columns, as
    float64. `None` without categorical features."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

    pre = getattr(est, "_preprocessor", None)
    if pre is None:
        return None
    mask = np.asarray(est.is_categorical_, dtype=bool)
    parts = [
        t
        for t in getattr(pre, "transformers_", [])
        if not (isinstance(t[1], str) and t[1] == "drop" and not np.any(t[2]))
    ]
    ok = type(pre) is ColumnTransformer and len(parts) == 2
    if ok:
        (n1, enc, c1), (n2, num, c2) = parts
        ok = (
            n1 == "encoder"
            and n2 == "numerical"
            and type(enc) is OrdinalEncoder
            and type(num) is FunctionTransformer
            and enc.handle_unknown == "use_encoded_value"
            and np.isnan(enc.unknown_value)
            and np.isnan(enc.encoded_missing_value)
            and enc.dtype == np.float64
        )
    if not ok:
        raise Unsupported(f"{_public_name(est)} with this categorical preprocessing is not served natively")
    categories = []
    for cats in enc.categories_:
        cats = np.asarray(cats)
        if cats.dtype.kind != "f":
            raise Unsupported(f"{_public_name(est)} with non-numeric categories is not served natively")
        categories.append(_f8(cats))
    return {
        "categorical": _array(np.flatnonzero(mask).astype(np.int64)),
        "categories": categories,
    }


_HANDLERS = {
    "sklearn.preprocessing._data.StandardScaler": _standard_scaler,
    "sklearn.preprocessing._data.MinMaxScaler": _min_max_scaler,
    "sklearn.preprocessing._data.RobustScaler": _robust_scaler,
    "sklearn.tree._classes.DecisionTreeClassifier": _decision_tree,
    "sklearn.tree._classes.DecisionTreeRegressor": _decision_tree,
    "sklearn.ensemble._forest.RandomForestClassifier": _forest,
    "sklearn.ensemble._forest.RandomForestRegressor": _forest,
    "sklearn.ensemble._forest.ExtraTreesClassifier": _forest,
    "sklearn.ensemble._forest.ExtraTreesRegressor": _forest,
    "sklearn.ensemble._gb.GradientBoostingClassifier": _gradient_boosting,
    "sklearn.ensemble._gb.GradientBoostingRegressor": _gradient_boosting,
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier": _hist_gradient_boosting,
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor": _hist_gradient_boosting,
}


# ---------------------------------------------------------------- probes


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


def _methods(est):
    methods = []
    for m in ("predict", "predict_proba", "transform"):
        try:
            if hasattr(est, m):
                methods.append(m)
        except Exception:  # noqa: BLE001 - available_if may raise anything
            pass
    return methods


def _probes(est, model, hints):
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
            probes.append({"method": method, "input": _array(x), "output": _array(out)})
    if not probes:
        raise Unsupported(f"{_public_name(est)}: no probe input could be computed")
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
            raise Unsupported("outputs of object dtype are not served natively")
    return out
