"""FactorVAE score (Kim & Mnih, 2018, "Disentangling by Factorising"),
observational version.

One *vote*: pick a factor k uniformly and a batch of ``batch_size`` rows
sharing an anchor row's value of ``s_k`` (``_shared.SameValueSampler``);
divide every code dimension by its standard deviation over the train rows; the
vote is ``(argmin_d Var_batch[z_d / std_d], k)`` over the active
(non-constant) dimensions: the dimension that moves least when k is fixed.

The classifier is a majority vote: dimension d predicts the factor it was most
often paired with in the training votes. The score is its accuracy on the
training votes and on evaluation votes built from held-out rows. Chance level is
about ``1/K``; a code with one dimension per factor scores 1.
"""

from __future__ import annotations

import numpy as np

from cmi_jax import validate
from cmi_jax.metrics import _shared


def _votes(codes: np.ndarray, dense: np.ndarray, num_votes: int,
           batch_size: int, rng: np.random.Generator) -> np.ndarray:
  """Vote counts ``[D', K]`` from ``[N, D']`` active codes divided by std."""
  sampler = _shared.SameValueSampler(dense)
  counts = np.zeros((codes.shape[1], dense.shape[1]), dtype=np.int64)
  for _, factor in sampler.blocks(num_votes, 'batch', rng):
    anchor = np.repeat(sampler.draw_anchors(factor, rng), batch_size)
    rows = sampler.draw(np.repeat(factor, batch_size), anchor, rng)
    batch = codes[rows].reshape(factor.size, batch_size, -1)  # [m, L, D']
    np.add.at(counts, (np.argmin(batch.var(axis=1, ddof=1), axis=1), factor), 1)
  return counts


def compute_factor_vae(codes, factors, *, batch_size: int = 64,
                       num_train: int = 10000, num_eval: int = 5000,
                       test_fraction: float = 0.25,
                       seed: _shared.Seed = 0) -> dict[str, float]:
  """FactorVAE score of float ``codes [N, D]`` for int ``factors [N, K]``.

  ``batch_size`` >= 2 rows (64 in Kim & Mnih) form a fixed-factor batch;
  ``num_train`` / ``num_eval`` votes train / evaluate the classifier, the
  latter built from the ``test_fraction`` of rows held out. Returns
  ``{'train_accuracy', 'eval_accuracy'}`` in [0, 1] (0 with no active
  dimension) and ``'num_active_dims'``.
  """
  codes, factors = _shared.check_codes_and_factors(codes, factors)
  batch_size = validate.integer(batch_size, 'batch_size', 2)
  num_train = validate.integer(num_train, 'num_train', 1)
  num_eval = validate.integer(num_eval, 'num_eval', 1)
  rng, train, test = _shared.seeded_split(codes.shape[0], test_fraction, seed)
  global_std = codes[train].std(axis=0, ddof=1)
  active = global_std > 0
  if not active.any():
    return {'train_accuracy': 0.0, 'eval_accuracy': 0.0,
            'num_active_dims': 0.0}
  scaled = codes[:, active] / global_std[active]
  dense = _shared.dense_labels(factors)
  train_votes = _votes(scaled[train], dense[train], num_train, batch_size, rng)
  eval_votes = _votes(scaled[test], dense[test], num_eval, batch_size, rng)
  # Ties go to the lowest factor index.
  classifier = np.argmax(train_votes, axis=1)  # [D'] -> factor
  dims = np.arange(classifier.size)
  return {
      'train_accuracy': float(train_votes[dims, classifier].sum() / num_train),
      'eval_accuracy': float(eval_votes[dims, classifier].sum() / num_eval),
      'num_active_dims': float(active.sum())}
