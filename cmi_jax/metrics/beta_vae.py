"""BetaVAE score (Higgins et al., 2017, "beta-VAE: Learning Basic Visual
Concepts with a Constrained Variational Framework"), observational version.

One training point: pick a factor k uniformly; draw ``batch_size`` pairs of
rows ``(a_l, b_l)`` sharing their value of ``s_k``
(``_shared.SameValueSampler``); the feature is
``zdiff = (1/L) sum_l |z(a_l) - z(b_l)|`` (``[D]``), the label k. A linear
classifier (multinomial logistic regression) predicts k; the score is its
accuracy on the training points and on evaluation points built from held-out
rows. A dimension that encodes only ``s_k`` has ``zdiff ~ 0`` exactly
when k is fixed, so a disentangled code scores ~1; chance is about ``1/K``.

``variant='dlib'`` (default) fits scikit-learn's default
``LogisticRegression`` on the raw ``zdiff``, as disentanglement_lib does; its
L2 penalty then weighs differently for codes of different scale.
``'scale_free'`` standardises ``zdiff`` first, so the score does not move with
the code's scale (not comparable with published numbers).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import exceptions as sk_exceptions
from sklearn import linear_model, pipeline, preprocessing

from cmi_jax import validate
from cmi_jax.metrics import _shared

VARIANTS = ('dlib', 'scale_free')


def _points(codes: np.ndarray, dense: np.ndarray, num_points: int,
            batch_size: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """``(zdiff [num_points, D], fixed factor [num_points])`` from the codes."""
  sampler = _shared.SameValueSampler(dense)
  features = np.empty((num_points, codes.shape[1]))
  labels = np.empty(num_points, dtype=np.int64)
  for block, factor in sampler.blocks(num_points, 'pair', rng):
    pair_factor = np.repeat(factor, batch_size)
    first = sampler.draw_anchors(pair_factor, rng)
    diff = np.abs(codes[first] - codes[sampler.draw(pair_factor, first, rng)])
    features[block] = diff.reshape(factor.size, batch_size, -1).mean(axis=1)
    labels[block] = factor
  return features, labels


def compute_beta_vae(codes, factors, *, batch_size: int = 64,
                     num_train: int = 10000, num_eval: int = 5000,
                     test_fraction: float = 0.25, variant: str = 'dlib',
                     seed: _shared.Seed = 0) -> dict[str, float]:
  """BetaVAE score of float ``codes [N, D]`` for int ``factors [N, K]``.

  ``batch_size`` pairs (64 in disentanglement_lib) average into one ``zdiff``;
  ``num_train`` / ``num_eval`` points train / evaluate the classifier, the
  latter built from the ``test_fraction`` of rows held out. Returns
  ``{'train_accuracy', 'eval_accuracy'}`` in [0, 1].
  """
  validate.choice(variant, 'variant', VARIANTS)
  codes, factors = _shared.check_codes_and_factors(codes, factors)
  batch_size = validate.integer(batch_size, 'batch_size', 1)
  num_train = validate.integer(num_train, 'num_train', 1)
  num_eval = validate.integer(num_eval, 'num_eval', 1)
  rng, train, test = _shared.seeded_split(codes.shape[0], test_fraction, seed)
  dense = _shared.dense_labels(factors)
  x_train, y_train = _points(codes[train], dense[train], num_train, batch_size,
                             rng)
  x_eval, y_eval = _points(codes[test], dense[test], num_eval, batch_size, rng)
  if np.unique(y_train).size < 2:
    # Only one factor could be fixed: the classifier can only answer that one.
    return {'train_accuracy': 1.0,
            'eval_accuracy': float(np.mean(y_eval == y_train[0]))}
  clf = (pipeline.make_pipeline(preprocessing.StandardScaler(),
                                linear_model.LogisticRegression(max_iter=1000))
         if variant == 'scale_free' else linear_model.LogisticRegression())
  # dlib's default iteration budget may stop lbfgs early; that is its score.
  with warnings.catch_warnings(action='ignore',
                               category=sk_exceptions.ConvergenceWarning):
    clf.fit(x_train, y_train)
  return {'train_accuracy': float(np.mean(clf.predict(x_train) == y_train)),
          'eval_accuracy': float(np.mean(clf.predict(x_eval) == y_eval))}
