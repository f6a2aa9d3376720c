"""The real models of `cargo xtask bench --real-models`, trained and written
for each way of serving them:  make_real_models.py OUTPUT_DIR

Five models on 20 features, seeded:
  lr   a scikit-learn logistic regression, 3 classes
  gbm  a scikit-learn gradient boosting regressor, 100 trees of depth 3
  rf   a scikit-learn random forest classifier, 100 trees of depth 8, 3 classes
  xgb  an XGBoost classifier, 3 classes, 100 rounds of depth 6 (300 trees)
  lgb  a LightGBM binary classifier, 100 trees of 31 leaves
The scikit-learn models are saved as model.joblib (for
mlserver_sklearn.SKLearnModel), the others as their libraries save them, for
mlserver_xgboost.XGBoostModel (model.json) and mlserver_lightgbm.LightGBMModel
(model.bst, LightGBM's text format).

requests.json holds, per model, 64 rows of float32 inputs and the library's
predictions on them (what every server must answer: MLServer's runtimes
answer `predict`).
"""

import json
import os
import sys

import joblib
import lightgbm
import numpy as np
import xgboost
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

FEATURES = 20
ROWS = 64


def save(out, name, model):
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    joblib.dump(model, os.path.join(folder, "model.joblib"))


def main():
    out = sys.argv[1]
    requests = {}

    x, y = make_classification(
        n_samples=2000, n_features=FEATURES, n_informative=10, n_classes=3, random_state=0
    )
    x = x.astype(np.float32)
    lr = LogisticRegression(max_iter=1000).fit(x, y)
    rows = x[:ROWS]
    requests["lr"] = {
        "rows": rows.tolist(),
        "predict": lr.predict(rows).astype(float).tolist(),
    }
    save(out, "lr", lr)

    x, y = make_regression(n_samples=2000, n_features=FEATURES, noise=5.0, random_state=0)
    x = x.astype(np.float32)
    gbm = GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0).fit(x, y)
    rows = x[:ROWS]
    requests["gbm"] = {
        "rows": rows.tolist(),
        "predict": gbm.predict(rows).tolist(),
    }
    save(out, "gbm", gbm)

    x, y = make_classification(
        n_samples=2000, n_features=FEATURES, n_informative=10, n_classes=3, random_state=3
    )
    x = x.astype(np.float32)
    rf = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0).fit(x, y)
    rows = x[:ROWS]
    requests["rf"] = {
        "rows": rows.tolist(),
        "predict": rf.predict(rows).astype(float).tolist(),
    }
    save(out, "rf", rf)

    x, y = make_classification(
        n_samples=2000, n_features=FEATURES, n_informative=10, n_classes=3, random_state=1
    )
    x = x.astype(np.float32)
    xgb = xgboost.XGBClassifier(n_estimators=100, max_depth=6, random_state=0, n_jobs=1).fit(x, y)
    os.makedirs(os.path.join(out, "xgb"), exist_ok=True)
    xgb.save_model(os.path.join(out, "xgb", "model.json"))
    rows = x[:ROWS]
    requests["xgb"] = {
        "rows": rows.tolist(),
        "predict": xgb.predict(rows).astype(float).tolist(),
    }

    x, y = make_classification(
        n_samples=2000, n_features=FEATURES, n_informative=10, random_state=2
    )
    x = x.astype(np.float32)
    lgb = lightgbm.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0},
        lightgbm.Dataset(x, label=y),
        100,
    )
    os.makedirs(os.path.join(out, "lgb"), exist_ok=True)
    lgb.save_model(os.path.join(out, "lgb", "model.bst"))
    rows = x[:ROWS]
    requests["lgb"] = {
        "rows": rows.tolist(),
        "predict": lgb.predict(rows).tolist(),
    }

    with open(os.path.join(out, "requests.json"), "w") as f:
        json.dump(requests, f)


if __name__ == "__main__":
    main()
