r"""The table of docs/group_robustness.sh: every variant, two selections.

  python docs/group_robustness_table.py OUT_DIR

Reads ``OUT_DIR/<variant>/**/results.json`` (one per seed) and prints, per
variant and selection (the final epoch; the epoch of best validation
worst-group accuracy), mean +- std over seeds of: validation accuracy, the
anti-correlated and the uncorrelated test accuracy, and the worst-group
accuracy on the uncorrelated (balanced) test split. Also writes
``OUT_DIR/table.md`` and ``OUT_DIR/table.json``.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

VARIANTS = ('base', 'base_reweight', 'base_subsample', 'base_subsample_4000',
            'base_groupdro', 'mi', 'cmi', 'cmi_reweight', 'base_at_cmi_lr',
            'cmi_lambda0')
SELECTIONS = (('final', 'final epoch'),
              ('best_val_worst_group', 'best val. worst-group'))
COLUMNS = (('val', 'accuracy'), ('test_anti', 'accuracy'),
           ('test_uncorr', 'accuracy'), ('test_uncorr', 'worst_group_accuracy'))


def load(variant_dir: str) -> list[dict]:
  found = []
  for root, _, files in sorted(os.walk(variant_dir)):
    if 'results.json' in files and '_groups' not in root:
      with open(os.path.join(root, 'results.json')) as f:
        found.append(json.load(f))
  return found


def main(out: str) -> None:
  rows = []
  for variant in VARIANTS:
    runs = load(os.path.join(out, variant))
    if not runs:
      continue
    for key, label in SELECTIONS:
      values = np.array([[r[key]['eval'][split][metric] for split, metric
                          in COLUMNS] for r in runs if r.get(key)])
      if not len(values):
        continue
      rows.append({'variant': variant, 'selection': label,
                   'seeds': len(values),
                   'epochs': [r[key]['epoch'] for r in runs if r.get(key)],
                   'mean': values.mean(0).tolist(),
                   'std': values.std(0, ddof=1).tolist()
                   if len(values) > 1 else [0.0] * len(COLUMNS)})
  lines = ['| variant | selection | seeds | val | anti-correlated test | '
           'uncorrelated test | worst group (uncorrelated test) |',
           '|---|---|---|---|---|---|---|']
  for row in rows:
    cells = [f'{m:.3f} ± {s:.3f}' for m, s in zip(row['mean'], row['std'])]
    lines.append(f"| {row['variant']} | {row['selection']} | {row['seeds']} | "
                 + ' | '.join(cells) + ' |')
  text = '\n'.join(lines) + '\n'
  with open(os.path.join(out, 'table.md'), 'w') as f:
    f.write(text)
  with open(os.path.join(out, 'table.json'), 'w') as f:
    json.dump(rows, f, indent=1)
  print(text)
  for row in rows:
    print(row['variant'], row['selection'], 'epochs', row['epochs'])


if __name__ == '__main__':
  if len(sys.argv) != 2:
    sys.exit('usage: python docs/group_robustness_table.py OUT_DIR')
  main(sys.argv[1])
