"""Trains small seeded XGBoost and LightGBM models of every objective the
native runtimes serve (and a few they decline), and saves each as its
library saves it, one folder per model: make_tree_models.py OUTPUT_DIR.

Every model has 4 features; feature 1 has missing values (NaN) in training,
feature 3 holds category codes 0-3 (a categorical feature where the model
says so). The differential test serves the folders from MLServer 1.7.1's
runtimes and from ours, and compares every number.
"""

import os
import sys

import lightgbm as lgb
import numpy as np
import xgboost as xgb

out = sys.argv[1]
rng = np.random.default_rng(7)
N = 400
X = rng.normal(size=(N, 4))
X[:, 3] = rng.integers(0, 4, size=N)
X[rng.random(N) < 0.1, 1] = np.nan
signal = X[:, 0] + 0.5 * np.nan_to_num(X[:, 1]) - 0.3 * X[:, 2] + 0.4 * (X[:, 3] == 2)
y_reg = signal + rng.normal(scale=0.1, size=N)
y_pos = np.exp(0.5 * signal)  # positive targets (poisson, gamma, tweedie)
y_bin = (signal > 0).astype(int)
y_multi = np.digitize(signal, [-0.5, 0.5])  # three classes
qid = np.repeat(np.arange(N // 20), 20)
ROUNDS = 8


def folder(name):
    path = os.path.join(out, name)
    os.makedirs(path, exist_ok=True)
    return path


def booster(name, params, y, filename, dtrain=None, **kw):
    dtrain = dtrain if dtrain is not None else xgb.DMatrix(X, label=y, **kw)
    params = {"max_depth": 3, "eta": 0.3, "seed": 1, "nthread": 1, **params}
    b = xgb.train(params, dtrain, ROUNDS)
    b.save_model(os.path.join(folder(name), filename))


# Boosters saved by `Booster.save_model`: MLServer loads them as XGBRegressor.
booster("xgb-reg", {"objective": "reg:squarederror"}, y_reg, "model.json")
booster("xgb-logistic", {"objective": "binary:logistic"}, y_bin, "model.ubj")
booster("xgb-logitraw", {"objective": "binary:logitraw"}, y_bin, "model.json")
booster("xgb-softprob", {"objective": "multi:softprob", "num_class": 3}, y_multi, "model.ubj")
booster("xgb-softmax", {"objective": "multi:softmax", "num_class": 3}, y_multi, "model.json")
booster("xgb-poisson", {"objective": "count:poisson"}, y_pos, "model.ubj")
booster("xgb-gamma", {"objective": "reg:gamma"}, y_pos, "model.json")
booster("xgb-tweedie", {"objective": "reg:tweedie"}, y_pos, "model.ubj")
booster("xgb-dart", {"objective": "reg:squarederror", "booster": "dart", "rate_drop": 0.2}, y_reg, "model.json")
dtrain_rank = xgb.DMatrix(X, label=y_multi, qid=qid)
booster("xgb-rank", {"objective": "rank:pairwise"}, None, "model.json", dtrain=dtrain_rank)
dtrain_cat = xgb.DMatrix(X, label=y_reg, feature_types=["q", "q", "q", "c"], enable_categorical=True)
booster("xgb-categorical", {"objective": "reg:squarederror", "max_cat_to_onehot": 1}, None, "model.ubj", dtrain=dtrain_cat)

# The scikit-learn interface: its files say which estimator saved them.
clf = xgb.XGBClassifier(n_estimators=ROUNDS, max_depth=3, random_state=1, n_jobs=1)
clf.fit(X, y_bin)
clf.save_model(os.path.join(folder("xgb-binary-clf"), "model.json"))
clf = xgb.XGBClassifier(n_estimators=ROUNDS, max_depth=3, random_state=1, n_jobs=1)
clf.fit(X, y_multi)
clf.save_model(os.path.join(folder("xgb-multi-clf"), "model.ubj"))
# Early stopping: predict uses the trees up to best_iteration. `model.bst`
# is how MLServer's docs name it (XGBoost writes UBJSON under that name).
clf = xgb.XGBClassifier(n_estimators=40, max_depth=3, random_state=1, n_jobs=1, early_stopping_rounds=2)
clf.fit(X[:300], y_multi[:300], eval_set=[(X[300:], y_multi[300:])], verbose=False)
clf.save_model(os.path.join(folder("xgb-early-stop"), "model.bst"))
reg = xgb.XGBRegressor(n_estimators=ROUNDS, max_depth=3, random_state=1, n_jobs=1)
reg.fit(X, y_reg)
reg.save_model(os.path.join(folder("xgb-sk-reg"), "model.json"))
# Declined natively: predict_proba of a multi:softmax classifier is numpy's.
clf = xgb.XGBClassifier(n_estimators=ROUNDS, max_depth=3, random_state=1, n_jobs=1, objective="multi:softmax")
clf.fit(X, y_multi)
clf.save_model(os.path.join(folder("xgb-softmax-clf"), "model.json"))


def lightgbm(name, params, y, filename="model.bst", **kw):
    params = {"verbose": -1, "num_threads": 1, "deterministic": True, "seed": 1,
              "min_data_in_leaf": 5, **params}
    b = lgb.train(params, lgb.Dataset(X, label=y, **kw), ROUNDS)
    b.save_model(os.path.join(folder(name), filename))


lightgbm("lgb-regression", {"objective": "regression"}, y_reg)
lightgbm("lgb-l1", {"objective": "regression_l1"}, y_reg, "model.txt")
lightgbm("lgb-binary", {"objective": "binary"}, y_bin)
lightgbm("lgb-multiclass", {"objective": "multiclass", "num_class": 3}, y_multi)
lightgbm("lgb-multiclassova", {"objective": "multiclassova", "num_class": 3}, y_multi)
lightgbm("lgb-poisson", {"objective": "poisson"}, y_pos)
lightgbm("lgb-tweedie", {"objective": "tweedie"}, y_pos)
lightgbm("lgb-categorical", {"objective": "regression", "min_data_per_group": 5, "cat_smooth": 1}, y_reg,
         categorical_feature=[3])
lightgbm("lgb-zero-missing", {"objective": "regression", "zero_as_missing": True}, y_reg)
# Declined natively: linear trees.
lightgbm("lgb-linear", {"objective": "regression", "linear_tree": True}, np.nan_to_num(y_reg))
