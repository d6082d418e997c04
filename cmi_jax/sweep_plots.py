"""Figures of a sweep, from its rows averaged over seeds.

Each takes :func:`cmi_jax.records.aggregate` rows (``<metric>/mean`` and
``/std``): the paper's multi-digit grid (:func:`accuracy_grid`) and its two
CelebA figures (:func:`correlation_figure`, :func:`weak_supervision_figure`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cmi_jax import plots

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

SPLIT_TITLES = {'test_anti/accuracy': 'anti-correlated test',
                'test_uncorr/accuracy': 'uncorrelated test',
                'val/accuracy': 'validation (train correlation)'}


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


def accuracy_grid(table: Sequence[dict[str, Any]], path: str,
                  title: str = 'Correlated two-item digits') -> str:
  """The paper's grid: rows training correlation, columns objective.

  Each panel: accuracy on :data:`CURVES` against the occlusion noise (mean
  ± std over seeds) and the :data:`REFERENCE` line.
  """
  corrs = sorted({r['train_corr'] for r in table})
  objectives = plots.objective_order(r['objective'] for r in table)
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
        ax.set_title(plots.STYLES.get(objective, (None, objective))[1],
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


def _objective_lines(ax, table: Sequence[dict[str, Any]], x_key: str,
                     metric: str, scale: float = 1.0) -> None:
  """One line per objective: mean of ``metric`` against ``x_key`` ± std."""
  for objective in plots.objective_order(r['objective'] for r in table):
    x, mean, std = curve([r for r in table if r['objective'] == objective],
                            x_key, metric)
    color, label = plots.STYLES.get(objective, (None, objective))
    ax.plot(x * scale, mean, marker='o', color=color, label=label)
    ax.fill_between(x * scale, mean - std, mean + std, color=color, alpha=0.2)
  ax.set_ylabel('accuracy')
  ax.grid(alpha=0.3)


def correlation_figure(table: Sequence[dict[str, Any]]):
  """Accuracy vs train correlation; columns: test split, rows: noise level.

  ``table`` holds :func:`cmi_jax.records.aggregate` rows.
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


def weak_supervision_figure(table: Sequence[dict[str, Any]]):
  """Accuracy vs percentage of labels removed, from rows with a
  ``weak_supervision`` field."""
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
