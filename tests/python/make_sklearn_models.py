"""Trains seeded scikit-learn models of every kind the native runtime takes
over (and two it does not), each saved with joblib as
`<OUTPUT_DIR>/<name>/model.joblib` for `mlserver_sklearn.SKLearnModel`:
make_sklearn_models.py OUTPUT_DIR.

Four features, as the differential corpus's requests have. The names are
the differential test's `SKLEARN_MODELS`.
"""

import os
import sys

import joblib
import numpy as np
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

out = sys.argv[1]
rng = np.random.default_rng(7)
X = rng.normal(size=(240, 4)) * [1.0, 3.0, 0.5, 10.0] + [0.0, 5.0, -1.0, 20.0]
# Integer-valued features in column 0 now and then, so requests with
# integers land on both sides of thresholds.
X[::5, 0] = np.round(X[::5, 0])
score = X[:, 0] + 0.3 * X[:, 1] - 2.0 * X[:, 2] + 0.05 * X[:, 3]
y_reg = score + rng.normal(scale=0.1, size=len(X))
y_bin = (score > np.median(score)).astype(np.int64)
y_multi = np.digitize(score, np.quantile(score, [0.33, 0.66])).astype(np.int64)
y_str = np.array(["cat", "dog", "emu"])[y_multi]
y_bin_str = np.array(["no", "yes"])[y_bin]

# Missing values in training, for the estimators that learn where they go.
X_nan = X.copy()
X_nan[rng.random(X.shape) < 0.1] = np.nan
# A categorical feature (codes 0..4) in column 3.
X_cat = X.copy()
X_cat[:, 3] = rng.integers(0, 5, size=len(X))
y_cat = score + 3.0 * (X_cat[:, 3] == 2) - 2.0 * (X_cat[:, 3] == 4)

models = {
    "sk-linreg": LinearRegression().fit(X, y_reg),
    "sk-ridge": Ridge(alpha=0.5).fit(X, y_reg),
    "sk-lasso": Lasso(alpha=0.01).fit(X, y_reg),
    "sk-elasticnet": ElasticNet(alpha=0.01, l1_ratio=0.3).fit(X, y_reg),
    "sk-sgd-reg": SGDRegressor(random_state=0).fit(StandardScaler().fit_transform(X), y_reg),
    "sk-logreg": LogisticRegression(max_iter=1000).fit(X, y_multi),
    "sk-logreg-binary": LogisticRegression(max_iter=1000).fit(X, y_bin_str),
    "sk-sgd-clf": SGDClassifier(random_state=0).fit(X, y_multi),
    "sk-tree-clf": DecisionTreeClassifier(max_depth=6, random_state=0).fit(X, y_str),
    "sk-tree-reg": DecisionTreeRegressor(max_depth=6, random_state=0).fit(X, y_reg),
    "sk-tree-nan": DecisionTreeRegressor(max_depth=5, random_state=0).fit(X_nan, y_reg),
    "sk-rf-clf": RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, y_str),
    "sk-rf-reg": RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(X, y_reg),
    "sk-et-clf": ExtraTreesClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, y_bin),
    "sk-et-reg": ExtraTreesRegressor(n_estimators=20, max_depth=6, random_state=0).fit(X, y_reg),
    "sk-gb-binary": GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, y_bin),
    "sk-gb-multi": GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y_str),
    "sk-gb-reg": GradientBoostingRegressor(n_estimators=30, random_state=0).fit(X, y_reg),
    "sk-hgb-reg": HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(X_nan, y_reg),
    "sk-hgb-binary": HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X_nan, y_bin),
    "sk-hgb-multi": HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y_multi),
    "sk-hgb-cat": HistGradientBoostingRegressor(
        max_iter=30, categorical_features=[3], random_state=0
    ).fit(X_cat, y_cat),
    "sk-scaler": StandardScaler().fit(X),
    "sk-pipe-std-logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        X, y_multi
    ),
    "sk-pipe-minmax-rf": make_pipeline(
        MinMaxScaler(), RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0)
    ).fit(X, y_bin),
    "sk-pipe-robust-ridge": make_pipeline(RobustScaler(), Ridge()).fit(X, y_reg),
    "sk-pipe-scalers": make_pipeline(StandardScaler(), MinMaxScaler(clip=True)).fit(X),
    # Not taken over: served by MLServer's runtime in a worker.
    "sk-svc": SVC().fit(X, y_bin),
    "sk-predict-fn": RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(
        X, y_multi
    ),
}

for name, model in models.items():
    os.makedirs(os.path.join(out, name), exist_ok=True)
    joblib.dump(model, os.path.join(out, name, "model.joblib"))
