"""What a run records: its epoch records, its best epochs and its two files.

The epoch loop (:func:`cmi_jax.loop.fit`) builds every member's records
here, so a sweep member's ``results.json`` has the shape of a separate
run's, and both are written with :func:`write_results`.

An epoch record is ``{'epoch', 'step', 'train': {metric: mean over the
epoch's steps}, 'eval': {split: summary}, 'extra': hook output,
'seconds': ...}`` (``eval`` and ``extra`` only on evaluated epochs).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional

import numpy as np

from cmi_jax import checkpoint as ckpt
from cmi_jax import evaluation
from cmi_jax import logs

CONFIG_FILE = 'config.json'
RESULTS_FILE = 'results.json'

# (epoch, state, {split: raw evaluation stats}) -> extra metrics for the log.
EpochHook = Callable[[int, Any, dict[str, dict[str, np.ndarray]]],
                     dict[str, Any]]

# (key in the latest checkpoint's meta, checkpoint series and results key,
# (summary metric, +1 to maximise / -1 to minimise)) of the best epochs.
BEST_CRITERIA = (
    ('loss', ckpt.BEST_LOSS, ('loss', -1)),
    ('accuracy', ckpt.BEST_ACCURACY, ('accuracy', 1)),
    ('worst_group', ckpt.BEST_WORST_GROUP, ('worst_group_accuracy', 1)),
)


def no_best() -> dict[str, None]:
  """The best-epoch records before any evaluation, one per criterion."""
  return {name: None for name, _, _ in BEST_CRITERIA}


def check_select_split(split: str, eval_data: Mapping[str, Any]) -> None:
  """Raises ValueError unless ``split`` is one of the evaluated splits."""
  if split not in eval_data:
    raise ValueError(f'select_split {split!r} is not an evaluation split; '
                     f'the splits are {sorted(eval_data)}.')


def first_non_finite(step_metrics: Mapping[str, np.ndarray]
                     ) -> Optional[tuple[int, list[str]]]:
  """``(index, names)`` of the first step with a non-finite metric, or None."""
  names = sorted(step_metrics)
  bad = np.stack([~np.isfinite(np.asarray(step_metrics[n], np.float64))
                  for n in names], 1)  # [steps, metrics]
  rows = np.flatnonzero(bad.any(1))
  if not len(rows):
    return None
  return int(rows[0]), [n for n, b in zip(names, bad[rows[0]]) if b]


def non_finite_message(step_metrics: Mapping[str, np.ndarray],
                       first_step: int, epoch: int) -> Optional[str]:
  """What went non-finite where, or None; steps numbered as in log.jsonl.

  ``step_metrics``: ``{name: [steps]}`` of the epoch that began after step
  ``first_step``.
  """
  if (bad := first_non_finite(step_metrics)) is None:
    return None
  return (f'non-finite {", ".join(bad[1])} at step '
          f'{first_step + bad[0] + 1} (epoch {epoch})')


def train_record(epoch: int, step: int,
                 step_metrics: Mapping[str, np.ndarray]) -> dict[str, Any]:
  """An epoch record without evaluation: the epoch's mean of every metric."""
  return {'epoch': epoch, 'step': step,
          'train': {k: float(np.mean(v)) for k, v in step_metrics.items()}}


def summarize_splits(stats: Mapping[str, Any], weights_split: str
                     ) -> dict[str, Any]:
  """Each split's :func:`cmi_jax.evaluation.summarize`, weighted by the group
  counts of ``weights_split`` (when it is one of the splits)."""
  weights = stats.get(weights_split, {}).get('combo_count')
  return {name: evaluation.summarize(s, weights) for name, s in stats.items()}


def improved_criteria(best: Mapping[str, Any], record: Mapping[str, Any],
                      split: str) -> list[tuple[str, str]]:
  """``(key, series)`` of the :data:`BEST_CRITERIA` that ``record`` improves.

  A NaN or missing metric (e.g. no group of the split has examples) never
  counts as an improvement.
  """
  summary = record['eval'][split]
  improved = []
  for name, series, (metric, sign) in BEST_CRITERIA:
    value = summary.get(metric)
    if value is None or not np.isfinite(value):
      continue
    held = best[name]
    if held is None or sign * value > sign * held['eval'][split][metric]:
      improved.append((name, series))
  return improved


def update_best(best: dict[str, Any], record: Mapping[str, Any],
                split: str) -> list[str]:
  """Stores ``record`` where it improves ``best``; returns those series."""
  improved = improved_criteria(best, record, split)
  for name, _ in improved:
    best[name] = logs.to_jsonable(record)
  return [series for _, series in improved]


def run_results(final: Any, best: Mapping[str, Any], num_epochs: int,
                step: int) -> dict[str, Any]:
  """The entries of ``results.json``: the final and best-epoch records."""
  return {'final': final,
          **{series: best[name] for name, series, _ in BEST_CRITERIA},
          'num_epochs': num_epochs, 'step': step}


def write_config(workdir: str, run_config: Mapping[str, Any]) -> None:
  """Writes ``workdir/config.json`` atomically."""
  logs.write_json_atomic(os.path.join(workdir, CONFIG_FILE), run_config)


def write_results(workdir: str, results: Mapping[str, Any]) -> None:
  """Writes ``workdir/results.json`` atomically: the mark of a finished run."""
  logs.write_json_atomic(os.path.join(workdir, RESULTS_FILE), results)
