"""Orbax checkpoints of a run: the latest few, the best by validation loss and accuracy.

Layout under ``workdir/checkpoints``: ``latest/<epoch>``, ``best_val_loss/<epoch>``
and ``best_val_accuracy/<epoch>``, each holding the :class:`TrainState` and a
JSON ``meta`` record (epoch, metrics, best-so-far values). Orbax writes every
checkpoint to a temporary directory and renames it when complete, so a crash
never leaves a half-written checkpoint that a resume could pick up.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

LATEST = 'latest'
BEST_LOSS = 'best_val_loss'
BEST_ACCURACY = 'best_val_accuracy'


class RunCheckpoints:
  """The three checkpoint series of one work directory.

  Args:
    workdir: the run's directory; checkpoints go to ``workdir/checkpoints``.
    keep: how many ``latest`` checkpoints to keep. The best series keep what
      is saved until :meth:`keep_only` prunes them (a run keeps one each).
  """

  def __init__(self, workdir: str, keep: int = 2):
    if keep < 1:
      raise ValueError(f'keep must be >= 1 checkpoint; got {keep}.')
    self.root = os.path.join(os.path.abspath(workdir), 'checkpoints')
    self._managers = {
        name: ocp.CheckpointManager(
            os.path.join(self.root, name),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep if name == LATEST else None, create=True))
        for name in (LATEST, BEST_LOSS, BEST_ACCURACY)}

  def save(self, series: str, epoch: int, state: Any,
           meta: dict[str, Any]) -> str:
    """Saves ``state`` and ``meta`` as ``series/epoch``; returns its path."""
    manager = self._managers[series]
    manager.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                 force=True)
    manager.wait_until_finished()
    return self.path(series, epoch)

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
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
    restored = manager.restore(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        meta=ocp.args.JsonRestore()))
    return restored.state, restored.meta

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
