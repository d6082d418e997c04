r"""The table of docs/kernel_comparison.sh: each kernel objective at its lambda.

  python docs/kernel_comparison_table.py OUT_DIR

Reads ``OUT_DIR/<objective>/lambda<l>/**/results.json`` (one per seed). For
each objective, ``lambda`` is chosen by the mean over seeds of the
**validation worst-group accuracy** at the final epoch (plain validation
accuracy at c = 0.9 rewards the shortcut, so it would pick the smallest
``lambda``). Prints the whole grid and the chosen rows: mean and 95%
interval (Student t over seeds) of validation, anti-correlated,
uncorrelated and worst-group (uncorrelated test) accuracy, at the final
epoch and at the epoch of best validation worst-group accuracy. Writes
``OUT_DIR/table.md`` and ``OUT_DIR/table.json``.
"""

from __future__ import annotations

import json
import os
import re
import sys

import numpy as np
import scipy.stats

OBJECTIVES = ('hsic_cmi', 'hscic', 'circe')
SELECTIONS = (('final', 'final epoch'),
              ('best_val_worst_group', 'best val. worst-group'))
COLUMNS = (('val', 'accuracy'), ('val', 'worst_group_accuracy'),
           ('test_anti', 'accuracy'), ('test_uncorr', 'accuracy'),
           ('test_uncorr', 'worst_group_accuracy'))
HEADER = ('| objective | lambda | selection | seeds | val | val worst group | '
          'anti-correlated test | uncorrelated test | '
          'worst group (uncorrelated test) |')


def load(objective_dir: str) -> dict[float, list[dict]]:
  """``{lambda: [results of each seed]}`` under ``objective_dir``."""
  runs: dict[float, list[dict]] = {}
  for root, _, files in sorted(os.walk(objective_dir)):
    match = re.search(r'lambda([0-9.e+-]+)', root)
    if 'results.json' in files and '_groups' not in root and match:
      with open(os.path.join(root, 'results.json')) as f:
        runs.setdefault(float(match.group(1)), []).append(json.load(f))
  return runs


def summary(runs: list[dict], key: str) -> dict:
  values = np.array([[r[key]['eval'][split][metric] for split, metric
                      in COLUMNS] for r in runs if r.get(key)])
  n = len(values)
  half = (scipy.stats.t.ppf(0.975, n - 1) * values.std(0, ddof=1) / np.sqrt(n)
          if n > 1 else np.zeros(len(COLUMNS)))
  return {'seeds': n, 'mean': values.mean(0).tolist(),
          'half_width_95': half.tolist()}


def main(out: str) -> None:
  grid, chosen = [], {}
  for objective in OBJECTIVES:
    runs = load(os.path.join(out, objective))
    for lam in sorted(runs):
      for key, label in SELECTIONS:
        grid.append({'objective': objective, 'lambda': lam,
                     'selection': label, **summary(runs[lam], key)})
    finals = [row for row in grid if row['objective'] == objective
              and row['selection'] == 'final epoch']
    if finals:  # the best mean validation worst-group accuracy
      chosen[objective] = max(finals, key=lambda r: r['mean'][1])['lambda']

  def line(row):
    cells = [f'{m:.3f} ± {h:.3f}' for m, h in
             zip(row['mean'], row['half_width_95'])]
    return (f"| {row['objective']} | {row['lambda']:g} | {row['selection']} | "
            f"{row['seeds']} | " + ' | '.join(cells) + ' |')
  rows = [row for row in grid if chosen.get(row['objective']) == row['lambda']]
  text = '\n'.join(
      ['Chosen lambda (best mean validation worst-group accuracy):', '',
       HEADER, '|' + '---|' * 9] + [line(r) for r in rows]
      + ['', 'The whole grid:', '', HEADER, '|' + '---|' * 9]
      + [line(r) for r in grid]) + '\n'
  print(text, end='')
  with open(os.path.join(out, 'table.md'), 'w') as f:
    f.write(text)
  with open(os.path.join(out, 'table.json'), 'w') as f:
    json.dump({'chosen_lambda': chosen, 'grid': grid}, f, indent=1)


if __name__ == '__main__':
  if len(sys.argv) != 2:
    sys.exit('usage: python docs/kernel_comparison_table.py OUT_DIR')
  main(sys.argv[1])
