"""Figures and tables of the theory toys, from their results (matplotlib).

Each figure function returns a Figure on an Agg canvas
(:func:`cmi_jax.plots.new_figure`); the caller saves it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cmi_jax import plots

_LEARNED_TITLES = {'base': 'Base', 'mi': 'Base + MI (adversarial)',
                   'cmi': 'Base + CMI (adversarial, continuous s)'}
_MODEL_TITLES = {'regression': 'Base (full regression)',
                 'mi0': 'Base + MI (MI = 0)', 'cmi0': 'Base + CMI (CMI = 0)'}

_OBJECTIVE_TITLES = {'base': 'Base', 'mi': 'Base + MI', 'cmi': 'Base + CMI'}
# The accuracy curves of each objective: (cell metric, style, legend label).
_LINES = (('train_accuracy', {'ls': '-', 'marker': 'o', 'ms': 3},
           'at training correlation'),
          ('uncorrelated_accuracy', {'ls': '--'}, 'at correlation 0'),
          ('min_accuracy', {'ls': ':', 'lw': 2}, 'worst test correlation {}'))


def regression_figure2(sweep: dict[str, dict[str, np.ndarray]],
                       noise_vars: np.ndarray, train_corrs: np.ndarray,
                       test_corr: float,
                       marker: tuple[float, float] | None = None):
  """Heat maps of test MSE over noise variance x training correlation.

  ``sweep`` is :func:`cmi_jax.toy.linear_regression.noise_correlation_sweep`'s
  over ``noise_vars`` x ``train_corrs``; ``marker``: ``(train_corr,
  noise_var)`` drawn as a cross.
  Returns a Figure, a panel per model with one colour scale.
  """
  from matplotlib.colors import LogNorm  # pylint: disable=g-import-not-at-top
  names = tuple(_MODEL_TITLES)
  values = np.stack([sweep['test_mse'][n] for n in names])
  # MSE spans decades (about sigma^2 at low noise, up to >1 for MI=0 at high
  # correlation), so a linear scale would hide the regression's degradation.
  positive = values[values > 0]
  vmin = float(positive.min()) if positive.size else 1e-6
  norm = LogNorm(vmin=vmin, vmax=max(float(values.max()), 2 * vmin))
  fig = plots.new_figure(4.2 * len(names) + 1.0, 3.8)
  axes = fig.subplots(1, len(names), sharey=True)
  for ax, name in zip(axes, names):
    mesh = ax.pcolormesh(train_corrs, noise_vars, sweep['test_mse'][name],
                         shading='nearest', cmap='viridis', norm=norm)
    ax.set(yscale='log', title=_MODEL_TITLES[name],
           xlabel='training correlation c')
    if marker is not None:
      ax.plot([marker[0]], [marker[1]], 'x', color='red', markersize=9,
              label='Table 1 setting')
  axes[0].set_ylabel(r'noise variance $\sigma^2$')
  if marker is not None:
    axes[0].legend(loc='lower left', fontsize=8)
  colorbar = fig.colorbar(mesh, ax=list(axes))
  colorbar.set_label(f'test MSE at correlation {test_corr:g}  '
                     r'($E\|s-\hat s\|^2$)')
  fig.suptitle('Closed-form test MSE under correlation shift')
  return fig


def regression_figure3(scatter: dict[str, dict[str, Any]]):
  """Scatter of :func:`cmi_jax.toy.linear_regression.prediction_scatter`
  (first two attributes).

  A row per distribution (train, test), columns targets ``s``, inputs ``x``
  and each model's predictions, with the correlation of the two coordinates.
  """
  columns = [('s', 'targets', 's'), ('x', 'inputs', 'x')] + [
      (name, title, r'\hat{s}') for name, title in _MODEL_TITLES.items()]
  fig = plots.new_figure(3.0 * len(columns), 6.2)
  axes = fig.subplots(2, len(columns), sharex=True, sharey=True)
  for row, split in enumerate(('train', 'test')):
    data = scatter[split]
    for col, (key, title, symbol) in enumerate(columns):
      ax = axes[row, col]
      points = data[key]
      ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5, rasterized=True)
      corr = np.corrcoef(points[:, 0], points[:, 1])[0, 1]
      ax.text(0.97, 0.03, f'corr = {corr:.2f}', transform=ax.transAxes,
              ha='right', va='bottom', fontsize=8,
              bbox={'facecolor': 'white', 'alpha': 0.7, 'edgecolor': 'none'})
      row_label = f'{split} (c = {data["corr"]:g})\n' if col == 0 else ''
      ax.set(xlim=(-4, 4), ylim=(-4, 4), aspect='equal',
             xlabel=f'${symbol}_1$', ylabel=f'{row_label}${symbol}_2$')
      if row == 0:
        ax.set_title(title if key in ('s', 'x') else f'predictions:\n{title}',
                     fontsize=10)
  return fig


def learned_regression_curves(summary: dict[str, dict[str, Any]],
                              table: dict[str, dict[str, float]]):
  """Train and test MSE against lambda, a panel per objective."""
  fig = plots.new_figure(4.0 * len(summary), 3.4)
  axes = fig.subplots(1, len(summary), squeeze=False, sharey=True)
  for ax, (objective, row) in zip(axes[0], summary.items()):
    weights = [point['lambda'] for point in row['curve']]
    for split, style in (('train_mse', 'o--'), ('test_mse', 'o-')):
      ax.plot(weights, [point[split] for point in row['curve']], style,
              label=split.replace('_mse', ''))
    for model, color in (('regression', 'C3'), ('cmi0', 'C2')):
      ax.axhline(table[model]['test_mse'], color=color, lw=0.8, ls=':',
                 label=f'{model} test (closed form)')
    ax.set(xlabel='lambda', title=_LEARNED_TITLES.get(objective, objective))
    if len(weights) > 1:
      ax.set_xscale('symlog')
    else:  # Base: one lambda, 0.
      ax.set_xticks(weights)
  axes[0][0].set_ylabel('MSE, summed over K')
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  return fig


def _mean_over_seeds(cells: Sequence[dict[str, Any]], objective: str,
                     train_corr: float) -> tuple[np.ndarray, dict[str, Any]]:
  """Sorted noise levels and each accuracy's seed mean at each."""
  by_noise: dict[float, list[dict[str, Any]]] = {}
  for cell in cells:
    if cell['objective'] == objective and cell['train_corr'] == train_corr:
      by_noise.setdefault(cell['noise_var'], []).append(cell)
  noise = np.array(sorted(by_noise))
  return noise, {m: np.array([np.mean([c[m] for c in by_noise[n]])
                              for n in noise])
                 for m in ('train_accuracy', 'uncorrelated_accuracy',
                           'min_accuracy', 'max_accuracy')}


def classification_figure(cells: Sequence[dict[str, Any]]):
  """Accuracy against noise level, seed means of the cells of
  :func:`cmi_jax.toy.linear_classification.sweep`."""
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  from matplotlib.patches import Patch  # pylint: disable=g-import-not-at-top
  corrs = sorted({c['train_corr'] for c in cells})
  objectives = plots.objective_order(c['objective'] for c in cells)
  num_attributes = cells[0]['num_attributes']
  fig = plots.new_figure(4.4 * len(corrs) + 0.6, 4.2)
  axes = np.atleast_1d(fig.subplots(1, len(corrs), sharey=True))
  for ax, corr in zip(axes, corrs):
    for objective in objectives:
      color = plots.STYLES[objective][0]
      noise, means = _mean_over_seeds(cells, objective, corr)
      ax.fill_between(noise, means['min_accuracy'], means['max_accuracy'],
                      color=color, alpha=0.08, lw=0)
      for metric, style, _ in _LINES:
        ax.plot(noise, means[metric], color=color, **style)
    ax.grid(alpha=0.3)
    ax.set(xscale='log', ylim=(0.45, 1.02), xlabel=r'noise variance $\sigma^2$',
           title=f'training correlation {corr:g}')
  axes[0].set_ylabel(f'accuracy (mean over {num_attributes} attributes)')
  grid = 'in [-1, 1]' if num_attributes == 2 else 'in [0, 1]'
  handles = [Line2D([], [], color=plots.STYLES[o][0], lw=2,
                    label=_OBJECTIVE_TITLES[o]) for o in objectives]
  handles += [Line2D([], [], color='gray', label=label.format(grid), **style)
              for _, style, label in _LINES]
  handles.append(Patch(color='gray', alpha=0.15, lw=0, label='worst to best'))
  # Below the panels: inside, they would hide the low-accuracy curves.
  fig.legend(handles=handles, loc='upper center', bbox_to_anchor=(0.5, 0.0),
             ncol=len(handles), fontsize=8, frameon=False)
  fig.suptitle(f'Learned linear classification, K = {num_attributes}')
  return fig


def classification_table(cells: Sequence[dict[str, Any]], train_corr: float
                         ) -> str:
  """Text table of train / uncorrelated / worst accuracy at one train corr."""
  objectives = plots.objective_order(c['objective'] for c in cells)
  curves = [_mean_over_seeds(cells, o, train_corr) for o in objectives]
  lines = [f'train corr {train_corr:g}: accuracy train / uncorrelated / '
           'worst case', 'sigma^2  ' + '  '.join(
               f'{_OBJECTIVE_TITLES[o]:>18}' for o in objectives)]
  for i, n in enumerate(curves[0][0]):
    lines.append('  '.join([f'{n:7.3g}'] + [
        '/'.join(f'{means[m][i]:.3f}' for m, _, _ in _LINES).rjust(18)
        for _, means in curves]))
  return '\n'.join(lines)
