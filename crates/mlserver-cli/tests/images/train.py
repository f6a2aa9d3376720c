"""Run inside the `-py` image (`train.py OUT`): trains one iris classifier
per format MLServer's full image serves, saved the way each runtime finds
it, and makes a packed environment for MLSERVER_ENV_TARBALL. Prints the
rows to ask about and scikit-learn's answers, as JSON."""

import json
import os
import subprocess
import sys
import sysconfig

import joblib
import lightgbm
import mlflow.models
import mlflow.sklearn
import xgboost
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

out = sys.argv[1]
X, y = load_iris(return_X_y=True)
X = X.astype("float32")
rows = X[[0, 50, 100]]

clf = LogisticRegression(max_iter=1000).fit(X, y)
os.makedirs(f"{out}/sklearn")
joblib.dump(clf, f"{out}/sklearn/model.joblib")

os.makedirs(f"{out}/xgboost")
xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y).save_model(
    f"{out}/xgboost/model.json"
)

os.makedirs(f"{out}/lightgbm")
lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y).booster_.save_model(
    f"{out}/lightgbm/model.bst"
)

mlflow.sklearn.save_model(
    clf, f"{out}/mlflow", signature=mlflow.models.infer_signature(X, clf.predict(X))
)

# A packed environment: a venv that sees the image's packages (a .pth) plus
# a module of its own, which only a server that activated it can import.
env = "/tmp/packed-env"
subprocess.run(["python3", "-m", "venv", "--without-pip", env], check=True)
site = subprocess.run(
    [f"{env}/bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
    check=True, capture_output=True, text=True,
).stdout.strip()
with open(f"{site}/image-packages.pth", "w") as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")
with open(f"{site}/envmarker.py", "w") as f:
    f.write('MARK = "from the environment tarball"\n')
os.makedirs(f"{out}/envmodel")
subprocess.run(["tar", "-C", env, "-czf", f"{out}/envmodel/environment.tar.gz", "."], check=True)
with open(f"{out}/envmodel/marker_model.py", "w") as f:
    f.write(
        "import sys\n"
        "import envmarker\n"
        "from mlserver import MLModel, types\n"
        "from mlserver.codecs import StringCodec\n\n"
        "class MarkerModel(MLModel):\n"
        "    async def load(self):\n"
        "        return True\n\n"
        "    async def predict(self, payload):\n"
        "        return types.InferenceResponse(model_name=self.name, outputs=[\n"
        "            StringCodec.encode_output('where', [envmarker.MARK, sys.prefix])])\n"
    )

print(json.dumps({"rows": rows.tolist(), "expected": clf.predict(rows).tolist()}))
