"""Disentanglement, Completeness and Informativeness (Eastwood & Williams, 2018,
"A Framework for the Quantitative Evaluation of Disentangled Representations").

One tree-ensemble classifier per factor ``s_j`` predicts ``s_j`` from all codes;
its feature importances fill column j of the importance matrix ``R [D, K]``
(``R_ij >= 0``: how much code i is used to predict factor j).

* Disentanglement of code i: ``D_i = 1 - H_K(P_i.)`` with
  ``P_ij = R_ij / sum_k R_ik`` and ``H_K`` the entropy in base K. The score is
  ``D = sum_i rho_i D_i`` with ``rho_i = sum_j R_ij / sum_ij R_ij``.
* Completeness of factor j: ``C_j = 1 - H_D(P~_.j)`` with
  ``P~_ij = R_ij / sum_k R_kj`` and base-D entropy. The score is
  ``C = sum_j rho~_j C_j`` with ``rho~_j = sum_i R_ij / sum_ij R_ij`` (the
  convention of disentanglement_lib, which the paper's CelebA numbers follow).
* Informativeness: the mean over factors of the classifiers' accuracy on the
  train and on the held-out test rows.

D and C lie in [0, 1]; 1 means a one-to-one code/factor assignment. If no
code is used at all (``R = 0``), ``D = C = 0``.
"""

from __future__ import annotations

import functools

import numpy as np
from sklearn import ensemble

from cmi_jax import validate
from cmi_jax.metrics import _shared

# Boosted depth-3 trees give clean importances (~0 for unused codes); forest
# leaves of >= 5 rows stop splits on noise codes that memorise the train set.
_MODELS = {
    'gradient_boosting': ensemble.GradientBoostingClassifier,
    'random_forest': functools.partial(ensemble.RandomForestClassifier,
                                       min_samples_leaf=5, n_jobs=1),
}


def _one_minus_normalised_entropy(weights: np.ndarray, axis: int) -> np.ndarray:
  """``1 - H_b(w / sum w)`` along ``axis``, base ``b = weights.shape[axis]``.

  An all-zero slice counts as uniform (score 0); base 1 scores 1.
  """
  base = weights.shape[axis]
  if base == 1:
    return np.ones(weights.shape[1 - axis])
  total = weights.sum(axis=axis, keepdims=True)
  p = np.where(total > 0, weights / np.where(total > 0, total, 1.0), 1.0 / base)
  plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
  return 1.0 + plogp.sum(axis=axis) / np.log(base)


def disentanglement_completeness(importance: np.ndarray) -> tuple[float, float]:
  """DCI ``(D, C)`` of a non-negative importance matrix ``R [D, K]``."""
  importance = np.asarray(importance, dtype=np.float64)
  if importance.ndim != 2 or np.any(importance < 0) or not np.all(
      np.isfinite(importance)):
    raise ValueError('importance must be a finite, non-negative [D, K] '
                     f'matrix; got shape {importance.shape}.')
  total = importance.sum()
  if total == 0:
    return 0.0, 0.0
  per_code = _one_minus_normalised_entropy(importance, axis=1)  # [D]
  per_factor = _one_minus_normalised_entropy(importance, axis=0)  # [K]
  code_weight = importance.sum(axis=1) / total
  factor_weight = importance.sum(axis=0) / total
  return float(per_code @ code_weight), float(per_factor @ factor_weight)


def compute_dci(codes, factors, *, test_fraction: float = 0.25,
                model: str = 'gradient_boosting', n_estimators: int = 100,
                seed: _shared.Seed = 0) -> dict[str, float]:
  """DCI scores of float ``codes [N, D]`` for int ``factors [N, K]``.

  ``model``: ``'gradient_boosting'`` (as in disentanglement_lib) or
  ``'random_forest'`` (faster; Eastwood & Williams' choice), with
  ``n_estimators`` trees per factor; ``seed`` fixes them and the split that
  holds out ``test_fraction`` of the rows. Returns ``{'disentanglement',
  'completeness', 'informativeness_train', 'informativeness_test'}`` in [0, 1].
  """
  codes, factors = _shared.check_codes_and_factors(codes, factors)
  validate.choice(model, 'model', _MODELS)
  n_estimators = validate.integer(n_estimators, 'n_estimators', 1)
  rng, train, test = _shared.seeded_split(codes.shape[0], test_fraction, seed)
  model_seed = int(rng.integers(2**31 - 1))
  importance = np.zeros((codes.shape[1], factors.shape[1]))
  accuracy = np.zeros((2, factors.shape[1]))  # train, test
  for j, (y_train, y_test) in enumerate(zip(factors[train].T, factors[test].T)):
    if np.all(y_train == y_train[0]):
      # One class in train: a constant classifier, using no code.
      accuracy[:, j] = 1.0, np.mean(y_test == y_train[0])
      continue
    clf = _MODELS[model](n_estimators=n_estimators, random_state=model_seed)
    clf.fit(codes[train], y_train)
    importance[:, j] = np.abs(clf.feature_importances_)
    accuracy[:, j] = [np.mean(clf.predict(codes[rows]) == y)
                      for rows, y in ((train, y_train), (test, y_test))]
  disentanglement, completeness = disentanglement_completeness(importance)
  return {'disentanglement': disentanglement, 'completeness': completeness,
          'informativeness_train': float(accuracy[0].mean()),
          'informativeness_test': float(accuracy[1].mean())}
