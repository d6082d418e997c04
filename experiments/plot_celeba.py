r"""The paper's two CelebA figures and their tables, from a sweep directory.

  python -m experiments.plot_celeba --sweep_dir=/tmp/celeba_sweep \
      [--select=final|best_val_loss|best_val_accuracy --out_dir=DIR]

Writes into ``out_dir`` (default: the sweep directory), for whichever of
``sweep_dir/corr`` and ``sweep_dir/weak`` exist, ``celeba_correlation`` and
``celeba_weak_supervision`` as ``.png``, ``.csv`` and ``.md``: accuracy
(mean ± std over seeds) against the training correlation or the percentage
of labels removed, one line per objective.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from cmi_jax import plots
from experiments import celeba_sweep
from experiments import figures
from experiments import sweeps
from experiments import plot_multi_digit as md

SPLIT_TITLES = {'test_anti/accuracy': 'anti-correlated test',
                'test_uncorr/accuracy': 'uncorrelated test',
                'val/accuracy': 'validation (train correlation)'}


def _objective_lines(ax, table: Sequence[dict[str, Any]], x_key: str,
                     metric: str, scale: float = 1.0) -> None:
  """One line per objective: mean of ``metric`` against ``x_key`` ± std."""
  for objective in figures.objective_order(r['objective'] for r in table):
    x, mean, std = md.curve([r for r in table if r['objective'] == objective],
                            x_key, metric)
    color, label = figures.STYLES.get(objective, (None, objective))
    ax.plot(x * scale, mean, marker='o', color=color, label=label)
    ax.fill_between(x * scale, mean - std, mean + std, color=color, alpha=0.2)
  ax.set_ylabel('accuracy')
  ax.grid(alpha=0.3)


def draw_correlation_figure(table: Sequence[dict[str, Any]]):
  """Accuracy vs train correlation; columns: test split, rows: noise level.

  ``table`` holds :func:`experiments.sweeps.aggregate` rows.
  """
  noises = sorted({r['noise'] for r in table})
  splits = ('test_anti/accuracy', 'test_uncorr/accuracy')
  fig = plots.new_figure(4.2 * len(splits), 3.4 * len(noises))
  for row, noise in enumerate(noises):
    for col, metric in enumerate(splits):
      ax = fig.add_subplot(len(noises), len(splits),
                           row * len(splits) + col + 1)
      _objective_lines(ax, [r for r in table if r['noise'] == noise],
                       'train_corr', metric)
      ax.set_xlabel('train correlation')
      ax.set_title(f'{SPLIT_TITLES[metric]}'
                   + (f', noise {noise:g}' if len(noises) > 1 or noise else ''),
                   fontsize=9)
      if row == 0 and col == 0:
        ax.legend(fontsize=8)
  fig.suptitle('Correlated CelebA (mean ± std over seeds)')
  fig.tight_layout()
  return fig


def draw_weak_figure(table: Sequence[dict[str, Any]]):
  """Accuracy vs percentage of labels removed (rows of :func:`weak_table`)."""
  splits = ('val/accuracy', 'test_uncorr/accuracy', 'test_anti/accuracy')
  corrs = sorted({r['train_corr'] for r in table})
  fig = plots.new_figure(4.0 * len(splits), 3.4)
  for col, metric in enumerate(splits):
    ax = fig.add_subplot(1, len(splits), col + 1)
    _objective_lines(ax, table, 'weak_supervision', metric, scale=100.0)
    ax.set_xlabel('labels removed per attribute (%)')
    ax.set_title(SPLIT_TITLES[metric], fontsize=9)
    if col == 0:
      ax.legend(fontsize=8)
  fig.suptitle('Weakly supervised CelebA, train correlation '
               f"{', '.join(f'{c:g}' for c in corrs)} (mean ± std over seeds)")
  fig.tight_layout()
  return fig


def weak_table(weak_dir: str, select: str = 'final') -> list[dict[str, Any]]:
  """:func:`experiments.sweeps.aggregate` rows per fraction removed."""
  rows = celeba_sweep.collect_weak(weak_dir, select)
  table = []
  for fraction in sorted({r['weak_supervision'] for r in rows}):
    members = [r for r in rows if r['weak_supervision'] == fraction]
    table += [dict(entry, weak_supervision=fraction)
              for entry in sweeps.aggregate(members, md.METRICS)]
  return sorted(table, key=lambda r: (r['objective'], r['weak_supervision']))


def make_report(sweep_dir: str, out_dir: str | None = None,
                select: str = 'final') -> dict[str, str]:
  """Writes the figures and tables of the modes; returns name -> path."""
  out_dir = out_dir or sweep_dir
  corr_dir = celeba_sweep.mode_dir(sweep_dir, 'corr')
  weak_dir = celeba_sweep.mode_dir(sweep_dir, 'weak')
  reports = []
  if os.path.isdir(corr_dir):
    table = sweeps.aggregate(sweeps.collect(corr_dir, select), md.METRICS)
    reports.append(('celeba_correlation', draw_correlation_figure(table),
                    md.table_text(table)))
  if os.path.isdir(weak_dir):
    table = weak_table(weak_dir, select)
    reports.append(('celeba_weak_supervision', draw_weak_figure(table),
                    md.table_text(table, ('weak_supervision', 'labels removed',
                                          lambda v: f'{100 * v:g} %'),
                                  lineterminator='\n')))
  if not reports:
    raise ValueError(
        f'{sweep_dir} holds neither corr/ nor weak/ sweep cells; run '
        f'python -m experiments.celeba_sweep --workdir={sweep_dir} '
        '[--mode=weak] first.')
  return figures.write_outputs(out_dir, {
      f'{stem}.{ext}': content for stem, fig, (csv_text, markdown) in reports
      for ext, content in (('png', fig), ('csv', csv_text), ('md', markdown))})


if __name__ == '__main__':
  sweeps.report_main(make_report)
