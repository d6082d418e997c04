"""Training and evaluation on host-fed data, batch by batch.

The device path scans a whole epoch in one compiled call
(:func:`cmi_jax.train.scan_epoch`); a dataset that declares ``host_fed``
(:class:`cmi_jax.data.host.HostDataset`) cannot be traced, so here the host
loops over its prefetched batches and dispatches one compiled step each. The
batches equal the scanned epoch's of the same rows (same epoch key, same
permutation); the float results match it to rounding, not bit for bit (XLA
compiles one step and a scan of steps differently).

At most ``data.prefetch_depth + 1`` steps are in flight: the host waits for
step ``i - depth`` before it starts step ``i + 1``, so device memory holds a
bounded number of batches.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import train
from cmi_jax.data.base import Batch

Metrics = dict[str, np.ndarray]
# Fields of Trainer.eval_step that add over batches / stack over rows.
SUMMED = ('ce_sum', 'correct', 'count', 'confusion', 'combo_correct',
          'combo_count')
STACKED = ('z', 'labels', 'preds', 'mask')


def is_host_fed(data: Any) -> bool:
  """Whether ``data`` asks to be fed batch by batch (``host_fed = True``)."""
  return bool(getattr(data, 'host_fed', False))


def _bounded_loop(step: Callable[[Any, Batch], tuple[Any, Any]], carry: Any,
                  batches, depth: int) -> tuple[Any, list[Any]]:
  outputs = []
  for batch in batches:
    carry, out = step(carry, batch)
    outputs.append(out)
    if len(outputs) > depth:
      jax.block_until_ready(outputs[-1 - depth])
  return carry, outputs


def scan_epoch(step_fn: Callable[[Any, Batch], tuple[Any, Any]], state: Any,
               data: Any, num_steps: Optional[int] = None,
               device: Any = None) -> tuple[Any, Metrics]:
  """:func:`cmi_jax.train.scan_epoch` for host-fed data.

  Args:
    step_fn: ``(state, batch) -> (state, metrics)``, usually jitted, taking
      the raw device batch (uint8 images).
    state: anything with ``key`` and ``step`` (a ``TrainState``).
    data: a host-fed dataset (``epoch_plan``, ``prefetch``,
      ``prefetch_depth``, ``steps_per_epoch``).
    num_steps: default one epoch.
    device: where the batches go (see ``HostDataset.prefetch``).

  Returns:
    ``(state, metrics)``; each metric stacked over steps, NumPy
    ``[num_steps, ...]``.
  """
  num_steps = data.steps_per_epoch if num_steps is None else int(num_steps)
  if num_steps < 1:
    raise ValueError(f'num_steps must be >= 1; got {num_steps}.')
  plan = data.epoch_plan(train.epoch_data_key(state))
  with data.prefetch(plan, num_steps, device) as batches:
    state, metrics = _bounded_loop(step_fn, state, batches,
                                   data.prefetch_depth)
  metrics = jax.device_get(metrics)
  return state, jax.tree.map(lambda *steps: np.stack(steps), *metrics)


def train_epoch(trainer: train.Trainer, state: train.TrainState, data: Any,
                num_steps: Optional[int] = None
                ) -> tuple[train.TrainState, Metrics]:
  """One epoch (or ``num_steps`` steps) of ``trainer`` on host-fed data.

  The counterpart of ``trainer.jit_train_epoch``
  (``functools.partial(train_epoch, trainer)`` has its signature).

  Returns:
    ``(state, metrics)``; every metric of :meth:`Trainer.step` stacked over
    steps, NumPy ``[num_steps]``.
  """
  if not is_host_fed(data):
    raise ValueError(
        'host_loop.train_epoch takes a host-fed dataset (HostDataset); got '
        f'a {type(data).__name__}. Use trainer.jit_train_epoch for device '
        'datasets.')
  return scan_epoch(trainer.jit_train_step, state, data, num_steps)


def epoch_function(trainer: train.Trainer, data: Any
                   ) -> Callable[..., tuple[train.TrainState, Any]]:
  """``(state, data, num_steps=None) -> (state, metrics)`` for this data."""
  if is_host_fed(data):
    return functools.partial(train_epoch, trainer)
  return trainer.jit_train_epoch


@functools.partial(jax.jit, donate_argnums=0)
def _add_sums(totals: Metrics, out: Metrics) -> Metrics:
  # One dispatch per batch for all the sums, their buffers reused.
  return {k: totals[k] + out[k] for k in SUMMED}


def evaluate(trainer: train.Trainer, state: train.TrainState, data: Any
             ) -> dict[str, jax.Array]:
  """:func:`cmi_jax.evaluation.evaluate`'s sums and rows, fed from the host."""
  plan = data.epoch_plan(jax.random.PRNGKey(0))
  step = trainer.jit_eval_step

  def accumulate(totals, batch):
    out = step(state, batch)
    return _add_sums(totals, out), {k: out[k] for k in STACKED}

  with data.prefetch(plan) as batches:
    batches = iter(batches)
    batch = next(batches)
    first = jax.eval_shape(trainer.eval_step, state, batch)
    totals = {k: jnp.zeros(first[k].shape, first[k].dtype) for k in SUMMED}
    totals, stacked = _bounded_loop(accumulate, totals,
                                    itertools.chain([batch], batches),
                                    data.prefetch_depth)
  return {**totals, **{k: jnp.concatenate([r[k] for r in stacked])
                       for k in STACKED}}
