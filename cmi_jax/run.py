"""A single run in a work directory: its files, resume checks and the loop.

The epoch loop itself is :func:`cmi_jax.loop.fit`; here a run is its one
member, with ``config.json``, ``results.json`` and the checks that a resumed
run matches the configuration it saved.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any, Callable, Collection, Mapping, Optional

import jax
import numpy as np
from jax.sharding import Mesh

from cmi_jax import checkpoint as ckpt
from cmi_jax import distributed
from cmi_jax import epochs
from cmi_jax import evaluation
from cmi_jax import locks
from cmi_jax import logs
from cmi_jax import loop
from cmi_jax import records
from cmi_jax.data import host
from cmi_jax.data.base import DeviceDataset, validate_labels
from cmi_jax.loop import FitConfig
from cmi_jax.records import EpochHook
from cmi_jax.train import Trainer, TrainState

_log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
  """A loss became NaN or infinite during training."""


class ConfigMismatchError(ValueError):
  """A run would resume a checkpoint saved with a different configuration."""


def _flatten(tree: Any, prefix: str = '') -> dict[str, Any]:
  if isinstance(tree, Mapping):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, f'{prefix}{key}.'))
    return out
  return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def _flat_json(tree: Any) -> dict[str, Any]:
  return _flatten(logs.to_jsonable(tree))


def config_differences(saved: Mapping[str, Any], new: Mapping[str, Any],
                       may_change: Collection[str] = ()) -> list[str]:
  """Dotted names of the fields where ``new`` differs from ``saved``.

  Both are nested mappings (JSON-like). A field is ignored when its dotted
  name, or that name without its first component (``config.lr`` -> ``lr``),
  is in ``may_change``.
  """
  saved, new, allowed = _flat_json(saved), _flat_json(new), set(may_change)
  return [name for name in sorted(set(saved) | set(new))
          if name not in allowed and name.split('.', 1)[-1] not in allowed
          and saved.get(name, '<absent>') != new.get(name, '<absent>')]


def check_resumable(workdir: str, run_config: Optional[Mapping[str, Any]],
                    may_change: Collection[str] = ()) -> bool:
  """Whether ``workdir`` has a ``latest`` checkpoint to resume from.

  Writes nothing, so it can run before any output of a run is made.

  Raises:
    ConfigMismatchError: naming the fields of ``run_config`` that differ
      from the saved ``config.json`` (except ``may_change``), with the fix.
  """
  root = os.path.join(os.path.abspath(workdir), 'checkpoints', ckpt.LATEST)
  has_checkpoint = os.path.isdir(root) and any(
      name.isdigit() for name in os.listdir(root))
  saved_path = os.path.join(workdir, records.CONFIG_FILE)
  if not has_checkpoint or run_config is None or not os.path.exists(
      saved_path):
    return has_checkpoint
  try:
    with open(saved_path) as f:
      saved = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ConfigMismatchError(
        f'{saved_path} cannot be read ({e}), so the checkpoint in {workdir} '
        'cannot be matched to a configuration. Pass another workdir, or '
        f'delete {workdir} to start over.') from None
  differ = config_differences(saved, run_config, may_change)
  if differ:
    old, new = _flat_json(saved), _flat_json(run_config)
    shown = ', '.join(f'{name} ({old.get(name, "absent")!r} -> '
                      f'{new.get(name, "absent")!r})' for name in differ[:8])
    more = f' and {len(differ) - 8} more' if len(differ) > 8 else ''
    raise ConfigMismatchError(
        f'{workdir} holds a run with another configuration; it differs in '
        f'{shown}{more}. Use another workdir for the new configuration, '
        'or, for fields that may change on resume (e.g. num_epochs), name '
        'them in allow_change.')
  return True


# A device dataset, or a host dataset fed by a prefetching thread.
Dataset = DeviceDataset | host.HostDataset


def fit(trainer: Trainer, state: TrainState, train_data: Dataset,
        eval_data: Mapping[str, Dataset], workdir: str,
        config: FitConfig, *, run_config: Optional[dict[str, Any]] = None,
        may_change: Collection[str] = (),
        results_extra: Optional[Mapping[str, Any]] = None,
        epoch_hook: Optional[EpochHook] = None,
        mesh: Optional[Mesh] = None,
        train_epoch: Optional[Callable[..., Any]] = None) -> dict[str, Any]:
  """Trains one run in ``workdir`` with :func:`cmi_jax.loop.fit` (S = 1).

  A run restarted in ``workdir`` resumes from its newest readable ``latest``
  checkpoint; without one it starts over, dropping the best checkpoints and
  the log of the interrupted attempt. It keeps the best epochs' states
  (``checkpoints/best_val_*``). A non-finite loss raises
  :class:`NonFiniteLossError` naming the step, the loss term and the last
  good checkpoint; nothing is saved after the bad step.

  Args:
    state: the initial state (when resuming it only gives the tree
      structure).
    workdir: directory for ``config.json``, ``log.jsonl``, ``tb/``,
      ``checkpoints/`` and ``results.json``.
    run_config: the resolved experiment configuration, saved as
      ``workdir/config.json``; on resume it must equal the saved one except
      in the dotted fields of ``may_change`` (else ConfigMismatchError).
    results_extra: more entries of ``results.json`` (data, attributes, ...).
    epoch_hook: extra metrics after each evaluation (e.g. MI estimates).
    mesh: a 1-D data mesh (:func:`cmi_jax.distributed.data_mesh`): every
      step runs under ``shard_map`` with the global batch split over it.
    train_epoch: ``(state, data) -> (state, stacked metrics)`` instead of
      the engine's epoch for the data (host-fed, on one device or the mesh).

  Returns:
    The results also written to ``workdir/results.json`` (``final`` and the
    best-epoch records of :data:`cmi_jax.records.BEST_CRITERIA`), plus
    ``'state'``.
  """
  check_first_labels(trainer, train_data, eval_data)
  if mesh is not None:
    state = distributed.replicate_state(state, mesh)
  interruptible = train_epoch is None and mesh is None and epochs.is_host_fed(
      train_data)
  if train_epoch is None:
    train_epoch = (epochs.epoch_function(trainer, train_data)
                   if mesh is None
                   else distributed.shard_map_train_epoch(trainer, mesh))
  workdir = os.path.abspath(workdir)
  is_main = jax.process_index() == 0
  check_resumable(workdir, run_config, may_change)
  with workdir_lock(workdir):
    if is_main:
      os.makedirs(workdir, exist_ok=True)
      for path in logs.remove_stale_temporaries(workdir):
        _log.info('Removed %s, left by an interrupted write.', path)
      if run_config is not None:
        records.write_config(workdir, run_config)
    members = loop.Members(1, train_epoch, lambda state, splits: {
        name: evaluation.evaluate(trainer, state, data)
        for name, data in splits.items()}, interruptible=interruptible)
    state, (results,) = loop.fit(
        members, state, train_data, eval_data, config, checkpoint_dir=workdir,
        log_dirs=[workdir], hooks=None if epoch_hook is None else [epoch_hook],
        best_checkpoints=True, name=os.path.basename(workdir))
    if 'non_finite' in results:
      raise NonFiniteLossError(results['non_finite'])
    results = {**results, **dict(results_extra or {})}
    if is_main:
      records.write_results(workdir, results)
    return {'state': state, **results}


def check_workdir(workdir: str) -> None:
  """Refuses a ``workdir`` that is a file or cannot be written."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f'workdir {workdir} is a file, not a directory; pass '
                     'a directory (it is created if needed).')
  existing = workdir
  while not os.path.exists(existing):
    existing = os.path.dirname(os.path.abspath(existing))
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f'workdir {workdir} cannot be written ({existing} is '
                     'read-only for this user); pass a writable directory.')


def workdir_lock(workdir: str) -> contextlib.AbstractContextManager:
  """The lock of ``workdir`` (:class:`cmi_jax.locks.DirectoryLock`).

  Taken by process 0 only, which writes for every host of a run.
  """
  if jax.process_index() != 0:
    return contextlib.nullcontext()
  return locks.DirectoryLock(workdir)


def check_first_labels(trainer: Trainer, train_data: Dataset,
                        eval_data: Mapping[str, Dataset]) -> None:
  """Checks the first batch of every split for labels outside ``[-1, C_k)``.

  On the device such a label raises nothing (it one-hots to zeros or gathers
  out of bounds). Padding rows (``mask == 0``) are skipped.
  """
  splits = [('training data', train_data)] + [
      (f'evaluation split {name!r}', data) for name, data in eval_data.items()]
  for where, data in splits:
    batch = data.batch(data.epoch_plan(jax.random.PRNGKey(0)), 0)
    labels = np.asarray(batch['labels'])
    if 'mask' in batch:
      labels = labels[np.asarray(batch['mask']) > 0]
    validate_labels(labels, trainer.objective.num_classes,
                    where=f'{where} (first batch)')
