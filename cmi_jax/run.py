"""Drives a run: epochs, evaluation, checkpoints, logs, exact resume.

A resumed run ends with the same state, bit for bit, as the uninterrupted
one: the state carries the step and the key, every random draw derives from
them, and evaluation never touches the state.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any, Callable, Collection, Mapping, Optional

import jax
import numpy as np

from cmi_jax import checkpoint as ckpt
from cmi_jax import evaluation
from cmi_jax import host_loop
from cmi_jax import logs
from cmi_jax import records
from cmi_jax import validate
from cmi_jax.data import host
from cmi_jax.data.base import DeviceDataset, validate_labels
from cmi_jax.records import EpochHook
from cmi_jax.train import Trainer, TrainState

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """How a run is driven (not what is trained).

  Attributes:
    num_epochs: epochs in total (a resumed run counts earlier ones).
    eval_every: evaluate every this many epochs (and after the last).
    checkpoint_every: save the latest state every this many epochs.
    log_every_steps: also log training metrics every this many steps (0: no).
    select_split: the split that selects the best epochs
      (:data:`cmi_jax.records.BEST_CRITERIA`).
    group_weights_split: the split whose group counts weigh
      ``train_weighted_accuracy`` in every summary (if it is evaluated).
    progress: tqdm bar; None shows it only on a terminal.
  """
  num_epochs: int
  eval_every: int = 1
  checkpoint_every: int = 1
  keep_checkpoints: int = 2
  log_every_steps: int = 0
  select_split: str = 'val'
  group_weights_split: str = 'train_eval'
  progress: Optional[bool] = None
  tensorboard: bool = True

  def __post_init__(self):
    for name in ('num_epochs', 'eval_every', 'checkpoint_every',
                 'keep_checkpoints'):
      validate.integer(getattr(self, name), name, 1)
    validate.integer(self.log_every_steps, 'log_every_steps', 0)


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
        'cannot be matched to a configuration. Pass another --workdir, or '
        f'delete {workdir} to start over.') from None
  differ = config_differences(saved, run_config, may_change)
  if differ:
    old, new = _flat_json(saved), _flat_json(run_config)
    shown = ', '.join(f'{name} ({old.get(name, "absent")!r} -> '
                      f'{new.get(name, "absent")!r})' for name in differ[:8])
    more = f' and {len(differ) - 8} more' if len(differ) > 8 else ''
    raise ConfigMismatchError(
        f'{workdir} holds a run with another configuration; it differs in '
        f'{shown}{more}. Use another --workdir for the new configuration, '
        'or, for fields that may change on resume (e.g. num_epochs), name '
        'them in --allow_change.')
  return True


# A device dataset, or a host dataset fed by a prefetching thread.
Dataset = DeviceDataset | host.HostDataset


def fit(trainer: Trainer, state: TrainState, train_data: Dataset,
        eval_data: Mapping[str, Dataset], workdir: str,
        config: FitConfig, *, run_config: Optional[dict[str, Any]] = None,
        may_change: Collection[str] = (),
        results_extra: Optional[Mapping[str, Any]] = None,
        epoch_hook: Optional[EpochHook] = None,
        train_epoch: Optional[Callable[..., Any]] = None) -> dict[str, Any]:
  """Trains for ``config.num_epochs`` epochs, evaluating and checkpointing.

  A run restarted in ``workdir`` resumes from its newest readable ``latest``
  checkpoint (an unreadable newer one is skipped with a warning); without
  one it starts over, dropping the best checkpoints and the log of the
  interrupted attempt. A non-finite loss raises :class:`NonFiniteLossError`
  naming the step, the loss term and the last good checkpoint; nothing is
  saved after the bad step.

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
    train_epoch: ``(state, data) -> (state, stacked metrics)``; defaults to
      :func:`cmi_jax.host_loop.epoch_function` of the data (on a device
      mesh: :func:`cmi_jax.train.shard_map_train_epoch`'s result).

  Returns:
    The results also written to ``workdir/results.json`` (``final`` and the
    best-epoch records of :data:`cmi_jax.records.BEST_CRITERIA`), plus
    ``'state'``.
  """
  records.check_select_split(config.select_split, eval_data)
  _check_first_labels(trainer, train_data, eval_data)
  if train_epoch is None:
    train_epoch = host_loop.epoch_function(trainer, train_data)
  workdir = os.path.abspath(workdir)
  is_main = jax.process_index() == 0
  check_resumable(workdir, run_config, may_change)
  if is_main:
    os.makedirs(workdir, exist_ok=True)
    for path in logs.remove_stale_temporaries(workdir):
      _log.info('Removed %s, left by an interrupted write.', path)

  checkpoints = ckpt.RunCheckpoints(workdir, config.keep_checkpoints)
  best = records.no_best()
  start_epoch = 0
  restored = checkpoints.restore_newest_readable(ckpt.LATEST, state,
                                                 _log.warning)
  if restored is not None:
    state, meta = restored
    start_epoch = meta['epoch']
    best.update(meta['best'])
    # Checkpoints newer than the resumed epoch are redone.
    for series in (ckpt.LATEST, *ckpt.BEST_SERIES):
      checkpoints.delete_after(series, start_epoch)
    _log.info('Resuming %s from epoch %d (step %d).', workdir, start_epoch,
              int(state.step))
  else:
    for series in ckpt.BEST_SERIES:
      checkpoints.keep_only(series, None)
  if is_main and run_config is not None:
    records.write_config(workdir, run_config)
  logger = logs.RunLogger(workdir, keep_until_step=int(state.step)
                          if start_epoch else None,
                          tensorboard=config.tensorboard)
  last_good = (checkpoints.path(ckpt.LATEST, start_epoch) if start_epoch
               else 'none (no checkpoint yet)')
  bar = logs.progress_bar(config.num_epochs, start_epoch, config.progress)
  record = next((r for r in reversed(getattr(logger, 'records', []))
                 if 'epoch' in r), None)
  try:
    for epoch in range(start_epoch + 1, config.num_epochs + 1):
      first_step = int(state.step)
      tic = time.perf_counter()
      state, step_metrics = train_epoch(state, train_data)
      step_metrics = jax.device_get(step_metrics)  # Waits for the epoch.
      seconds = {'train': time.perf_counter() - tic}
      bad = records.non_finite_message(step_metrics, first_step, epoch)
      if bad is not None:
        raise NonFiniteLossError(
            f'{bad}; last good checkpoint: {last_good}. Lower the learning '
            'rates or the disentangle weight, then resume.')
      _log_steps(logger, step_metrics, first_step, config.log_every_steps)
      record = records.train_record(epoch, int(state.step), step_metrics)
      record['seconds'] = seconds
      if epoch % config.eval_every == 0 or epoch == config.num_epochs:
        tic = time.perf_counter()
        stats = {name: evaluation.evaluate(trainer, state, data)
                 for name, data in eval_data.items()}
        record['eval'] = records.summarize_splits(
            stats, config.group_weights_split)
        seconds['eval'] = time.perf_counter() - tic
        if epoch_hook is not None:
          tic = time.perf_counter()
          record['extra'] = epoch_hook(epoch, state, stats)
          seconds['hook'] = time.perf_counter() - tic
        for series in records.update_best(best, record, config.select_split):
          checkpoints.save(series, epoch, state, {'epoch': epoch})
      logger.write(record)
      if epoch % config.checkpoint_every == 0 or epoch == config.num_epochs:
        last_good = checkpoints.save(
            ckpt.LATEST, epoch, state, {'epoch': epoch, 'best': best})
        # Only now, so a crash before this save resumes with its recorded
        # best checkpoints still on disk.
        for name, series, _ in records.BEST_CRITERIA:
          checkpoints.keep_only(
              series, None if best[name] is None else best[name]['epoch'])
      bar.set_postfix(_postfix(record), refresh=False)
      bar.update(1)
  finally:
    bar.close()
    logger.close()
    checkpoints.close()

  results = {**records.run_results(record, best, config.num_epochs,
                                   int(state.step)),
             **dict(results_extra or {})}
  if is_main:
    records.write_results(workdir, results)
  return {'state': state, **results}


def _check_first_labels(trainer: Trainer, train_data: Dataset,
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
    validate_labels(labels, trainer.num_classes,
                    where=f'{where} (first batch)')


def _log_steps(logger: logs.RunLogger, step_metrics: dict[str, np.ndarray],
               first_step: int, every: int) -> None:
  if not every:
    return
  for i in range(len(next(iter(step_metrics.values())))):
    step = first_step + i + 1
    if step % every == 0:
      logger.write({'step': step, 'train_step': {
          k: float(v[i]) for k, v in step_metrics.items()}})


def _postfix(record: dict[str, Any]) -> dict[str, str]:
  postfix = {'ce': f"{record['train']['loss/ce']:.3f}"}
  if 'loss/adversary' in record['train']:
    postfix['adv'] = f"{record['train']['loss/adversary']:.3f}"
  for name, summary in record.get('eval', {}).items():
    postfix[name] = f"{summary['accuracy']:.3f}"
  return postfix
