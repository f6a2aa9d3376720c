"""Small ONNX files for mlserver-onnx's unit tests, regenerated with the
packages pinned in examples/models/iris-onnx/requirements.txt:

    python make_fixtures.py

  zipmap.onnx          logistic regression exported WITH ZipMap: its
                       probabilities are a sequence of maps (refused at load)
  tree_regressor.onnx  a depth-3 decision tree regressor: TreeEnsembleRegressor,
                       which tract does not implement and onnxruntime does
  tree_regressor.json  inputs and onnxruntime's outputs for it
  scaler_pipeline.onnx StandardScaler + LogisticRegression exported with the
                       StandardScaler option {'div': 'div_cast'}: plain
                       Sub/Div instead of ai.onnx.ml Scaler, so tract runs it
  scaler_pipeline.json inputs and onnxruntime's labels for it
  xgboost.onnx, lightgbm.onnx (+ .json)
                       iris classifiers converted with onnxmltools (the
                       docs/onnx.md's recipes), with onnxruntime's labels; needs
                       requirements-gbm.txt on top
  gbr.onnx, xgboost_regressor.onnx, lightgbm_regressor.onnx, scaler.onnx
  (+ .json)            regressors: scikit-learn's 100-tree gradient boosting,
                       XGBoost's and LightGBM's (TreeEnsembleRegressor with
                       base values, NaN routing and averaging), and a
                       StandardScaler exported as ai.onnx.ml Scaler followed
                       by a linear regression, with onnxruntime's outputs
                       on rows that include missing values
"""

import json
import os

import numpy as np
import onnxruntime as rt
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = {"": 17, "ai.onnx.ml": 3}


def save(onx, name):
    onx.graph.name = name.split(".")[0]
    onx.doc_string = ""
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    return path


def main():
    x, y = load_iris(return_X_y=True)
    types = [("input", FloatTensorType([None, 4]))]

    clf = LogisticRegression(max_iter=500).fit(x, y)
    save(convert_sklearn(clf, initial_types=types, target_opset=OPSET), "zipmap.onnx")

    # Petal width from the other three measurements.
    reg = DecisionTreeRegressor(max_depth=3, random_state=0).fit(x[:, :3], x[:, 3])
    onx = convert_sklearn(
        reg, initial_types=[("input", FloatTensorType([None, 3]))], target_opset=OPSET
    )
    path = save(onx, "tree_regressor.onnx")
    rows = x[::15, :3]
    (pred,) = rt.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {"input": rows.astype(np.float32)}
    )
    with open(os.path.join(HERE, "tree_regressor.json"), "w") as f:
        json.dump({"inputs": rows.tolist(), "outputs": pred.reshape(-1).tolist()}, f)
        f.write("\n")

    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    onx = convert_sklearn(
        pipe,
        initial_types=types,
        options={StandardScaler: {"div": "div_cast"}, LogisticRegression: {"zipmap": False}},
        target_opset=OPSET,
    )
    assert "Scaler" not in [n.op_type for n in onx.graph.node]
    path = save(onx, "scaler_pipeline.onnx")
    rows = x[::10]
    labels, _ = rt.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {"input": rows.astype(np.float32)}
    )
    with open(os.path.join(HERE, "scaler_pipeline.json"), "w") as f:
        json.dump({"inputs": rows.tolist(), "labels": labels.tolist()}, f)
        f.write("\n")

    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat
    import lightgbm
    import xgboost

    ml_types = [("input", MlFloat([None, 4]))]
    xgb = xgboost.XGBClassifier(n_estimators=5, max_depth=3, random_state=0).fit(x, y)
    lgbm = lightgbm.LGBMClassifier(n_estimators=5, random_state=0, verbose=-1).fit(x, y)
    for name, onx in [
        ("xgboost", convert_xgboost(xgb, initial_types=ml_types, target_opset=15)),
        ("lightgbm", convert_lightgbm(lgbm, initial_types=ml_types, zipmap=False, target_opset=15)),
    ]:
        path = save(onx, name + ".onnx")
        rows = x[::10]
        labels, _ = rt.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
            None, {"input": rows.astype(np.float32)}
        )
        with open(os.path.join(HERE, name + ".json"), "w") as f:
            json.dump({"inputs": rows.tolist(), "labels": labels.tolist()}, f)
            f.write("\n")


def regressors(x):
    """Regressors of petal width from the other three measurements, and
    onnxruntime's outputs for rows with and without missing values."""
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    import lightgbm
    import xgboost

    features, target = x[:, :3], x[:, 3]
    rows = features[::7].astype(np.float32)
    rows = np.vstack([rows, rows[:3]])
    rows[-3, 0] = np.nan
    rows[-2, 1] = np.nan
    rows[-1, :] = np.nan
    sk_types = [("input", FloatTensorType([None, 3]))]
    ml_types = [("input", MlFloat([None, 3]))]
    gbr = GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0)
    xgb = xgboost.XGBRegressor(n_estimators=20, max_depth=3, random_state=0)
    lgbm = lightgbm.LGBMRegressor(n_estimators=20, random_state=0, verbose=-1)
    scaled = make_pipeline(StandardScaler(), LinearRegression())
    models = [
        ("gbr", convert_sklearn(gbr.fit(features, target), initial_types=sk_types, target_opset=OPSET)),
        ("xgboost_regressor", convert_xgboost(xgb.fit(features, target), initial_types=ml_types, target_opset=15)),
        ("lightgbm_regressor", convert_lightgbm(lgbm.fit(features, target), initial_types=ml_types, target_opset=15)),
        ("scaler", convert_sklearn(scaled.fit(features, target), initial_types=sk_types, target_opset=OPSET)),
    ]
    for name, onx in models:
        ops = [n.op_type for n in onx.graph.node]
        assert ("Scaler" if name == "scaler" else "TreeEnsembleRegressor") in ops, (name, ops)
        path = save(onx, name + ".onnx")
        session = rt.InferenceSession(path, providers=["CPUExecutionProvider"])
        (pred,) = session.run(None, {"input": rows})
        # JSON has no NaN: null for a missing input and a NaN output.
        with open(os.path.join(HERE, name + ".json"), "w") as f:
            json.dump(
                {
                    "inputs": [[None if np.isnan(v) else float(v) for v in r] for r in rows],
                    "outputs": [None if np.isnan(v) else float(v) for v in pred.reshape(-1)],
                },
                f,
            )
            f.write("\n")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["regressors"]:
        regressors(load_iris(return_X_y=True)[0])
    else:
        main()
        regressors(load_iris(return_X_y=True)[0])
