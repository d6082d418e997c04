"""Evaluation of a trained state on a whole split.

:func:`eval_step` gives one batch's sufficient statistics; :func:`evaluate`
sums them over every batch of a split (scanned on the device, or fed from the
host) and stacks the codes; :func:`summarize` turns the sums into readable
metrics.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import attributes
from cmi_jax import epochs
from cmi_jax import groups
from cmi_jax import programs
from cmi_jax.data.base import Batch, DeviceDataset, to_float_image
from cmi_jax.train import Trainer, TrainState

# The fields of eval_step that add over batches, and those stacked over rows;
# REGRESSION_SUMS only when an attribute is continuous.
SUMMED = ('ce_sum', 'correct', 'count', 'confusion', 'combo_correct',
          'combo_count')
REGRESSION_SUMS = ('value_sum', 'value_sq_sum')
STACKED = ('z', 'labels', 'preds', 'mask')


def eval_step(trainer: Trainer, state: TrainState, batch: Batch
              ) -> dict[str, jax.Array]:
  """Sufficient statistics of one evaluation batch (sum them over batches).

  ``batch`` may hold a float ``'mask'`` ``[B]`` (1 = real row, 0 = padding).

  Returns:
    dict of
      ``z``: ``[B, D]`` codes; ``labels``/``preds``: ``[B, K]`` (int, or
      float with a continuous attribute: classes and values);
      ``mask``: ``[B]``;
      ``ce_sum``: ``[K]`` summed cross-entropy (squared error for a
        continuous attribute) over labelled rows;
      ``correct``: ``[K]`` correct predictions (0 for a continuous
        attribute); ``count``: ``[K]`` labelled rows;
      ``confusion``: ``[C, C]`` joint confusion over the
        ``C = prod(num_classes)`` combinations of the categorical attributes
        (rows true, columns predicted), rows with every label;
      ``combo_correct``: ``[C, K]`` correct predictions of every attribute
        inside each true combination; ``combo_count``: ``[C]``;
      with a continuous attribute also ``value_sum`` and ``value_sq_sum``
        ``[K]``: the sums of its labels and their squares over labelled rows
        (NaN for a categorical attribute, so summaries tell them apart).
  """
  x = to_float_image(batch['image'])
  num_classes = trainer.objective.num_classes
  labels = attributes.as_labels(batch['labels'], num_classes)
  mask = batch.get('mask', jnp.ones(labels.shape[0], jnp.float32))
  z = trainer.encoder.apply(state.encoder_params, x)
  logits = trainer.heads.apply(state.heads_params, z)
  preds = attributes.predictions(logits, num_classes)
  present = attributes.labelled(labels, num_classes) & (mask[:, None] > 0)
  ce_rows = attributes.row_losses(logits, labels, num_classes)[0]
  full = jnp.all(present, -1)
  num_combos = groups.num_groups(num_classes)
  true_onehot = jax.nn.one_hot(groups.group_index(labels, num_classes),
                               num_combos) * full[:, None]
  pred_onehot = jax.nn.one_hot(groups.group_index(preds, num_classes),
                               num_combos)
  categorical = np.array([n != attributes.CONTINUOUS for n in num_classes])
  correct = (preds == labels) & present & categorical
  out = {'z': z, 'labels': labels, 'preds': preds, 'mask': mask,
         'ce_sum': jnp.sum(jnp.where(present, ce_rows, 0.0), 0),
         'correct': correct.sum(0), 'count': present.sum(0),
         'confusion': true_onehot.T @ pred_onehot,
         'combo_correct': true_onehot.T @ correct.astype(jnp.float32),
         'combo_count': true_onehot.sum(0)}
  if not categorical.all():
    values = jnp.where(present, labels, 0.0)
    out['value_sum'] = jnp.where(categorical, jnp.nan, values.sum(0))
    out['value_sq_sum'] = jnp.where(categorical, jnp.nan,
                                    jnp.square(values).sum(0))
  return out


def scan_evaluate(trainer: Trainer, state: TrainState, data: DeviceDataset
                  ) -> dict[str, jax.Array]:
  """:func:`eval_step` scanned over every batch of a device dataset: the
  sums and the concatenated rows (pure; jit- and vmap-safe)."""
  plan = data.epoch_plan(jax.random.PRNGKey(0))

  def body(totals, i):
    out = eval_step(trainer, state, data.batch(plan, i))
    return _add_sums(totals, out), {k: out[k] for k in STACKED}

  zeros = _zero_sums(trainer, state, data.batch(plan, 0))
  totals, stacked = jax.lax.scan(body, zeros, jnp.arange(data.steps_per_epoch))
  stacked = {k: v.reshape((-1,) + v.shape[2:]) for k, v in stacked.items()}
  return {**totals, **stacked}


def _zero_sums(trainer: Trainer, state: TrainState, batch: Batch
               ) -> dict[str, jax.Array]:
  first = jax.eval_shape(functools.partial(eval_step, trainer), state, batch)
  return {k: jnp.zeros(first[k].shape, first[k].dtype)
          for k in SUMMED + REGRESSION_SUMS if k in first}


def _add_sums(totals: dict[str, jax.Array], out: dict[str, jax.Array]
              ) -> dict[str, jax.Array]:
  return {k: totals[k] + out[k] for k in totals}


def _host_evaluate(trainer: Trainer, state: TrainState, data: Any
                   ) -> dict[str, jax.Array]:
  """:func:`scan_evaluate` for host-fed data: one compiled step per batch."""
  plan = data.epoch_plan(jax.random.PRNGKey(0))
  step = programs.compiled(eval_step, trainer)
  # One dispatch per batch for all the sums, their buffers reused.
  add = programs.compiled(_add_sums, donate_argnums=(0,))

  def accumulate(totals, batch):
    out = step(state, batch)
    return add(totals, out), {k: out[k] for k in STACKED}

  with data.prefetch(plan) as batches:
    batches = iter(batches)
    batch = next(batches)
    totals, stacked = epochs.bounded_loop(
        accumulate, _zero_sums(trainer, state, batch),
        itertools.chain([batch], batches), data.prefetch_depth)
  return {**totals, **{k: jnp.concatenate([r[k] for r in stacked])
                       for k in STACKED}}


def evaluate(trainer: Trainer, state: TrainState,
             data: DeviceDataset | Any
             ) -> dict[str, np.ndarray]:
  """Runs the state over every batch of a device or host-fed dataset.

  Returns:
    NumPy dict: the sums of :func:`eval_step` (``ce_sum``, ``correct``,
    ``count``, ``confusion``, ``combo_correct``, ``combo_count``) and the
    concatenated per-example ``z`` ``[N, D]``, ``labels``/``preds`` ``[N, K]``,
    ``mask`` ``[N]``.
  """
  stats = (_host_evaluate(trainer, state, data) if epochs.is_host_fed(data)
           else programs.compiled(scan_evaluate, trainer)(state, data))
  return jax.tree.map(np.asarray, stats)


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
  per_head = (np.asarray(combo_correct, np.float64)[present]
              / combo_count[present, None])  # [G, K]
  if not present.any():  # One group of NaN accuracies: every score NaN.
    per_head = np.full((1, per_head.shape[1]), np.nan)
  per_group = per_head.mean(1)
  out = {'worst_group_accuracy': float(per_group.min()),
         'worst_group_accuracy_per_attribute': per_head.min(0).tolist(),
         'mean_group_accuracy': float(per_group.mean())}
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
    dict with ``loss`` (the heads' mean loss over attributes: cross-entropy
    in nats, squared error for a continuous attribute),
    ``accuracy`` (mean over the categorical attributes),
    ``accuracy_per_attribute`` [K] (NaN for a continuous attribute),
    ``accuracy_per_combination`` [C, K] (NaN where a combination is absent),
    ``combination_count`` [C], ``confusion`` [C, C] (counts; rows true,
    columns predicted), ``z_correlation`` [D, D] (Pearson), ``num_examples``
    and the numbers of :func:`group_accuracies`; with a continuous attribute
    also :func:`regression_metrics`.
  """
  count = np.maximum(stats['count'], 1)
  per_attribute = stats['correct'] / count
  regression = {}
  if 'value_sum' in stats:
    regression = regression_metrics(stats)
    per_attribute = np.where(np.isnan(stats['value_sum']), per_attribute,
                             np.nan)
  with np.errstate(invalid='ignore', divide='ignore'):
    per_combination = stats['combo_correct'] / stats['combo_count'][:, None]
    z = stats['z'][stats['mask'] > 0]
    correlation = np.corrcoef(z, rowvar=False)
  return {'loss': float(np.mean(stats['ce_sum'] / count)),
          'accuracy': float((np.nanmean if regression else np.mean)(
              per_attribute)),
          'accuracy_per_attribute': per_attribute.tolist(),
          'accuracy_per_combination': per_combination.tolist(),
          'combination_count': stats['combo_count'].astype(int).tolist(),
          'confusion': stats['confusion'].astype(int).tolist(),
          'z_correlation': correlation.tolist(),
          'num_examples': int((stats['mask'] > 0).sum()),
          **group_accuracies(stats['combo_correct'], stats['combo_count'],
                             group_weights),
          **regression}


def regression_metrics(stats: dict[str, Any]) -> dict[str, Any]:
  """MSE and R^2 of each continuous attribute's head, from the sums.

  ``R^2 = 1 - SSE / SST`` with ``SST = sum y^2 - (sum y)^2 / n`` over the
  labelled rows. Returns ``mse_per_attribute`` and ``r2_per_attribute``
  [K] (NaN for a categorical attribute or one without labelled rows), and
  ``mse`` and ``r2``, their means over the continuous attributes.
  """
  count = stats['count'].astype(np.float64)
  continuous = ~np.isnan(stats['value_sum'])
  with np.errstate(invalid='ignore', divide='ignore'):
    mse = np.where(continuous & (count > 0), stats['ce_sum'] / count, np.nan)
    total = stats['value_sq_sum'] - np.square(stats['value_sum']) / count
    r2 = np.where(continuous & (total > 0), 1.0 - stats['ce_sum'] / total,
                  np.nan)
  return {'mse': float(np.nanmean(mse)) if np.isfinite(mse).any() else np.nan,
          'r2': float(np.nanmean(r2)) if np.isfinite(r2).any() else np.nan,
          'mse_per_attribute': mse.tolist(),
          'r2_per_attribute': r2.tolist()}


def codes_and_labels(trainer: Trainer, state: TrainState,
                     dataset: DeviceDataset, max_rows: int = 0, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
  """Codes and labels of the (unpadded, fully labelled) examples of a split.

  ``(codes, factors, summary)``: float ``[N, D]`` codes, int ``[N, K]``
  labels and :func:`summarize` of the whole split. At most ``max_rows`` rows
  (0: all), drawn uniformly without replacement.
  """
  stats = evaluate(trainer, state, dataset)
  labelled = np.asarray(attributes.labelled(stats['labels'],
                                            trainer.objective.num_classes))
  keep = np.flatnonzero((stats['mask'] > 0) & labelled.all(1))
  if 0 < max_rows < len(keep):
    keep = keep[np.sort(np.random.default_rng(seed).choice(
        len(keep), max_rows, replace=False))]
  return (stats['z'][keep].astype(np.float64),
          stats['labels'][keep].astype(np.int64), summarize(stats))
