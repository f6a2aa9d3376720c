"""Fixtures for tests/parity.rs: seeded scikit-learn models of every kind
the handover supports, their payloads, and extra rows with scikit-learn's
outputs for every method and input dtype.

Usage: python make_models.py OUT_DIR

Writes, per case, `<name>.payload` (what `handover` returned) and
`<name>.extra` (the same document with the probes replaced by other rows),
plus `manifest.json`:
  {"cases": [{"name", "methods_exact": [...]}],
   "unsupported": [{"name", "payload": bool, "reason": str | null}]}
"""

import json
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "mlserver-python", "python"))

from mlserver_rs_worker import sklearn_handover as sh  # noqa: E402
from mlserver_rs_worker import sklearn_probes as sp  # noqa: E402

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import (  # noqa: E402
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402

warnings.simplefilter("ignore")

N_FEATURES = 6


def data_cls(n_classes=2, labels="int", nan=False, seed=0, n_features=N_FEATURES):
    X, y = make_classification(
        n_samples=300,
        n_features=n_features,
        n_informative=4,
        n_classes=n_classes,
        random_state=seed,
    )
    X = X * np.resize(np.array([1.0, 10.0, 0.01, 100.0, 1.0, 3.0]), n_features)
    X = X + np.resize(np.array([0, 5, -1, 50, 0, 0]), n_features)
    if nan:
        rng = np.random.default_rng(seed)
        X[rng.random(X.shape) < 0.1] = np.nan
    if labels == "str":
        y = np.array(["cat", "dog", "eel", "fox", "gnu"])[y]
    elif labels == "float":
        y = y.astype(np.float64) + 0.5
    return X, y


def data_reg(nan=False, seed=0, n_features=N_FEATURES):
    X, y = make_regression(n_samples=300, n_features=n_features, noise=5.0, random_state=seed)
    X = X * np.resize(np.array([1.0, 10.0, 0.01, 100.0, 1.0, 3.0]), n_features)
    if nan:
        rng = np.random.default_rng(seed)
        X[rng.random(X.shape) < 0.1] = np.nan
    return X, y


def data_cat(classifier, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 4))
    X[:, 0] = rng.integers(0, 7, size=400)
    X[:, 2] = rng.integers(0, 30, size=400)
    X[rng.random(400) < 0.05, 0] = np.nan
    y = X[:, 1] + (X[:, 0] % 3 == 0) * 2.0 + (np.nan_to_num(X[:, 2]) > 15)
    if classifier:
        y = (y > np.median(y)).astype(int)
    return X, y


ALL = ["predict", "predict_proba", "transform"]


def cases():
    """`(name, estimator, X, y, methods expected bit-exact)`."""
    c = []
    Xc, yc = data_cls()
    Xm, ym = data_cls(n_classes=3, labels="str", seed=1)
    Xr, yr = data_reg()
    Xcn, ycn = data_cls(n_classes=3, nan=True, seed=2)
    Xrn, yrn = data_reg(nan=True, seed=3)

    c += [
        ("standard_scaler", StandardScaler(), Xr, None, ALL),
        ("standard_scaler_no_mean", StandardScaler(with_mean=False), Xr, None, ALL),
        ("standard_scaler_no_std", StandardScaler(with_std=False), Xr, None, ALL),
        ("min_max_scaler", MinMaxScaler(feature_range=(-1, 2)), Xr, None, ALL),
        ("min_max_scaler_clip", MinMaxScaler(feature_range=(0.1, 0.9), clip=True), Xr, None, ALL),
        ("robust_scaler", RobustScaler(), Xrn, None, ALL),
        ("robust_scaler_no_center", RobustScaler(with_centering=False, quantile_range=(10, 90)), Xr, None, ALL),
        ("tree_cls_binary", DecisionTreeClassifier(random_state=0), Xc, yc, ALL),
        ("tree_cls_str", DecisionTreeClassifier(max_depth=6, random_state=0), Xm, ym, ALL),
        ("tree_cls_nan", DecisionTreeClassifier(random_state=0), Xcn, ycn, ALL),
        ("tree_reg", DecisionTreeRegressor(random_state=0), Xr, yr, ALL),
        ("tree_reg_nan", DecisionTreeRegressor(max_depth=8, random_state=0), Xrn, yrn, ALL),
        ("forest_cls", RandomForestClassifier(n_estimators=30, random_state=0), Xc, yc, ALL),
        ("forest_cls_str", RandomForestClassifier(n_estimators=20, random_state=0), Xm, ym, ALL),
        ("forest_cls_nan", RandomForestClassifier(n_estimators=20, random_state=0), Xcn, ycn, ALL),
        ("forest_reg", RandomForestRegressor(n_estimators=30, random_state=0), Xr, yr, ALL),
        ("extra_cls", ExtraTreesClassifier(n_estimators=20, random_state=0), Xm, ym, ALL),
        ("extra_reg", ExtraTreesRegressor(n_estimators=20, random_state=0), Xrn, yrn, ALL),
        ("gb_reg", GradientBoostingRegressor(n_estimators=40, random_state=0), Xr, yr, ALL),
        ("gb_reg_huber", GradientBoostingRegressor(loss="huber", n_estimators=20, subsample=0.7, random_state=0), Xr, yr, ALL),
        ("gb_reg_zero", GradientBoostingRegressor(init="zero", n_estimators=20, random_state=0), Xr, yr, ALL),
        ("gb_cls_binary", GradientBoostingClassifier(n_estimators=30, random_state=0), Xc, yc, ALL),
        ("gb_cls_multi", GradientBoostingClassifier(n_estimators=20, random_state=0), Xm, ym, ["predict"]),
        ("hgb_reg_nan", HistGradientBoostingRegressor(max_iter=30, random_state=0), Xrn, yrn, ALL),
        ("hgb_reg_poisson", HistGradientBoostingRegressor(loss="poisson", max_iter=20, random_state=0), Xr, np.abs(yr), []),
        ("hgb_cls_binary", HistGradientBoostingClassifier(max_iter=30, random_state=0), Xc, yc, ALL),
        ("hgb_cls_multi", HistGradientBoostingClassifier(max_iter=15, random_state=0), Xcn, ycn, ["predict"]),
    ]
    Xk, yk = data_cat(False)
    c.append(("hgb_reg_cat", HistGradientBoostingRegressor(max_iter=20, categorical_features=[0, 2], random_state=0), Xk, yk, ALL))
    Xk, yk = data_cat(True)
    c.append(("hgb_cls_cat", HistGradientBoostingClassifier(max_iter=20, categorical_features=[0, 2], random_state=0), Xk, yk, ALL))
    c += [
        ("pipe_minmax_forest", make_pipeline(MinMaxScaler(), RandomForestClassifier(n_estimators=10, random_state=0)), Xc, yc, ALL),
        ("pipe_robust_tree_nan", make_pipeline(RobustScaler(), DecisionTreeRegressor(random_state=0)), Xrn, yrn, ALL),
        ("pipe_std_pass_gb", Pipeline([("s", StandardScaler()), ("p", "passthrough"), ("gb", GradientBoostingRegressor(n_estimators=10, random_state=0))]), Xr, yr, ALL),
        ("pipe_scalers", make_pipeline(StandardScaler(), MinMaxScaler(clip=True)), Xr, None, ALL),
    ]
    c += linear_cases()
    return c


def linear_cases():
    """Linear models: every BLAS path numpy takes (one row: ddot or dgemv;
    one output: dgemv; several: dgemm, small-matrix kernel from 32
    features), regressors and classifiers, in pipelines after scalers."""
    Xc, yc = data_cls()
    Xm, ym = data_cls(n_classes=3, labels="str", seed=1)
    X5, y5 = data_cls(n_classes=5, seed=4)
    Xf, yf = data_cls(seed=5)
    yf = yf.astype(np.float64) * 2.0 - 1.0  # float labels -1.0, 1.0
    Xr, yr = data_reg()
    Xw, yw = data_reg(seed=6, n_features=40)
    Xwc, ywc = data_cls(n_classes=3, seed=7, n_features=40)
    std = StandardScaler
    return [
        ("linreg", LinearRegression(), Xr, yr, ALL),
        ("linreg_pipe", make_pipeline(std(), LinearRegression()), Xr, yr, ALL),
        # coef_ is a view with contiguous rows: the same BLAS routine.
        ("linreg_multi", LinearRegression(), Xr, np.c_[yr, 0.5 * yr + 1.0, -yr], ALL),
        ("linreg_multi_wide", make_pipeline(std(), LinearRegression()), Xw, np.c_[yw, 2.0 - yw], ALL),
        ("linreg_no_intercept", LinearRegression(fit_intercept=False), Xr, yr, ALL),
        ("ridge", Ridge(alpha=1.0), Xr, yr, ALL),
        ("ridge_wide", make_pipeline(std(), Ridge(alpha=0.5)), Xw, yw, ALL),
        ("lasso", Lasso(alpha=0.1), Xr, yr, ALL),
        ("elasticnet", make_pipeline(std(), ElasticNet(alpha=0.1, l1_ratio=0.3)), Xr, yr, ALL),
        ("sgd_reg", make_pipeline(std(), SGDRegressor(random_state=0)), Xr, yr, ALL),
        ("logreg_binary", LogisticRegression(max_iter=1000), Xc, yc, ALL),
        ("logreg_float_labels", make_pipeline(std(), LogisticRegression()), Xf, yf, ALL),
        ("sgd_cls_wide", make_pipeline(std(), SGDClassifier(loss="log_loss", random_state=0)), Xwc, ywc, ALL),
        ("sgd_cls_hinge", make_pipeline(std(), SGDClassifier(random_state=0)), Xm, ym, ALL),
        ("sgd_cls_log_binary", make_pipeline(std(), SGDClassifier(loss="log_loss", random_state=0)), Xc, yc, ALL),
        ("sgd_cls_log_multi", make_pipeline(std(), SGDClassifier(loss="log_loss", random_state=0)), X5, y5, ALL),
        ("sgd_cls_huber_binary", make_pipeline(std(), SGDClassifier(loss="modified_huber", random_state=0)), Xf, yf, ALL),
        ("sgd_cls_huber_multi", make_pipeline(std(), SGDClassifier(loss="modified_huber", random_state=0)), Xm, ym, ALL),
    ]


def unsupported():
    Xc, yc = data_cls()
    ct = ColumnTransformer([("s", StandardScaler(), [0, 1])], remainder="passthrough")
    multi = np.stack([yc, 1 - yc], axis=1)
    return [
        ("svc", SVC().fit(Xc, yc)),
        ("column_transformer", make_pipeline(ct, LogisticRegression()).fit(Xc, yc)),
        ("knn", KNeighborsClassifier().fit(Xc, yc)),
        ("multi_output_forest", RandomForestClassifier(n_estimators=3).fit(Xc, multi)),
        # float32 coefficients: numpy would multiply float32 inputs in float32.
        ("ridge_float32", Ridge().fit(Xc.astype(np.float32), yc.astype(np.float32))),
        # Ridge holds a multi-output coef_ in Fortran order: another BLAS routine.
        ("ridge_multi", Ridge().fit(Xc, np.c_[yc, -yc, 2 * yc])),
        # Multiclass LogisticRegression holds coef_ in Fortran order (and its
        # softmax uses numpy's exp): not reproduced.
        ("logreg_multi", make_pipeline(StandardScaler(), LogisticRegression()).fit(*data_cls(n_classes=3, labels="str", seed=1))),
        ("gb_custom_init", GradientBoostingRegressor(init=LinearRegression(), n_estimators=3).fit(Xc, yc)),
        ("unfitted", StandardScaler()),
        ("not_an_estimator", object()),
    ]


#: Batch sizes of the extra rows for linear models (BLAS paths and
#: summation orders depend on the number of rows).
LINEAR_BATCHES = (1, 3, 4, 5, 17, 64, 1000)


def extra_probes(est, doc, seed):
    rng = np.random.default_rng(seed)
    hints = sp._hints(est)
    linear = hasattr(sp._final(est), "coef_")
    probes = []
    for method in sp._methods(est):
        fn = getattr(est, method)
        for dtype in (np.float64, np.float32, np.int64):
            x = sp._probe_rows(est, hints, dtype, rng)
            batches = [x, x[:1], x[5:8]]
            if linear:
                pool = np.vstack([x] + [sp._probe_rows(est, hints, dtype, rng) for _ in range(60)])
                batches = [pool[:r] for r in LINEAR_BATCHES] + [x[5:8]]
            for rows in batches:
                out = sp._run_probe(fn, rows)
                if out is None and rows.dtype.kind == "f":
                    rows = rows[np.all(np.isfinite(rows), axis=1) & np.all(np.abs(rows) < 1e20, axis=1)]
                    out = sp._run_probe(fn, rows) if len(rows) else None
                if out is not None:
                    probes.append({"method": method, "input": sh._array(rows), "output": sh._array(out)})
    doc = dict(doc)
    doc["probes"] = probes
    return doc


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    manifest = {"cases": [], "unsupported": []}
    for i, (name, est, X, y, exact) in enumerate(cases()):
        est.fit(X) if y is None else est.fit(X, y)
        t0 = time.perf_counter()
        payload, reason = sh.handover(est)
        took = time.perf_counter() - t0
        if payload is None:
            raise SystemExit(f"{name}: not handed over: {reason}")
        with open(os.path.join(out, f"{name}.payload"), "wb") as f:
            f.write(payload)
        doc = extra_probes(est, json.loads(payload), 1000 + i)
        with open(os.path.join(out, f"{name}.extra"), "w") as f:
            json.dump(doc, f)
        manifest["cases"].append(
            {"name": name, "methods_exact": exact, "seconds": took, "bytes": len(payload)}
        )
    big = RandomForestClassifier(n_estimators=100, random_state=0).fit(*data_cls(n_classes=3))
    t0 = time.perf_counter()
    payload, reason = sh.handover(big)
    manifest["forest_100"] = {
        "seconds": time.perf_counter() - t0,
        "bytes": len(payload or b""),
        "reason": reason,
    }
    for name, est in unsupported():
        payload, reason = sh.handover(est)
        manifest["unsupported"].append(
            {"name": name, "payload": payload is not None, "reason": reason}
        )
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
