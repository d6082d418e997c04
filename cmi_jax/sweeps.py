"""Sweep bookkeeping: grids of cells, their directories, and collected results.

A sweep is the product of a few config fields (objective, train correlation,
noise, seed); each *cell* is one run with its own work directory, so a sweep
restarted after an interruption skips every cell that already has its
``results.json`` and resumes the one that was running.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

RESULTS = 'results.json'


@dataclasses.dataclass(frozen=True)
class Cell:
  """One configuration of a sweep."""
  objective: str
  train_corr: float
  noise: float
  seed: int

  @property
  def name(self) -> str:
    """Relative work directory, e.g. ``cmi/corr0.9_noise0.8/seed0``."""
    return os.path.join(self.objective,
                        f'corr{self.train_corr:g}_noise{self.noise:g}',
                        f'seed{self.seed}')

  def overrides(self) -> dict[str, Any]:
    """The config fields this cell sets."""
    return {'objective': self.objective, 'train_corr': self.train_corr,
            'noise': self.noise, 'seed': self.seed}


def grid(objectives: Sequence[str], train_corrs: Sequence[float],
         noises: Sequence[float], seeds: Sequence[int]) -> list[Cell]:
  """Every combination, objectives outermost (cells that share shapes adjoin)."""
  for name, values in (('objectives', objectives), ('train_corrs', train_corrs),
                       ('noises', noises), ('seeds', seeds)):
    if not len(values):
      raise ValueError(f'the sweep needs at least one value of {name}.')
  return [Cell(o, float(c), float(n), int(s))
          for o, c, n, s in itertools.product(objectives, train_corrs, noises,
                                              seeds)]


def is_done(sweep_dir: str, cell: Cell) -> bool:
  """Whether the cell's run finished (its ``results.json`` exists)."""
  return os.path.exists(os.path.join(sweep_dir, cell.name, RESULTS))


def collect(sweep_dir: str, select: str = 'final') -> list[dict[str, Any]]:
  """One row per finished cell: its fields and the accuracies of ``select``.

  Args:
    sweep_dir: the sweep's directory.
    select: which epoch record of each run: 'final', 'best_val_loss' or
      'best_val_accuracy'.

  Returns:
    Rows with objective, train_corr, noise, seed and ``<split>/accuracy`` /
    ``<split>/loss`` for every evaluation split, sorted by cell.
  """
  if select not in ('final', 'best_val_loss', 'best_val_accuracy'):
    raise ValueError(f'select {select!r} is unknown; choose final, '
                     'best_val_loss or best_val_accuracy.')
  if not os.path.isdir(sweep_dir):
    raise ValueError(f'sweep directory {sweep_dir} does not exist; run the '
                     'sweep first or pass the directory it wrote.')
  rows = []
  for root, _, files in os.walk(sweep_dir):
    if RESULTS not in files:
      continue
    with open(os.path.join(root, RESULTS)) as f:
      results = json.load(f)
    with open(os.path.join(root, 'config.json')) as f:
      config = json.load(f)['config']
    if select not in results:
      raise ValueError(
          f'{root} has no {select!r} record (a vmapped sweep keeps the final '
          "epoch only); use select='final'.")
    record = results[select]
    row = {'objective': config['objective'],
           'train_corr': config['train_corr'], 'noise': config['noise'],
           'seed': config['seed'], 'epoch': record['epoch'],
           'source': results.get('data', {}).get('source')}
    for split, summary in record['eval'].items():
      row[f'{split}/accuracy'] = summary['accuracy']
      row[f'{split}/loss'] = summary['loss']
    rows.append(row)
  if not rows:
    raise ValueError(f'no finished run (no {RESULTS}) under {sweep_dir}.')
  return sorted(rows, key=lambda r: (r['objective'], r['train_corr'],
                                     r['noise'], r['seed']))


def aggregate(rows: Iterable[Mapping[str, Any]], metrics: Sequence[str]
              ) -> list[dict[str, Any]]:
  """Mean, standard deviation and count over seeds of each (objective, corr, noise)."""
  groups: dict[tuple, list[Mapping[str, Any]]] = {}
  for row in rows:
    groups.setdefault((row['objective'], row['train_corr'], row['noise']),
                      []).append(row)
  out = []
  for (objective, corr, noise), members in sorted(groups.items()):
    entry = {'objective': objective, 'train_corr': corr, 'noise': noise,
             'num_seeds': len(members)}
    for metric in metrics:
      values = np.array([m[metric] for m in members], np.float64)
      entry[f'{metric}/mean'] = float(values.mean())
      entry[f'{metric}/std'] = float(values.std(ddof=1)) if len(values) > 1 \
          else 0.0
    out.append(entry)
  return out
