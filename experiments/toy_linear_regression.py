r"""The paper's linear-Gaussian regression theory: Table 1, Figures 2 and 3.

Computed in closed form by :mod:`cmi_jax.toy.linear_regression` (only
Figure 3 samples points). Writes into ``--workdir``: ``table1.json``
(:func:`lr.table1`), ``figure2.png`` (test MSE over noise variance x
training correlation, a heat map per model), ``figure3.png`` (predictions
against targets at the training and the test correlation, a column per
model) and ``config.json`` (the settings, with the number of restarts used).
With ``learned.objectives`` (the ``learned`` variant: Base, MI, CMI) it also
trains Table 1 by gradient descent (:mod:`cmi_jax.toy.learned_regression`):
``learned_table1.json`` (per objective the table row and the curve over
lambda) and ``learned_table1.png`` (train and test MSE against lambda beside
the closed form).

  python -m experiments.toy_linear_regression --workdir=/tmp/toy_lr3 \
      --config.num_attributes=3 --config.grid_num_noise=10
  python -m experiments.toy_linear_regression --workdir=/tmp/learned \
      --config=experiments/configs/toy_linear_regression.py:learned
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments import cli
from experiments import common
from experiments import figures
from experiments.configs import toy_linear_regression as toy_config
from cmi_jax import plots
from cmi_jax import validate
from cmi_jax.toy import learned_regression
from cmi_jax.toy import linear_regression as lr

_LEARNED_TITLES = {'base': 'Base', 'mi': 'Base + MI (adversarial)',
                   'cmi': 'Base + CMI (adversarial, continuous s)'}
_MODEL_TITLES = {'regression': 'Base (full regression)',
                 'mi0': 'Base + MI (MI = 0)', 'cmi0': 'Base + CMI (CMI = 0)'}


def plot_figure2(sweep: dict[str, dict[str, np.ndarray]],
                 noise_vars: np.ndarray, train_corrs: np.ndarray,
                 test_corr: float, marker: tuple[float, float] | None = None):
  """Heat maps of test MSE over noise variance x training correlation.

  ``sweep`` is :func:`lr.noise_correlation_sweep`'s over ``noise_vars`` x
  ``train_corrs``; ``marker``: ``(train_corr, noise_var)`` drawn as a cross.
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


def plot_figure3(scatter: dict[str, dict[str, Any]]):
  """Scatter of :func:`lr.prediction_scatter` (first two attributes).

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


def learned_table1(c: Any, objectives: tuple[str, ...],
                   table: dict[str, dict[str, float]]
                   ) -> dict[str, dict[str, Any]]:
  """:func:`learned_regression.summarize` of ``c.learned``'s runs."""
  learned, rows = c.learned, []
  for objective in objectives:
    # Base has no penalty: lambda = 0 says so.
    weights = [0.0] if objective == 'base' else learned.lambdas
    rows += learned_regression.table_rows(
        [objective], [float(w) for w in weights],
        [int(seed) for seed in learned.seeds], train_corr=c.train_corr,
        noise_var=c.noise_var, test_corr=c.test_corr,
        num_samples=learned.num_samples, num_attributes=c.num_attributes,
        steps=learned.steps, batch_size=learned.batch_size)
  return learned_regression.summarize(rows, table['mi0']['train_mse'])


def plot_learned(summary: dict[str, dict[str, Any]],
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


def run(workdir: str, **settings: Any) -> dict[str, Any]:
  """Computes Table 1 and draws Figures 2 and 3 into ``workdir`` (created).

  ``settings`` change fields of :func:`toy_config.get_config`. Returns
  ``{'table1': ..., 'config': the settings used, 'files': {name: path}}``.
  """
  if not workdir:
    raise ValueError('workdir is required; pass --workdir=DIR.')
  c = common.config_with(toy_config.get_config(), settings)
  if c.num_restarts is None:
    c.num_restarts = 1 if c.num_attributes == 2 else 8
  for name in ('grid_num_noise', 'grid_num_corr'):
    validate.integer(c[name], name, 2, hint='A heat map needs 2 per axis.')
  if not 0 < c.grid_min_noise < c.grid_max_noise:
    raise ValueError(
        f'need 0 < grid_min_noise < grid_max_noise for the log-spaced noise '
        f'axis; got {c.grid_min_noise} and {c.grid_max_noise}.')
  validate.number(c.grid_max_corr, 'grid_max_corr', 0, 1, open_low=True,
                  open_high=True)
  learned_objectives = common.comma_names(c.learned.objectives)
  for name in learned_objectives:  # Before minutes of work.
    validate.choice(name, 'learned.objectives', learned_regression.OBJECTIVES)
  setting = (c.train_corr, c.noise_var, c.test_corr, c.num_attributes)
  # Validate the main setting before the (slower) sweep.
  table = lr.table1(*setting, num_restarts=c.num_restarts, seed=c.seed)
  noise_vars = np.logspace(np.log10(c.grid_min_noise),
                           np.log10(c.grid_max_noise), int(c.grid_num_noise))
  train_corrs = np.linspace(0.0, c.grid_max_corr, int(c.grid_num_corr))
  sweep = lr.noise_correlation_sweep(noise_vars, train_corrs, c.test_corr,
                                     c.num_attributes,
                                     num_restarts=c.num_restarts, seed=c.seed)
  scatter = lr.prediction_scatter(*setting, c.num_scatter_samples, c.seed,
                                  num_restarts=c.num_restarts)
  outputs = {
      'table1.json': table,
      'figure2.png': plot_figure2(sweep, noise_vars, train_corrs, c.test_corr,
                                  marker=(c.train_corr, c.noise_var)),
      'figure3.png': plot_figure3(scatter), 'config.json': c.to_dict()}
  result = {'table1': table, 'config': c.to_dict()}
  if learned_objectives:
    result['learned'] = learned_table1(c, learned_objectives, table)
    outputs['learned_table1.json'] = result['learned']
    outputs['learned_table1.png'] = plot_learned(result['learned'], table)
  return {**result, 'files': figures.write_outputs(workdir, outputs)}


def main() -> None:
  """Command line: ``--workdir`` and ``--config`` (with overrides)."""
  def body(config, workdir):
    result = run(workdir, **config)
    print(lr.format_table1(result['table1']))
    for objective, row in result.get('learned', {}).items():
      print(f'learned {objective:>8}: train {row["train_mse"]:.4f}, test '
            f'{row["test_mse"]:.4f} (lambda {row["lambda"]:g}, '
            f'{row["seeds"]} seeds)')
    print('\n'.join(f'wrote {path}' for path in result['files'].values()))

  cli.run_config_main('toy_linear_regression.py', body)


if __name__ == '__main__':
  main()
