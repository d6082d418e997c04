"""Orbax checkpoints of a run: the latest and the best by validation metrics.

Layout under ``workdir/checkpoints``: ``<series>/<epoch>`` for the series
``latest``, ``best_val_loss``, ``best_val_accuracy`` and
``best_val_worst_group``, each holding the :class:`TrainState` and a JSON
``meta`` record (epoch, metrics, best-so-far values). Saves are atomic; the
temporary directories of a killed save are removed when the series is next
opened.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from typing import Any, Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from cmi_jax import validate

LATEST = 'latest'
BEST_LOSS = 'best_val_loss'
BEST_ACCURACY = 'best_val_accuracy'
BEST_WORST_GROUP = 'best_val_worst_group'
BEST_SERIES = (BEST_LOSS, BEST_ACCURACY, BEST_WORST_GROUP)
# A run stopped between two steps of an epoch (its index is the step count).
MID_EPOCH = 'mid_epoch'


def _present_fields(state: Any) -> dict[str, Any]:
  """The state's fields but the unused (None) ones, as a dict."""
  return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
          if getattr(state, f.name) is not None}


def saved_series(workdir: str) -> tuple[str, ...]:
  """The series under ``workdir/checkpoints`` holding a saved checkpoint.

  Reads the directories only: no orbax manager is opened (one would create
  them).
  """
  root = os.path.join(workdir, 'checkpoints')
  return tuple(series for series in (LATEST, *BEST_SERIES, MID_EPOCH)
               if os.path.isdir(os.path.join(root, series)) and any(
                   name.isdigit()
                   for name in os.listdir(os.path.join(root, series))))


class UnreadableCheckpointError(RuntimeError):
  """Every checkpoint of a series exists but none can be read."""


class RunCheckpoints:
  """The checkpoint series of one work directory.

  Args:
    workdir: the run's directory.
    keep: how many ``latest`` checkpoints to keep; the best series keep all
      until :meth:`keep_only` prunes them.
  """

  def __init__(self, workdir: str, keep: int = 2):
    validate.integer(keep, 'keep', 1)
    self.root = os.path.join(os.path.abspath(workdir), 'checkpoints')
    self._managers = {
        name: ocp.CheckpointManager(
            os.path.join(self.root, name),
            options=ocp.CheckpointManagerOptions(
                max_to_keep={LATEST: keep, MID_EPOCH: 1}.get(name),
                # A run that is never stopped inside an epoch has no
                # mid_epoch directory.
                create=name != MID_EPOCH, cleanup_tmp_directories=True))
        for name in (LATEST, MID_EPOCH) + BEST_SERIES}

  def save(self, series: str, epoch: int, state: Any,
           meta: dict[str, Any]) -> str:
    """Saves ``state`` and ``meta`` as ``series/epoch``; returns its path.

    Raises:
      OSError: ``ENOSPC`` before writing when the disk cannot hold it (orbax
        would fail in its writer threads).
    """
    self._check_free_space(state)
    manager = self._managers[series]
    manager.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_present_fields(state)),
        meta=ocp.args.JsonSave(meta)), force=True)
    manager.wait_until_finished()
    return self.path(series, epoch)

  def _check_free_space(self, state: Any) -> None:
    # The arrays, a temporary copy's worth of headroom and 1 MiB of metadata.
    needed = 2 * sum(int(np.prod(x.shape)) * x.dtype.itemsize
                     for x in jax.tree.leaves(state)) + (1 << 20)
    free = shutil.disk_usage(self.root).free
    if free < needed:
      raise OSError(errno.ENOSPC,
                    f'No space left on device: {free} bytes free in '
                    f'{self.root}, a checkpoint needs about {needed}')

  def path(self, series: str, epoch: int) -> str:
    """The directory of checkpoint ``series/epoch`` (saved or not)."""
    return os.path.join(self.root, series, str(epoch))

  def latest_epoch(self, series: str = LATEST) -> Optional[int]:
    """The newest saved epoch of ``series``, or None if it has none."""
    return self._managers[series].latest_step()

  def restore(self, series: str, like_state: Any,
              epoch: Optional[int] = None) -> tuple[Any, dict[str, Any]]:
    """Restores ``(state, meta)``; ``like_state`` gives the tree structure.

    Raises:
      FileNotFoundError: if the series has no checkpoint.
    """
    manager = self._managers[series]
    epoch = manager.latest_step() if epoch is None else epoch
    if epoch is None:
      raise FileNotFoundError(f'no checkpoint in {self.root}/{series}.')
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            _present_fields(like_state))
    restored = manager.restore(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        meta=ocp.args.JsonRestore()))
    return like_state.replace(**restored.state), restored.meta

  def epochs(self, series: str = LATEST) -> list[int]:
    """Every saved epoch of ``series``, oldest first."""
    return sorted(self._managers[series].all_steps())

  def restore_newest_readable(
      self, series: str, like_state: Any,
      warn: Callable[[str], None]) -> Optional[tuple[Any, dict[str, Any]]]:
    """``(state, meta)`` of the newest checkpoint of ``series`` that reads.

    None if the series is empty; unreadable ones are reported through ``warn``.

    Raises:
      UnreadableCheckpointError: if it holds checkpoints and none reads.
    """
    failures = []
    for epoch in reversed(self.epochs(series)):
      try:
        return self.restore(series, like_state, epoch)
      except Exception as e:  # pylint: disable=broad-except
        # Orbax and TensorStore raise many types for damaged files.
        path = self.path(series, epoch)
        summary = str(e).strip().splitlines()[0][:200] if str(e) else type(
            e).__name__
        warn(f'checkpoint {path} cannot be read ({summary}); falling back '
             'to the previous one.')
        failures.append(path)
    if failures:
      raise UnreadableCheckpointError(
          f'none of the checkpoints in {os.path.join(self.root, series)} can '
          f'be read ({", ".join(failures)}). To start the run over, delete '
          f'{self.root} (or pass another workdir).')
    return None

  def delete_after(self, series: str, epoch: int) -> None:
    """Deletes the checkpoints of ``series`` saved after ``epoch``."""
    manager = self._managers[series]
    for step in manager.all_steps():
      if step > epoch:
        manager.delete(step)

  def keep_only(self, series: str, epoch: Optional[int]) -> None:
    """Deletes every checkpoint of ``series`` but ``epoch`` (all if None)."""
    manager = self._managers[series]
    for step in manager.all_steps():
      if step != epoch:
        manager.delete(step)

  def close(self) -> None:
    """Waits for pending saves and releases the checkpoint managers."""
    for manager in self._managers.values():
      manager.close()
