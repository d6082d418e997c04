"""BetaVAE score (Higgins et al., 2017, "beta-VAE: Learning Basic Visual
Concepts with a Constrained Variational Framework"), observational version.

One training point is made as follows:

1. pick a factor k uniformly;
2. draw ``batch_size`` pairs of rows ``(a_l, b_l)`` that share their value of
   ``s_k`` (``a_l`` uniform among the rows whose value of ``s_k`` occurs more
   than once, ``b_l`` uniform among the rows with that value) -- the data's
   version of "two samples with factor k fixed, all else resampled";
3. the feature is ``zdiff = (1/L) sum_l |z(a_l) - z(b_l)|`` (``[D]``) and the
   label is k.

A linear classifier (multinomial logistic regression) predicts k; the score
is its accuracy on the training points and on evaluation points built from
held-out rows. A dimension that encodes only ``s_k`` has ``zdiff ~ 0`` exactly
when k is the fixed factor, so a disentangled code scores ~1; chance level is
about ``1/K``.

Two definitions (``variant``): ``'dlib'`` (default) fits scikit-learn's
default ``LogisticRegression`` on the raw ``zdiff``, as disentanglement_lib
(and the paper's metric code) do; its L2 penalty then weighs differently for
codes of different scale. ``'scale_free'`` standardises ``zdiff`` first, so
the score does not move with the code's scale (not comparable with published
numbers).
"""

from __future__ import annotations

import numpy as np
import warnings

from sklearn import exceptions as sk_exceptions
from sklearn import linear_model, pipeline, preprocessing

from cmi_jax.metrics import _common

VARIANTS = ('dlib', 'scale_free')

# Points built per vectorised block: bounds the [block, batch_size, D] gathers.
_BLOCK = 1024


def _points(codes: np.ndarray, dense: np.ndarray, num_points: int,
            batch_size: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """``(zdiff [num_points, D], fixed factor [num_points])`` from pair batches.

  Args:
    codes: float ``[N, D]``.
    dense: int ``[N, K]`` factor labels relabelled to ``0..V_j-1``.
    num_points: number of (zdiff, k) points.
    batch_size: pairs averaged per point, L >= 1.
    rng: random generator.
  """
  sampler = _common.SameValueSampler(dense)
  usable = sampler.require_usable_factors('pair')
  features = np.empty((num_points, codes.shape[1]))
  labels = np.empty(num_points, dtype=np.int64)
  for start in range(0, num_points, _BLOCK):
    m = min(_BLOCK, num_points - start)
    factor = usable[rng.integers(usable.size, size=m)]
    pair_factor = np.repeat(factor, batch_size)
    first = sampler.draw_anchors(pair_factor, rng)
    second = sampler.draw(pair_factor, first, rng)
    diff = np.abs(codes[first] - codes[second]).reshape(m, batch_size, -1)
    features[start:start + m] = diff.mean(axis=1)
    labels[start:start + m] = factor
  return features, labels


def compute_beta_vae(codes, factors, *, batch_size: int = 64,
                     num_train: int = 10000, num_eval: int = 5000,
                     test_fraction: float = 0.25, variant: str = 'dlib',
                     seed: _common.Seed = 0) -> dict[str, float]:
  """BetaVAE score of a representation.

  Args:
    codes: float ``[N, D]`` codes.
    factors: int ``[N, K]`` factor labels, each column with >= 2 values.
    batch_size: pairs averaged into one ``zdiff`` (64 in disentanglement_lib).
    num_train: training points of the linear classifier.
    num_eval: evaluation points.
    test_fraction: share of rows held out to build the evaluation points.
    variant: ``'dlib'`` (raw ``zdiff``) or ``'scale_free'`` (standardised).
    seed: int or ``numpy.random.Generator``.

  Returns:
    ``{'train_accuracy', 'eval_accuracy'}`` in [0, 1].

  Raises:
    ValueError: on malformed inputs, counts < 1 or an unknown variant.
  """
  if variant not in VARIANTS:
    raise ValueError(f'variant must be one of {VARIANTS}; got {variant!r}.')
  codes, factors = _common.check_codes_and_factors(codes, factors)
  batch_size = _common.check_positive_int(batch_size, 'batch_size')
  num_train = _common.check_positive_int(num_train, 'num_train')
  num_eval = _common.check_positive_int(num_eval, 'num_eval')
  rng = _common.as_generator(seed)
  train, test = _common.split_indices(codes.shape[0], test_fraction, rng)
  dense, _ = _common.dense_labels(factors)
  x_train, y_train = _points(codes[train], dense[train], num_train, batch_size,
                             rng)
  x_eval, y_eval = _points(codes[test], dense[test], num_eval, batch_size, rng)
  if np.unique(y_train).size < 2:
    # Only one factor could be fixed (the others never repeat a value): the
    # classifier can only ever answer that factor.
    only = y_train[0]
    return {'train_accuracy': 1.0,
            'eval_accuracy': float(np.mean(y_eval == only))}
  if variant == 'scale_free':
    # Standardising zdiff makes the default L2 penalty mean the same for
    # codes of any scale (Higgins et al. use an unregularised classifier).
    clf = pipeline.make_pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(max_iter=1000))
  else:
    clf = linear_model.LogisticRegression()
  with warnings.catch_warnings():
    # dlib's default iteration budget may stop lbfgs early; that is its score.
    warnings.simplefilter('ignore', sk_exceptions.ConvergenceWarning)
    clf.fit(x_train, y_train)
  return {
      'train_accuracy': float(np.mean(clf.predict(x_train) == y_train)),
      'eval_accuracy': float(np.mean(clf.predict(x_eval) == y_eval)),
  }
