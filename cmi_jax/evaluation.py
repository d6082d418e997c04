"""Evaluation of a trained state on a whole split.

:func:`evaluate` sums :meth:`Trainer.eval_step` over every batch and stacks
the codes; :func:`summarize` turns those sums into readable metrics.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import host_loop
from cmi_jax.data.base import DeviceDataset
from cmi_jax.train import Trainer, TrainState

_SUMMED, _STACKED = host_loop.SUMMED, host_loop.STACKED


@functools.partial(jax.jit, static_argnums=0)
def _evaluate(trainer: Trainer, state: TrainState, data: DeviceDataset
              ) -> dict[str, jax.Array]:
  plan = data.epoch_plan(jax.random.PRNGKey(0))

  def body(totals, i):
    out = trainer.eval_step(state, data.batch(plan, i))
    totals = {k: totals[k] + out[k] for k in _SUMMED}
    return totals, {k: out[k] for k in _STACKED}

  first = jax.eval_shape(trainer.eval_step, state, data.batch(plan, 0))
  zeros = {k: jnp.zeros(first[k].shape, first[k].dtype) for k in _SUMMED}
  totals, stacked = jax.lax.scan(body, zeros, jnp.arange(data.steps_per_epoch))
  stacked = {k: v.reshape((-1,) + v.shape[2:]) for k, v in stacked.items()}
  return {**totals, **stacked}


def evaluate(trainer: Trainer, state: TrainState,
             data: DeviceDataset | Any
             ) -> dict[str, np.ndarray]:
  """Runs the state over every batch of a device or host-fed dataset.

  Returns:
    NumPy dict: the sums of :meth:`Trainer.eval_step` (``ce_sum``, ``correct``,
    ``count``, ``confusion``, ``combo_correct``, ``combo_count``) and the
    concatenated per-example ``z`` ``[N, D]``, ``labels``/``preds`` ``[N, K]``,
    ``mask`` ``[N]``.
  """
  if host_loop.is_host_fed(data):
    return jax.tree.map(np.asarray, host_loop.evaluate(trainer, state, data))
  return jax.tree.map(np.asarray, _evaluate(trainer, state, data))


def group_accuracies(combo_correct: np.ndarray, combo_count: np.ndarray,
                     group_weights: np.ndarray | None = None
                     ) -> dict[str, Any]:
  """Group-robustness numbers from per-group counts.

  Groups (row-major attribute combinations) without examples are left out.

  Args:
    combo_correct: ``[C, K]`` correct predictions of head k in group g.
    combo_count: ``[C]`` examples per group.
    group_weights: optional ``[C]`` training group frequencies, normalised
      over the groups present here.

  Returns:
    ``worst_group_accuracy``: ``min_g mean_k acc_k(g)``;
    ``worst_group_accuracy_per_attribute`` ``[K]``: ``min_g acc_k(g)``;
    ``mean_group_accuracy``: ``mean_g mean_k acc_k(g)``; with
    ``group_weights``, ``train_weighted_accuracy``: ``sum_g w_g mean_k
    acc_k(g)``. Fractions in [0, 1]; NaN if no group has examples.
  """
  combo_count = np.asarray(combo_count, np.float64)
  present = combo_count > 0
  out: dict[str, Any] = {}
  if not present.any():
    nan = float('nan')
    out.update(worst_group_accuracy=nan, mean_group_accuracy=nan,
               worst_group_accuracy_per_attribute=[nan] * np.shape(
                   combo_correct)[1])
    if group_weights is not None:
      out['train_weighted_accuracy'] = nan
    return out
  per_head = (np.asarray(combo_correct, np.float64)[present]
              / combo_count[present, None])  # [G, K]
  per_group = per_head.mean(1)
  out['worst_group_accuracy'] = float(per_group.min())
  out['worst_group_accuracy_per_attribute'] = per_head.min(0).tolist()
  out['mean_group_accuracy'] = float(per_group.mean())
  if group_weights is not None:
    weights = np.asarray(group_weights, np.float64)[present]
    total = weights.sum()
    out['train_weighted_accuracy'] = (float(weights @ per_group / total)
                                      if total > 0 else float('nan'))
  return out


def summarize(stats: dict[str, Any],
              group_weights: np.ndarray | None = None) -> dict[str, Any]:
  """Readable metrics from :func:`evaluate`'s output ``stats``.

  ``group_weights``: as in :func:`group_accuracies` (e.g. the training
  split's ``combination_count``).

  Returns:
    dict with ``loss`` (mean cross-entropy over attributes, nats),
    ``accuracy`` (mean over attributes), ``accuracy_per_attribute`` [K],
    ``accuracy_per_combination`` [C, K] (NaN where a combination is absent),
    ``combination_count`` [C], ``confusion`` [C, C] (counts; rows true,
    columns predicted), ``z_correlation`` [D, D] (Pearson), ``num_examples``
    and the numbers of :func:`group_accuracies`.
  """
  count = np.maximum(stats['count'], 1)
  per_attribute = stats['correct'] / count
  with np.errstate(invalid='ignore', divide='ignore'):
    per_combination = stats['combo_correct'] / stats['combo_count'][:, None]
    z = stats['z'][stats['mask'] > 0]
    correlation = np.corrcoef(z, rowvar=False)
  return {
      'loss': float(np.mean(stats['ce_sum'] / count)),
      'accuracy': float(np.mean(per_attribute)),
      'accuracy_per_attribute': per_attribute.tolist(),
      'accuracy_per_combination': per_combination.tolist(),
      'combination_count': stats['combo_count'].astype(int).tolist(),
      'confusion': stats['confusion'].astype(int).tolist(),
      'z_correlation': correlation.tolist(),
      'num_examples': int((stats['mask'] > 0).sum()),
      **group_accuracies(stats['combo_correct'], stats['combo_count'],
                         group_weights),
  }
