"""One epoch of training: scanned on the device, or fed from the host.

Every epoch draws its plan from :func:`epoch_data_key`, so an epoch is the
same wherever its state resumes. A device dataset
(:class:`cmi_jax.data.base.DeviceDataset`) makes its batches inside the
compiled program: the whole epoch is one ``lax.scan`` (:func:`scan_epoch`).
A dataset that declares ``host_fed`` (:class:`cmi_jax.data.host.HostDataset`)
cannot be traced, so :func:`host_epoch` loops over its prefetched batches
and dispatches one compiled step each. Its batches equal the scanned
epoch's of the same rows; the float results match to rounding, not bit for
bit (XLA compiles one step and a scan of steps differently). At most
``data.prefetch_depth + 1`` steps are in flight, so device memory holds a
bounded number of batches.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding

from cmi_jax import validate
from cmi_jax.data.base import Batch

Metrics = dict[str, Any]
Step = Callable[[Any, Batch], tuple[Any, Metrics]]

# Salt of the data's random stream (cmi_jax.train salts the loss's).
_DATA_STREAM = 1


def epoch_data_key(state: Any, done: int = 0) -> jax.Array:
  """The key of the plan of the epoch ``state`` (a ``TrainState``) is in.

  ``fold_in(fold_in(state.key, data stream), first step)``, where the epoch's
  first step is ``state.step - done`` (``done``: its steps already trained):
  a different plan every epoch, reproduced exactly on resume.
  """
  return jax.random.fold_in(
      jax.random.fold_in(state.key, _DATA_STREAM), state.step - done)


def scan_epoch(step_fn: Step, state: Any, data: Any,
               num_steps: Optional[int] = None,
               batch_sharding: Optional[NamedSharding] = None
               ) -> tuple[Any, Metrics]:
  """Scans ``step_fn`` over ``num_steps`` batches of a device dataset.

  ``num_steps`` defaults to one epoch; ``batch_sharding`` places every
  generated batch (the sharded epoch of :mod:`cmi_jax.distributed`).
  Returns ``(state, metrics)``, each metric stacked ``[num_steps]``.
  """
  num_steps = data.steps_per_epoch if num_steps is None else num_steps
  plan = data.epoch_plan(epoch_data_key(state))

  def body(state, i):
    batch = data.batch(plan, i % data.steps_per_epoch)
    if batch_sharding is not None:
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
    return step_fn(state, batch)

  return jax.lax.scan(body, state, jnp.arange(num_steps))


def is_host_fed(data: Any) -> bool:
  """Whether ``data`` asks to be fed batch by batch (``host_fed = True``)."""
  return bool(getattr(data, 'host_fed', False))


def bounded_loop(step: Callable[[Any, Batch], tuple[Any, Any]], carry: Any,
                 batches, depth: int,
                 stop: Optional[Callable[[], bool]] = None
                 ) -> tuple[Any, list[Any]]:
  """Folds ``step`` over ``batches``, keeping at most ``depth + 1`` in flight.

  Once ``stop()`` is true the fold ends after the step in flight. Returns
  ``(carry, [every step's output])``.
  """
  outputs = []
  for batch in batches:
    carry, out = step(carry, batch)
    outputs.append(out)
    if len(outputs) > depth:
      jax.block_until_ready(outputs[-1 - depth])
    if stop is not None and stop():
      break
  return carry, outputs


def host_epoch(step_fn: Step, state: Any, data: Any,
               num_steps: Optional[int] = None,
               device: Any = None, *, done: int = 0,
               stop: Optional[Callable[[], bool]] = None
               ) -> tuple[Any, Metrics]:
  """:func:`scan_epoch` for host-fed data, one dispatched step per batch.

  It can stop between two steps and resume there: ``stop`` ends it after
  the step in flight, and ``done`` continues an epoch whose first ``done``
  steps are in ``state``; the two halves train exactly the uninterrupted
  epoch.

  Args:
    step_fn: ``(state, batch) -> (state, metrics)``, usually jitted, taking
      the raw device batch (uint8 images).
    state: anything with ``key`` and ``step`` (a ``TrainState``).
    data: a host-fed dataset (``epoch_plan``, ``prefetch``,
      ``prefetch_depth``, ``steps_per_epoch``).
    num_steps: default one epoch.
    device: where the batches go (see ``HostDataset.prefetch``).
    done: steps of this epoch already trained (``0 <= done < num_steps``).
    stop: polled after every step; once true, no further step starts.

  Returns:
    ``(state, metrics)``; each metric stacked over the steps trained, NumPy
    ``[num_steps - done, ...]`` unless stopped.
  """
  num_steps = (data.steps_per_epoch if num_steps is None
               else validate.integer(num_steps, 'num_steps', 1))
  plan = data.epoch_plan(epoch_data_key(state, done))
  with data.prefetch(plan, num_steps - done, device, first=done) as batches:
    state, metrics = bounded_loop(step_fn, state, batches, data.prefetch_depth,
                                  stop)
  metrics = jax.device_get(metrics)
  return state, jax.tree.map(lambda *steps: np.stack(steps), *metrics)


def train_epoch(trainer: Any, state: Any, data: Any,
                num_steps: Optional[int] = None, *, done: int = 0,
                stop: Optional[Callable[[], bool]] = None
                ) -> tuple[Any, Metrics]:
  """One epoch (or ``num_steps`` steps) of ``trainer`` on host-fed data.

  The counterpart of ``trainer.jit_train_epoch``
  (``functools.partial(train_epoch, trainer)`` has its signature); ``done``
  and ``stop`` are :func:`host_epoch`'s.

  Returns:
    ``(state, metrics)``; every metric of :meth:`Trainer.step` stacked over
    steps, NumPy ``[num_steps]``.
  """
  if not is_host_fed(data):
    raise ValueError(f'epochs.train_epoch takes a host-fed dataset, not a '
                     f'{type(data).__name__}; use trainer.jit_train_epoch.')
  return host_epoch(trainer.jit_train_step, state, data, num_steps,
                    done=done, stop=stop)


def epoch_function(trainer: Any, data: Any
                   ) -> Callable[..., tuple[Any, Metrics]]:
  """``(state, data, num_steps=None) -> (state, metrics)`` for this data."""
  return (functools.partial(train_epoch, trainer) if is_host_fed(data)
          else trainer.jit_train_epoch)
