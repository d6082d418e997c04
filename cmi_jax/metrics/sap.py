"""Separated Attribute Predictability (Kumar, Sattigeri & Balakrishnan, 2018,
"Variational Inference of Disentangled Latent Concepts from Unlabeled
Observations").

Score matrix ``S [D, K]``: ``S_ij`` is how well code dimension i *alone*
predicts factor j, the test-set accuracy of a one-vs-rest linear SVM on the
single feature ``z_i`` (the paper's one-dimensional threshold classifier,
generalised to several classes). The SAP score is the mean over factors of
the gap between the best and the second best dimension:

    SAP = (1/K) sum_j (S_(1)j - S_(2)j).

Two definitions (``variant``):

* ``'dlib'`` (default): disentanglement_lib's, as in published SAP numbers:
  ``LinearSVC(C=0.01, class_weight='balanced')`` on the raw code, ``S_ij`` the
  plain accuracy. The penalty dominates for small codes, so ``codes * 0.01``
  changes the score.
* ``'scale_free'``: each dimension standardised with its train mean and std,
  ``C = 1``, ``S_ij`` the balanced accuracy (mean per-class recall). Chance is
  then ``1/V_j`` whatever the class frequencies, so a constant or pure-noise
  code scores ~0, and a perfect one-dimension-per-factor code scores
  ``1 - 1/V_j`` per factor (0.5 for binary attributes).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import exceptions as sk_exceptions
from sklearn import svm

from cmi_jax import validate
from cmi_jax.metrics import _shared


VARIANTS = ('dlib', 'scale_free')
_DEFAULT_C = {'dlib': 0.01, 'scale_free': 1.0}


def sap_score_matrix(codes_train: np.ndarray, factors_train: np.ndarray,
                     codes_test: np.ndarray, factors_test: np.ndarray, *,
                     C: float, variant: str = 'dlib') -> np.ndarray:
  """``S [D, K]`` in [0, 1]: test accuracy of factor j from code dimension i.

  A dimension constant on the train rows predicts the majority class.
  """
  std = codes_train.std(axis=0)
  if variant == 'scale_free':
    mean, scale = codes_train.mean(axis=0), np.where(std > 0, std, 1.0)
    codes_train = (codes_train - mean) / scale
    codes_test = (codes_test - mean) / scale
  scores = np.zeros((codes_train.shape[1], factors_train.shape[1]))
  for j in range(scores.shape[1]):
    y_train, y_test = factors_train[:, j], factors_test[:, j]
    classes, counts = np.unique(y_train, return_counts=True)
    for i in range(scores.shape[0]):
      pred = np.full_like(y_test, classes[np.argmax(counts)])
      if std[i] > 0 and classes.size > 1:
        clf = svm.LinearSVC(C=C, class_weight='balanced')
        # Inseparable 1-D classes converge slowly; S wants the fit anyway.
        with warnings.catch_warnings(
            action='ignore', category=sk_exceptions.ConvergenceWarning):
          pred = clf.fit(codes_train[:, i:i + 1], y_train).predict(
              codes_test[:, i:i + 1])
      # Balanced: the mean over the classes in y_test of their recall.
      scores[i, j] = np.mean(
          [np.mean(pred[y_test == c] == c) for c in np.unique(y_test)]
          if variant == 'scale_free' else pred == y_test)
  return scores


def compute_sap(codes, factors, *, test_fraction: float = 0.25,
                C: float | None = None, variant: str = 'dlib',
                seed: _shared.Seed = 0) -> dict[str, float]:
  """``{'sap': SAP in [0, 1]}`` of float ``codes [N, D >= 2]``, ``factors``.

  ``seed`` fixes the split that holds out ``test_fraction`` of the rows to
  score the classifiers. ``C``, the SVM inverse regularisation, defaults to
  the variant's (for ``'scale_free'``, 0.01 would flatten the one-vs-rest
  lines so that even a perfect code could not single out a factor's middle
  values).
  """
  validate.choice(variant, 'variant', VARIANTS)
  codes, factors = _shared.check_codes_and_factors(codes, factors, 'SAP')
  C = validate.number(_DEFAULT_C[variant] if C is None else C, 'C', 0,
                      open_low=True)
  _, train, test = _shared.seeded_split(codes.shape[0], test_fraction, seed)
  scores = sap_score_matrix(codes[train], factors[train], codes[test],
                            factors[test], C=C, variant=variant)
  top_two = -np.sort(-scores, axis=0)[:2]
  return {'sap': float(np.mean(top_two[0] - top_two[1]))}
