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

from . import sklearn_probes

FORMAT = "mlserver-rs/sklearn-handover"
VERSION = 1

class Unsupported(Exception):
    """Why an estimator is not handed over."""


def handover(estimator):
    """`(payload, None)` when every part of `estimator` is served natively,
    else `(None, reason)`."""
    try:
        return _handover(estimator), None
    except (Unsupported, sklearn_probes.UnsupportedOutput) as e:
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
    probes = [
        {"method": method, "input": _array(x), "output": _array(out)}
        for method, x, out in sklearn_probes.probes(estimator)
    ]
    if not probes:
        raise Unsupported(f"{_public_name(estimator)}: no probe input could be computed")
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
    return _forest_node(est, [est.tree_], averaged=False)


def _forest(est):
    return _forest_node(est, [e.tree_ for e in est.estimators_], averaged=True)


def _forest_node(est, trees, averaged):
    """A `Forest` node: one tree (`averaged=False`) or a forest's, averaged."""
    _single_output(est)
    classifier = hasattr(est, "classes_")
    n_values = len(est.classes_) if classifier else 1
    node = {
        "kind": "Forest",
        "classifier": classifier,
        "averaged": averaged,
        "trees": [_tree(t, n_values) for t in trees],
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


def _linear(est):
    """`X @ coef_.T + intercept_` models. Only float64 coefficients: with
    float32 ones numpy would multiply float32 inputs in float32."""
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    coef = est.coef_
    if type(coef) is not np.ndarray or coef.dtype != np.float64 or coef.ndim not in (1, 2):
        raise Unsupported(
            f"{_public_name(est)} with coefficients of type {type(coef).__name__} "
            f"{getattr(coef, 'dtype', '')} is not served natively"
        )
    coef2 = coef.reshape(1, -1) if coef.ndim == 1 else coef
    k = coef2.shape[0]
    if coef.strides[-1] != coef.itemsize:
        # numpy picks other BLAS routines (another summation order) when
        # coef_'s rows are not contiguous; multi-output regressors often
        # hold a transposed view. (Contiguous rows with a longer row stride,
        # as LogisticRegression's view without the intercept column, take
        # the same routine.)
        raise Unsupported(
            f"{_public_name(est)} with coef_ of shape {coef.shape} and strides {coef.strides} "
            "is not served natively"
        )
    intercept = np.asarray(est.intercept_)
    if intercept.dtype.kind != "f" or intercept.size not in (1, k) or intercept.ndim > 1:
        raise Unsupported(f"{_public_name(est)} with intercept_ {intercept!r} is not served natively")
    intercept = np.broadcast_to(intercept.astype(np.float64).reshape(-1), (k,))
    node = {
        "kind": "Linear",
        "coef": _f8(coef2),
        "intercept": _f8(intercept),
    }
    if type(est) is LogisticRegression:
        node["classes"] = _classes(est)
        node["proba"] = "expit" if len(est.classes_) <= 2 else "softmax"
    elif type(est) is SGDClassifier:
        node["classes"] = _classes(est)
        proba = {"log_loss": "expit", "modified_huber": "modified_huber"}.get(est.loss)
        if proba is not None:
            node["proba"] = proba
    else:
        node["output_2d"] = coef.ndim == 2
    return node


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
    "sklearn.linear_model._base.LinearRegression": _linear,
    "sklearn.linear_model._ridge.Ridge": _linear,
    "sklearn.linear_model._coordinate_descent.Lasso": _linear,
    "sklearn.linear_model._coordinate_descent.ElasticNet": _linear,
    "sklearn.linear_model._stochastic_gradient.SGDRegressor": _linear,
    "sklearn.linear_model._logistic.LogisticRegression": _linear,
    "sklearn.linear_model._stochastic_gradient.SGDClassifier": _linear,
}
