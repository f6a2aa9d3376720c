"""Trains a small scikit-learn classifier, saves it with joblib for
`mlserver_sklearn.SKLearnModel`, and writes the inputs and the predictions
the served model must reproduce: make_sklearn_model.py OUTPUT_DIR."""

import json
import os
import sys

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
X, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=500).fit(X, y)
joblib.dump(model, os.path.join(out, "model.joblib"))
sample = X[::15]
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(
        {
            "inputs": sample.tolist(),
            "predict": model.predict(sample).tolist(),
            "predict_proba": model.predict_proba(sample).tolist(),
        },
        f,
    )
