r"""The paper's multi-digit figure and table from a sweep directory.

  python -m experiments.plot_multi_digit --sweep_dir=/tmp/md_sweep \
      [--select=final|best_val_loss|best_val_accuracy|best_val_worst_group
       --out_dir=DIR]

Writes ``figure.png`` (accuracy on the anti-correlated and on the
uncorrelated test set against noise; one panel per training correlation, one
line per objective, mean and standard deviation over seeds), ``table.csv``
and ``table.md`` into ``out_dir`` (default: the sweep directory).
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Sequence

import numpy as np

from cmi_jax import logs
from cmi_jax import plots
from experiments import sweeps

METRICS = ('test_anti/accuracy', 'test_uncorr/accuracy', 'val/accuracy',
           'test_uncorr/worst_group_accuracy')
STYLES = {'base': ('#1f77b4', 'Base'), 'mi': ('#ff7f0e', 'Base+MI'),
          'cmi': ('#2ca02c', 'Base+CMI'), 'mmd_mi': ('#9467bd', 'MMD MI'),
          'mmd_cmi': ('#8c564b', 'MMD CMI')}


def draw_figure(table: Sequence[dict[str, Any]], path: str) -> str:
  """Accuracy vs noise; rows: test split, columns: training correlation."""
  corrs = sorted({r['train_corr'] for r in table})
  objectives = sorted({r['objective'] for r in table},
                      key=lambda o: list(STYLES).index(o) if o in STYLES else 9)
  splits = (('test_anti/accuracy', 'anti-correlated test'),
            ('test_uncorr/accuracy', 'uncorrelated test'))
  fig = plots.new_figure(3.6 * len(corrs), 6.4)
  for row, (metric, title) in enumerate(splits):
    for col, corr in enumerate(corrs):
      ax = fig.add_subplot(len(splits), len(corrs),
                           row * len(corrs) + col + 1)
      for objective in objectives:
        points = sorted((r for r in table if r['objective'] == objective
                         and r['train_corr'] == corr),
                        key=lambda r: r['noise'])
        noise = np.array([p['noise'] for p in points])
        mean = np.array([p[f'{metric}/mean'] for p in points])
        std = np.array([p[f'{metric}/std'] for p in points])
        color, label = STYLES.get(objective, (None, objective))
        ax.plot(noise, mean, marker='o', color=color, label=label)
        ax.fill_between(noise, mean - std, mean + std, color=color,
                        alpha=0.2)
      ax.set_title(f'{title}, train corr {corr:g}', fontsize=9)
      ax.set_xlabel('occlusion noise')
      ax.set_ylabel('accuracy')
      ax.grid(alpha=0.3)
      if row == 0 and col == 0:
        ax.legend(fontsize=8)
  fig.suptitle('Correlated multi-digit MNIST (mean ± std over seeds)')
  fig.tight_layout()
  return plots.save_figure(fig, path)


def table_text(table: Sequence[dict[str, Any]]) -> tuple[str, str]:
  """``(csv, markdown)`` renderings of the aggregated table."""
  header = ['objective', 'train_corr', 'noise', 'num_seeds'] + [
      f'{m}/{s}' for m in METRICS for s in ('mean', 'std')]
  out = io.StringIO()
  writer = csv.DictWriter(out, header, extrasaction='ignore')
  writer.writeheader()
  writer.writerows(table)
  lines = ['| objective | train corr | noise | seeds | anti-correlated test '
           '| uncorrelated test | val | worst group (uncorrelated test) |',
           '|---|---|---|---|---|---|---|---|']
  for r in table:
    cells = ['–' if np.isnan(r[f'{m}/mean']) else
             f"{r[f'{m}/mean']:.3f} ± {r[f'{m}/std']:.3f}" for m in METRICS]
    lines.append(f"| {r['objective']} | {r['train_corr']:g} | "
                 f"{r['noise']:g} | {r['num_seeds']} | " + ' | '.join(cells)
                 + ' |')
  return out.getvalue(), '\n'.join(lines) + '\n'


def make_report(sweep_dir: str, out_dir: str | None = None,
                select: str = 'final') -> dict[str, str]:
  """Writes the figure and tables; returns their paths."""
  out_dir = out_dir or sweep_dir
  os.makedirs(out_dir, exist_ok=True)
  table = sweeps.aggregate(sweeps.collect(sweep_dir, select), METRICS)
  csv_text, markdown = table_text(table)
  paths = {'figure': draw_figure(table, os.path.join(out_dir, 'figure.png'))}
  for name, text in (('table.csv', csv_text), ('table.md', markdown)):
    paths[name] = logs.write_text_atomic(os.path.join(out_dir, name), text)
  return paths


def main() -> None:
  """Command line: ``--sweep_dir``, ``--out_dir``, ``--select``."""
  sweeps.report_main(make_report)


if __name__ == '__main__':
  main()
