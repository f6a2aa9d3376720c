"""The real models of `cargo xtask bench --real-models`, trained and written
for each way of serving them:  make_real_models.py OUTPUT_DIR

Two scikit-learn models on 20 features, seeded:
  lr   a logistic regression, 3 classes
  gbm  a gradient boosting regressor, 100 trees of depth 3
Each is saved as model.joblib (for mlserver_sklearn.SKLearnModel) and as
model.onnx (skl2onnx, without ZipMap: the classifier's outputs are plain
`label` and `probabilities` tensors; the regressor's is `variable`).

requests.json holds, per model, 64 rows of float32 inputs and scikit-learn's
predictions on them (what every server must answer), and the ONNX output
that carries the same values.
"""

import json
import os
import sys

import joblib
import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

FEATURES = 20
ROWS = 64
# Opsets tract and onnxruntime both run (as the bundled iris models).
OPSET = {"": 17, "ai.onnx.ml": 3}


def save(out, name, model, onnx_output):
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    joblib.dump(model, os.path.join(folder, "model.joblib"))
    types = [("input", FloatTensorType([None, FEATURES]))]
    options = {id(model): {"zipmap": False}} if hasattr(model, "classes_") else None
    onx = convert_sklearn(model, initial_types=types, target_opset=OPSET, options=options)
    with open(os.path.join(folder, "model.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    return onnx_output


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
        "onnx_output": save(out, "lr", lr, "label"),
    }

    x, y = make_regression(n_samples=2000, n_features=FEATURES, noise=5.0, random_state=0)
    x = x.astype(np.float32)
    gbm = GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0).fit(x, y)
    rows = x[:ROWS]
    requests["gbm"] = {
        "rows": rows.tolist(),
        "predict": gbm.predict(rows).tolist(),
        "onnx_output": save(out, "gbm", gbm, "variable"),
    }

    with open(os.path.join(out, "requests.json"), "w") as f:
        json.dump(requests, f)


if __name__ == "__main__":
    main()
