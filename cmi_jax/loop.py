"""The one epoch loop: S >= 1 members of the same shapes, trained together.

A single run is one member with an unstacked state (:func:`cmi_jax.run.fit`);
a vmapped group stacks S members along a leading axis
(:func:`cmi_jax.vmapped.fit_sweep`). :class:`Members` says how the states
train and evaluate; everything else is written once, here, with one rule each:

* **Evaluation** every ``eval_every`` epochs and after the last; 0 evaluates
  after the last epoch only.
* **Best epochs**: every evaluation updates each member's records of
  :data:`cmi_jax.records.BEST_CRITERIA` on ``select_split``. With
  ``best_checkpoints`` the state of a best epoch is saved too: a single run
  does so; a member of a group keeps the records only, since its state lives
  inside the group's stacked checkpoint and S separate saves per evaluation
  would multiply the writes.
* **Non-finite losses**: a member whose step metrics become NaN or infinite
  stops, with a message naming the step, the terms and the last good
  checkpoint; its results are ``{'epoch', 'non_finite'}``. The other members
  train on; once every member has stopped the loop ends, saving nothing after
  the bad step.
* **Resume**: the ``latest`` checkpoint holds the state and, in its meta, the
  epoch, the best and last records and the stopped members; a restarted loop
  continues from the newest readable one and ends bit-identical to the
  uninterrupted loop (the state carries the step and the key; evaluation never
  touches it). Logs drop records past the resumed step; checkpoints newer than
  the resumed epoch are redone.
* **Stop signals** (with a ``checkpoint_dir``): after SIGTERM, SIGINT or
  SIGUSR1 the loop saves and raises :class:`cmi_jax.preemption.Preempted`;
  the same call resumes from there, bit-identical. An interruptible epoch
  (``Members.interruptible``: host-fed data) stops after the step in flight
  and saves that step as ``mid_epoch``, with the metrics of the epoch's
  steps so far in its meta; a compiled epoch is one call, so the stop waits
  for its end and saves ``latest``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import numpy as np

from cmi_jax import checkpoint as ckpt
from cmi_jax import logs
from cmi_jax import preemption
from cmi_jax import records
from cmi_jax import validate
from cmi_jax.records import EpochHook

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """How a run or a group is driven (not what is trained).

  Attributes:
    num_epochs: epochs in total (a resumed run counts earlier ones).
    eval_every: evaluate every this many epochs and after the last; 0: after
      the last only.
    checkpoint_every: save the latest state every this many epochs (and
      after the last).
    keep_checkpoints: how many ``latest`` checkpoints to keep.
    log_every_steps: also log training metrics every this many steps (0: no).
    select_split: the split that selects the best epochs
      (:data:`cmi_jax.records.BEST_CRITERIA`).
    group_weights_split: the split whose group counts weigh
      ``train_weighted_accuracy`` in every summary (if it is evaluated).
    progress: tqdm bar; None shows it only on a terminal.
    tensorboard: also write TensorBoard events next to each ``log.jsonl``.
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
    for name in ('num_epochs', 'checkpoint_every', 'keep_checkpoints'):
      validate.integer(getattr(self, name), name, 1)
    for name in ('eval_every', 'log_every_steps'):
      validate.integer(getattr(self, name), name, 0)


@dataclasses.dataclass(frozen=True)
class Members:
  """How the loop's state trains and evaluates.

  Attributes:
    size: S, the number of members.
    train_epoch: ``(state, train_data) -> (state, metrics)``; each metric
      ``[steps]``, or ``[S, steps]`` when stacked.
    evaluate: ``(state, eval_data) -> {split: stats}``, the NumPy statistics
      of :func:`cmi_jax.evaluation.evaluate` (leading ``[S]`` when stacked).
    stacked: whether every leaf carries a leading member axis.
    interruptible: ``train_epoch`` also takes ``done`` (the epoch's steps
      already in the state) and ``stop`` (a callable polled after every
      step), as :func:`cmi_jax.epochs.host_epoch` does; the training data
      has ``steps_per_epoch``.
  """
  size: int
  train_epoch: Callable[..., tuple[Any, Any]]
  evaluate: Callable[[Any, Mapping[str, Any]], dict[str, Any]]
  stacked: bool = False
  interruptible: bool = False

  def member(self, tree: Any, i: int) -> Any:
    """Member ``i`` of a state, metrics or statistics tree."""
    return jax.tree.map(lambda a: a[i], tree) if self.stacked else tree


def fit(members: Members, state: Any, train_data: Any,
        eval_data: Mapping[str, Any], config: FitConfig, *,
        checkpoint_dir: Optional[str] = None,
        log_dirs: Sequence[str] = (),
        hooks: Optional[Sequence[Optional[EpochHook]]] = None,
        best_checkpoints: bool = False,
        name: str = 'run') -> tuple[Any, list[dict[str, Any]]]:
  """Trains ``members`` for ``config.num_epochs`` epochs (module docstring).

  Args:
    state: the initial state (when resuming it only gives the tree
      structure).
    eval_data: ``{split: data}`` as ``members.evaluate`` takes it; empty:
      the hooks still run when an evaluation is due, but no epoch is best.
    checkpoint_dir: where ``checkpoints/`` is kept (None: no checkpoints, no
      resume).
    log_dirs: one directory per member for its ``log.jsonl`` (and ``tb/``),
      or none.
    hooks: optional S epoch hooks; what one returns after an evaluation
      becomes its member's record's ``extra``.
    best_checkpoints: also checkpoint each best epoch's state (S = 1 only).
    name: what the progress log lines call this run or group.

  Returns:
    ``(state, results)``: the final state and S results dicts,
    :func:`cmi_jax.records.run_results` or ``{'epoch', 'non_finite'}``.
  """
  size = members.size
  for what, given in (('hooks', hooks), ('log_dirs', log_dirs or None)):
    if given is not None and len(given) != size:
      raise ValueError(f'{len(given)} {what} for {size} members; give one '
                       'per member.')
  if best_checkpoints and size != 1:
    raise ValueError('best_checkpoints is for a single member; a group keeps '
                     'its members\' best records only.')
  if eval_data:
    records.check_select_split(config.select_split, eval_data)
  best = [records.no_best() for _ in range(size)]
  last: list[Any] = [None] * size
  failed: dict[int, str] = {}
  start_epoch = 0
  checkpoints = (None if checkpoint_dir is None else
                 ckpt.RunCheckpoints(checkpoint_dir, config.keep_checkpoints))
  restored = None if checkpoints is None else _restore(checkpoints, state)
  done_metrics = None  # The metrics of an epoch stopped between two steps.
  if restored is not None:
    state, meta = restored
    start_epoch = meta['epoch']
    if 'mid_epoch_metrics' in meta:  # Lists of floats (None for NaN).
      done_metrics = jax.tree.map(
          lambda v: np.asarray(v, np.float64), meta['mid_epoch_metrics'],
          is_leaf=lambda v: isinstance(v, list))
    best, last = _as_list(meta['best']), meta.get('last', last)
    failed = {int(k): v for k, v in meta.get('failed', {}).items()}
    # Checkpoints newer than the resumed epoch are redone.
    for series in (ckpt.LATEST, *ckpt.BEST_SERIES):
      checkpoints.delete_after(series, start_epoch)
    _log.info('%s: resuming %d member(s) from epoch %d.', name, size,
              start_epoch)
  elif best_checkpoints:
    for series in ckpt.BEST_SERIES:  # Of an attempt that saved no latest.
      checkpoints.keep_only(series, None)
  steps = _steps(state)
  loggers = [logs.RunLogger(d, keep_until_step=int(steps[i])
                            if start_epoch else None,
                            tensorboard=config.tensorboard)
             for i, d in enumerate(log_dirs)]
  if done_metrics is not None:
    last_good = checkpoints.path(ckpt.MID_EPOCH, int(steps[0]))
  elif checkpoints is not None and start_epoch:
    last_good = checkpoints.path(ckpt.LATEST, start_epoch)
  else:
    last_good = 'none (no checkpoint yet)'
  bar = logs.progress_bar(config.num_epochs, start_epoch, config.progress)
  start = time.perf_counter()
  signals = (contextlib.nullcontext(preemption.StopRequest())
             if checkpoints is None else preemption.stop_signals())
  with signals as stop:
    try:
      for epoch in range(start_epoch + 1, config.num_epochs + 1):
        done = 0 if done_metrics is None else _num_steps(done_metrics)
        first_step = _steps(state) - done
        tic = time.perf_counter()
        if members.interruptible:
          state, step_metrics = members.train_epoch(
              state, train_data, done=done, stop=lambda: bool(stop))
        else:
          state, step_metrics = members.train_epoch(state, train_data)
        step_metrics = jax.device_get(step_metrics)  # Waits for the epoch.
        if done_metrics is not None:
          step_metrics = jax.tree.map(
              lambda old, new: np.concatenate(
                  [np.asarray(old, new.dtype), new], axis=-1),
              done_metrics, step_metrics)
          done_metrics = None
        seconds = {'train': time.perf_counter() - tic}
        steps = _steps(state)
        if (members.interruptible and stop and _num_steps(step_metrics)
            < train_data.steps_per_epoch):
          checkpoints.save(ckpt.MID_EPOCH, int(steps[0]), state, _meta(
              epoch - 1, best, last, failed, mid_epoch_metrics=step_metrics))
          raise preemption.Preempted(stop.signum, epoch - 1, int(steps[0]))
        metrics = [members.member(step_metrics, i) for i in range(size)]
        for i in range(size):
          bad = None if i in failed else records.non_finite_message(
              metrics[i], int(first_step[i]), epoch)
          if bad is not None:
            failed[i] = (f'{bad}; last good checkpoint: {last_good}. Lower '
                         'the learning rates or the disentangle weight, '
                         'then resume.')
            _log.error('%s: member %d: %s', name, i, failed[i])
        if len(failed) == size:
          break
        epoch_records = [{**records.train_record(epoch, int(steps[i]),
                                                 metrics[i]),
                          'seconds': seconds} for i in range(size)]
        if epoch == config.num_epochs or (
            config.eval_every and epoch % config.eval_every == 0):
          _evaluate(members, state, eval_data, config, epoch, epoch_records,
                    [None if i in failed else hook
                     for i, hook in enumerate(hooks or [None] * size)],
                    seconds)
        for i, record in enumerate(epoch_records):
          if i in failed:
            continue
          last[i] = record
          if eval_data and 'eval' in record:
            for series in records.update_best(best[i], record,
                                              config.select_split):
              if best_checkpoints:
                checkpoints.save(series, epoch, state, {'epoch': epoch})
          if loggers:
            _log_steps(loggers[i], metrics[i], int(first_step[i]),
                       config.log_every_steps)
            loggers[i].write(record)
        if checkpoints is not None and (epoch % config.checkpoint_every == 0
                                        or epoch == config.num_epochs or stop):
          last_good = checkpoints.save(ckpt.LATEST, epoch, state,
                                       _meta(epoch, best, last, failed))
          checkpoints.keep_only(ckpt.MID_EPOCH, None)  # Now older than it.
          if best_checkpoints:
            # Only now, so a crash before this save resumes with its recorded
            # best checkpoints still on disk.
            for key, series, _ in records.BEST_CRITERIA:
              checkpoints.keep_only(series, None if best[0][key] is None
                                    else best[0][key]['epoch'])
        bar.set_postfix(_postfix([r for i, r in enumerate(epoch_records)
                                  if i not in failed]), refresh=False)
        bar.update(1)
        if epoch == config.num_epochs or epoch % max(
            1, config.num_epochs // 10) == 0:
          _log.info('%s: epoch %d/%d (%.0f s).', name, epoch,
                    config.num_epochs, time.perf_counter() - start)
        if stop and epoch < config.num_epochs:
          raise preemption.Preempted(stop.signum, epoch)
    finally:
      bar.close()
      for logger in loggers:
        logger.close()
      if checkpoints is not None:
        checkpoints.close()
  return state, [
      {'epoch': config.num_epochs, 'non_finite': failed[i]} if i in failed else
      records.run_results(last[i], best[i], config.num_epochs,
                          last[i]['step'])
      for i in range(size)]


def _restore(checkpoints: ckpt.RunCheckpoints, state: Any
             ) -> Optional[tuple[Any, dict[str, Any]]]:
  """``(state, meta)`` of the newest readable ``latest`` or ``mid_epoch``.

  A ``mid_epoch`` checkpoint is newer than every ``latest`` up to its
  ``meta['epoch']``, the epochs it completed.
  """
  latest = checkpoints.restore_newest_readable(ckpt.LATEST, state,
                                               _log.warning)
  mid = checkpoints.restore_newest_readable(ckpt.MID_EPOCH, state,
                                            _log.warning)
  if mid is not None and (latest is None
                          or mid[1]['epoch'] >= latest[1]['epoch']):
    return mid
  return latest


def _meta(epoch: int, best: list[Any], last: list[Any],
          failed: Mapping[int, str], **more: Any) -> dict[str, Any]:
  """A checkpoint's meta: completed epochs, records, stopped members."""
  return logs.to_jsonable({
      'epoch': epoch, 'best': best, 'last': last,
      'failed': {str(k): v for k, v in failed.items()}, **more})


def _num_steps(step_metrics: Any) -> int:
  """The number of steps of ``[steps]`` or ``[S, steps]`` metrics."""
  return np.shape(jax.tree.leaves(step_metrics)[0])[-1]


def _as_list(best: Any) -> list[Any]:
  # A single run's checkpoints before the one loop held one dict.
  return [best] if isinstance(best, Mapping) else list(best)


def _steps(state: Any) -> np.ndarray:
  """Every member's step count, int ``[S]``."""
  return np.atleast_1d(np.asarray(jax.device_get(state.step)))


def _evaluate(members: Members, state: Any, eval_data: Mapping[str, Any],
              config: FitConfig, epoch: int, epoch_records: list[dict],
              hooks: Sequence[Optional[EpochHook]],
              seconds: dict[str, float]) -> None:
  """Adds every member's evaluation (and hook output) to its record."""
  tic = time.perf_counter()
  stats = members.evaluate(state, eval_data)
  # Split by split: a tree map over the dict would sort the splits.
  member_stats = [{split: members.member(s, i) for split, s in stats.items()}
                  for i in range(members.size)]
  for record, own in zip(epoch_records, member_stats):
    record['eval'] = records.summarize_splits(own, config.group_weights_split)
  seconds['eval'] = time.perf_counter() - tic
  if any(hook is not None for hook in hooks):
    tic = time.perf_counter()
    for i, hook in enumerate(hooks):
      if hook is not None:
        epoch_records[i]['extra'] = hook(epoch, members.member(state, i),
                                         member_stats[i])
    seconds['hook'] = time.perf_counter() - tic


def _log_steps(logger: logs.RunLogger, step_metrics: dict[str, np.ndarray],
               first_step: int, every: int) -> None:
  if not every:
    return
  for i in range(len(next(iter(step_metrics.values())))):
    step = first_step + i + 1
    if step % every == 0:
      logger.write({'step': step, 'train_step': {
          k: float(v[i]) for k, v in step_metrics.items()}})


def _postfix(member_records: Sequence[dict[str, Any]]) -> dict[str, str]:
  """The progress bar's numbers: means over the members still training."""
  if not member_records:
    return {}
  mean = lambda get: float(np.mean([get(r) for r in member_records]))
  postfix = {'ce': f"{mean(lambda r: r['train']['loss/ce']):.3f}"}
  if 'loss/adversary' in member_records[0]['train']:
    postfix['adv'] = f"{mean(lambda r: r['train']['loss/adversary']):.3f}"
  for split in member_records[0].get('eval', {}):
    postfix[split] = f"{mean(lambda r: r['eval'][split]['accuracy']):.3f}"
  return postfix
