"""Trains the bundled iris classifiers, exports them to ONNX and writes the
reference predictions the Rust tests compare against.

    python -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python make_model.py

Writes, next to this script:
  model.onnx       logistic regression (LinearClassifier + Normalizer/Softmax)
  reference.json   inputs, labels and probabilities from onnxruntime
and in ../iris-tree-onnx/ the same for a small random forest
(TreeEnsembleClassifier). Both are exported without ZipMap, so the outputs
are plain tensors: `label` (int64, [N]) and `probabilities` (float, [N, 3]).
Everything is seeded; re-running gives the same files.
"""

import json
import os

import numpy as np
import onnxruntime as rt
import skl2onnx
import sklearn
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

HERE = os.path.dirname(os.path.abspath(__file__))
# Opsets tract and onnxruntime both run: ai.onnx.ml 3 still has the
# TreeEnsembleClassifier op (opset 5 replaces it with TreeEnsemble).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def dump_rows(obj):
    """JSON with one matrix row per line: readable, and diffs stay small."""
    lines = ["{"]
    items = list(obj.items())
    for i, (key, value) in enumerate(items):
        sep = "," if i + 1 < len(items) else ""
        if isinstance(value, list) and value and isinstance(value[0], list):
            rows = ",\n    ".join(json.dumps(r) for r in value)
            lines.append('  %s: [\n    %s\n  ]%s' % (json.dumps(key), rows, sep))
        else:
            lines.append("  %s: %s%s" % (json.dumps(key), json.dumps(value), sep))
    lines.append("}")
    return "\n".join(lines) + "\n"


def export(clf, name, folder, x, rows):
    os.makedirs(folder, exist_ok=True)
    onx = convert_sklearn(
        clf,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={id(clf): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    # Reproducible bytes: skl2onnx names the graph with a random uuid.
    onx.graph.name = name
    onx.doc_string = ""
    model_path = os.path.join(folder, "model.onnx")
    with open(model_path, "wb") as f:
        f.write(onx.SerializeToString())

    sess = rt.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    inputs = x[rows].astype(np.float32)
    labels, probabilities = sess.run(["label", "probabilities"], {"input": inputs})

    # The exported graph must agree with scikit-learn itself.
    assert (labels == clf.predict(inputs)).all(), "ONNX labels differ from scikit-learn"
    np.testing.assert_allclose(probabilities, clf.predict_proba(inputs), rtol=1e-4, atol=1e-5)

    # Inputs as written in the dataset (5.1, not 5.099999904632568): JSON
    # numbers parsed as FP32 give exactly the float32 values used above.
    reference = {
        "producer": "scikit-learn %s -> skl2onnx %s; outputs from onnxruntime %s"
        % (sklearn.__version__, skl2onnx.__version__, rt.__version__),
        "input_name": "input",
        "inputs": x[rows].tolist(),
        "labels": labels.astype(np.int64).tolist(),
        "probabilities": [[float(p) for p in row] for row in probabilities],
    }
    with open(os.path.join(folder, "reference.json"), "w") as f:
        f.write(dump_rows(reference))
    print("wrote %s (%d bytes) and reference.json (%d rows)"
          % (model_path, os.path.getsize(model_path), len(rows)))


def main():
    x, y = load_iris(return_X_y=True)
    # Every 5th flower: 30 rows covering the three classes, including the
    # borderline versicolor/virginica ones.
    rows = list(range(0, len(x), 5))

    logreg = LogisticRegression(max_iter=500)
    logreg.fit(x, y)
    export(logreg, "iris_logistic_regression", HERE, x, rows)

    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)
    forest.fit(x, y)
    export(forest, "iris_random_forest", os.path.join(HERE, "..", "iris-tree-onnx"), x, rows)


if __name__ == "__main__":
    main()
