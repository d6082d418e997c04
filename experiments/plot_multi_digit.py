r"""The paper's multi-digit figure and table from a sweep directory.

  python -m experiments.plot_multi_digit --sweep_dir=/tmp/md_sweep \
      [--select=final|best_val_loss|best_val_accuracy|best_val_worst_group
       --out_dir=DIR]

Writes ``figure.png`` (:func:`draw_figure`), ``table.csv`` and ``table.md``
into ``out_dir`` (default: the sweep directory).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from cmi_jax import plots
from experiments import common
from experiments import figures
from experiments import sweeps

METRICS = ('test_anti/accuracy', 'test_uncorr/accuracy', 'val/accuracy',
           'test_uncorr/worst_group_accuracy', 'train_eval/accuracy')
# The titles of the METRICS columns in the Markdown table.
TITLES = ('anti-correlated test', 'uncorrelated test', 'val',
          'worst group (uncorrelated test)', 'train')
# The curves of every panel: (metric, label, colour).
CURVES = (('train_eval/accuracy', 'train', '#7f7f7f'),
          ('test_anti/accuracy', 'anti-correlated test', '#d62728'),
          ('test_uncorr/accuracy', 'uncorrelated test', '#1f77b4'))
REFERENCE = ('base', 0.0, 'test_uncorr/accuracy')


def data_title(rows: Sequence[dict[str, Any]]) -> str:
  """What the sweep trained on, e.g. 'Fashion-MNIST, T-shirt/top vs Trouser'."""
  datasets = {r.get('dataset') for r in rows} - {None}
  names = {tuple(r['class_names']) for r in rows if r.get('class_names')}
  dataset = {'mnist': 'MNIST', 'fashion_mnist': 'Fashion-MNIST'}.get(
      next(iter(datasets)), next(iter(datasets))) if len(datasets) == 1 else (
          'multi-digit data')
  classes = f", {' vs '.join(next(iter(names)))}" if len(names) == 1 else ''
  return f'Correlated two-item {dataset}{classes}'


def curve(rows: Sequence[dict[str, Any]], x_key: str, metric: str
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(x, mean, std)`` of ``metric`` over aggregated rows, sorted by x."""
  rows = sorted(rows, key=lambda r: r[x_key])
  return tuple(np.array([r[k] for r in rows], np.float64)
               for k in (x_key, f'{metric}/mean', f'{metric}/std'))


def _points(table, objective, corr, metric):
  return curve([r for r in table if r['objective'] == objective
                and r['train_corr'] == corr], 'noise', metric)


def draw_figure(table: Sequence[dict[str, Any]], path: str,
                title: str = 'Correlated two-item digits') -> str:
  """The paper's grid: rows training correlation, columns objective.

  Each panel: accuracy on :data:`CURVES` against the occlusion noise (mean
  ± std over seeds) and the :data:`REFERENCE` line.
  """
  corrs = sorted({r['train_corr'] for r in table})
  objectives = figures.objective_order(r['objective'] for r in table)
  reference = _points(table, *REFERENCE)
  fig = plots.new_figure(3.4 * len(objectives) + 0.4, 2.8 * len(corrs) + 0.8)
  axes = fig.subplots(len(corrs), len(objectives), sharex=True, sharey=True,
                      squeeze=False)
  for row, corr in enumerate(corrs):
    for col, objective in enumerate(objectives):
      ax = axes[row, col]
      drawn = False
      for metric, label, color in CURVES:
        noise, mean, std = _points(table, objective, corr, metric)
        if not np.all(np.isnan(mean)):  # also when empty
          drawn = True
          ax.plot(noise, mean, marker='o', markersize=3, color=color,
                  label=label)
          ax.fill_between(noise, mean - std, mean + std, color=color,
                          alpha=0.2, linewidth=0)
      if not drawn:
        # A partial sweep: say so rather than leave a blank panel.
        ax.text(0.5, 0.5, 'no finished cells yet', ha='center', va='center',
                transform=ax.transAxes, color='gray', fontsize=9)
      if len(reference[0]):
        ax.plot(reference[0], reference[1], linestyle='--', color='black',
                linewidth=1, label='Base at c = 0 (uncorrelated test)')
      ax.set_ylim(0.45, 1.02)
      ax.grid(alpha=0.3)
      if row == 0:
        ax.set_title(figures.STYLES.get(objective, (None, objective))[1],
                     fontsize=10)
      if col == 0:
        ax.set_ylabel(f'train corr {corr:g}\naccuracy', fontsize=9)
      if row == len(corrs) - 1:
        ax.set_xlabel('occlusion noise')
  legend = {}
  for ax in axes.flat:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      legend.setdefault(label, handle)
  if not len(reference[0]):
    from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
    legend['reference (Base at c = 0): not run yet'] = Line2D(
        [], [], linestyle='--', color='lightgray')
  fig.legend(list(legend.values()), list(legend), loc='lower center',
             ncol=len(legend), fontsize=8, frameon=False)
  fig.suptitle(f'{title} (mean ± std over seeds)', fontsize=11)
  fig.tight_layout(rect=(0, 0.05, 1, 1))
  return plots.save_figure(fig, path)


def table_text(table: Sequence[dict[str, Any]],
               column: tuple[str, str, Any] = ('noise', 'noise', '{:g}'.format),
               titles: Sequence[str] = TITLES, **csv_options: Any
               ) -> tuple[str, str]:
  """``(csv, markdown)`` renderings of the aggregated table.

  ``column``: the key, Markdown title and format of the column after the
  train correlation; ``titles``: of the METRICS columns (mean ± std, – for
  none); ``csv_options`` go to :func:`experiments.common.csv_text`.
  """
  key, title, fmt = column
  header = ['objective', 'train_corr', 'noise',
            *([key] if key != 'noise' else []), 'num_seeds',
            *(f'{m}/{s}' for m in METRICS for s in ('mean', 'std'))]
  lines = [f'| objective | train corr | {title} | seeds | '
           + ' | '.join(titles) + ' |', '|---' * (4 + len(titles)) + '|']
  for r in table:
    cells = ['–' if np.isnan(r[f'{m}/mean']) else
             f"{r[f'{m}/mean']:.3f} ± {r[f'{m}/std']:.3f}" for m in METRICS]
    lines.append(f"| {r['objective']} | {r['train_corr']:g} | "
                 f"{fmt(r[key])} | {r['num_seeds']} | " + ' | '.join(cells)
                 + ' |')
  return (common.csv_text(table, header, **csv_options),
          '\n'.join(lines) + '\n')


def make_report(sweep_dir: str, out_dir: str | None = None,
                select: str = 'final') -> dict[str, str]:
  """Writes the figure and tables; returns their paths."""
  out_dir = out_dir or sweep_dir
  os.makedirs(out_dir, exist_ok=True)
  rows = sweeps.collect(sweep_dir, select)
  table = sweeps.aggregate(rows, METRICS)
  csv_text, markdown = table_text(table)
  return {'figure': draw_figure(table, os.path.join(out_dir, 'figure.png'),
                                data_title(rows)),
          **figures.write_outputs(out_dir, {'table.csv': csv_text,
                                            'table.md': markdown})}


if __name__ == '__main__':
  sweeps.report_main(make_report)
