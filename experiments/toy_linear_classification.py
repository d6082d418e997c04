r"""The paper's learned linear classification toy: accuracy under shift.

Trains, for every objective (``base``, ``mi``, ``cmi``), training correlation
and noise level, a linear encoder with scalar readouts
(:mod:`cmi_jax.toy.linear_classification`, one vmapped sweep per
objective) and evaluates its accuracies in closed form. Writes into
``--workdir``:

* ``results.json``: ``{'config', 'wall_time_s': {objective: s, 'total': s},
  'cpu_time_s', 'snapshot_steps', 'cells'}`` (times include compilation),
  the cells of :func:`lc.sweep` (adversary loss at chance: ``log 2`` for
  ``mi``, ``2K log 2`` for ``cmi``);
* ``figure.png``: accuracy against noise level, a panel per training
  correlation, a colour per objective; solid: at the training correlation,
  dashed: uncorrelated, dotted: worst case over the test correlations
  (shaded up to the best case).

  python -m experiments.toy_linear_classification --workdir=/tmp/toy_lc4 \
      --config.num_attributes=4 --config.noise_levels=0.1,1,10 \
      --config.train_corrs=0.95
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import numpy as np

from experiments import cli
from experiments import common
from experiments import figures
from experiments.configs import toy_linear_classification as toy_config
from cmi_jax import plots
from cmi_jax.toy import linear_classification as lc

_OBJECTIVE_TITLES = {'base': 'Base', 'mi': 'Base + MI', 'cmi': 'Base + CMI'}
# The accuracy curves of each objective: (cell metric, style, legend label).
_LINES = (('train_accuracy', {'ls': '-', 'marker': 'o', 'ms': 3},
           'at training correlation'),
          ('uncorrelated_accuracy', {'ls': '--'}, 'at correlation 0'),
          ('min_accuracy', {'ls': ':', 'lw': 2}, 'worst test correlation {}'))


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


def plot_figure(cells: Sequence[dict[str, Any]]):
  """Accuracy against noise level of :func:`run`'s cells (seed means)."""
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  from matplotlib.patches import Patch  # pylint: disable=g-import-not-at-top
  corrs = sorted({c['train_corr'] for c in cells})
  objectives = figures.objective_order(c['objective'] for c in cells)
  num_attributes = cells[0]['num_attributes']
  fig = plots.new_figure(4.4 * len(corrs) + 0.6, 4.2)
  axes = np.atleast_1d(fig.subplots(1, len(corrs), sharey=True))
  for ax, corr in zip(axes, corrs):
    for objective in objectives:
      color = figures.STYLES[objective][0]
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
  handles = [Line2D([], [], color=figures.STYLES[o][0], lw=2,
                    label=_OBJECTIVE_TITLES[o]) for o in objectives]
  handles += [Line2D([], [], color='gray', label=label.format(grid), **style)
              for _, style, label in _LINES]
  handles.append(Patch(color='gray', alpha=0.15, lw=0, label='worst to best'))
  # Below the panels: inside, they would hide the low-accuracy curves.
  fig.legend(handles=handles, loc='upper center', bbox_to_anchor=(0.5, 0.0),
             ncol=len(handles), fontsize=8, frameon=False)
  fig.suptitle(f'Learned linear classification, K = {num_attributes}')
  return fig


def _floats(values: Sequence[Any], name: str) -> tuple[float, ...]:
  try:
    return tuple(float(v) for v in values)
  except (TypeError, ValueError):
    raise ValueError(f'{name} must be numbers; got {list(values)}.') from None


def _clock() -> np.ndarray:
  """Wall and CPU seconds (on a shared machine, wall time measures load)."""
  return np.array([time.perf_counter(), time.process_time()])


def run(workdir: str, **settings: Any) -> dict[str, Any]:
  """Runs the sweep; writes ``results.json``, ``figure.png`` into ``workdir``.

  ``settings`` change fields of :func:`toy_config.get_config` (``train``:
  of :class:`lc.TrainConfig`). Returns the JSON content plus ``files``.
  """
  if not workdir:
    raise ValueError('workdir is required; pass --workdir=DIR.')
  c = common.config_with(toy_config.get_config(), settings)
  objectives = common.comma_names(c.objectives)
  config = lc.TrainConfig(**c.train)
  options = {'num_seeds': c.num_seeds, 'num_samples': c.num_samples,
             'config': config, 'num_test_corrs': c.num_test_corrs}
  # Every objective is checked before the first one trains (minutes).
  k, noise_levels, train_corrs, _ = lc.check_sweep(
      c.num_attributes, _floats(c.noise_levels, 'noise_levels'),
      _floats(c.train_corrs, 'train_corrs'), objectives, **options)
  # One objective at a time, so that the time of each is measured.
  times, cells, start = {}, [], _clock()
  for objective in objectives:
    tic = _clock()
    cells += lc.sweep(k, noise_levels, train_corrs, (objective,),
                      seed=c.seed, **options)
    times[objective] = _clock() - tic
  times['total'] = _clock() - start
  result = {
      'config': {
          'num_attributes': k, 'noise_levels': noise_levels.tolist(),
          'train_corrs': train_corrs.tolist(), 'objectives': list(objectives),
          'seed': int(c.seed), 'num_seeds': int(c.num_seeds),
          'num_samples': int(c.num_samples),
          'num_test_corrs': int(c.num_test_corrs),
          'test_corrs': lc.evaluation_correlations(
              k, c.num_test_corrs).tolist(),
          'evaluation': 'closed form (exact population accuracy)',
          'train': dataclasses.asdict(config),
      },
      'wall_time_s': {name: float(t[0]) for name, t in times.items()},
      'cpu_time_s': {name: float(t[1]) for name, t in times.items()},
      'snapshot_steps': lc.snapshot_steps(config).tolist(), 'cells': cells}
  return dict(result, files=figures.write_outputs(workdir, {
      'results.json': result, 'figure.png': plot_figure(cells)}))


def format_table(cells: Sequence[dict[str, Any]], train_corr: float) -> str:
  """Text table of train / uncorrelated / worst accuracy at one train corr."""
  objectives = figures.objective_order(c['objective'] for c in cells)
  curves = [_mean_over_seeds(cells, o, train_corr) for o in objectives]
  lines = [f'train corr {train_corr:g}: accuracy train / uncorrelated / '
           'worst case', 'sigma^2  ' + '  '.join(
               f'{_OBJECTIVE_TITLES[o]:>18}' for o in objectives)]
  for i, n in enumerate(curves[0][0]):
    lines.append('  '.join([f'{n:7.3g}'] + [
        '/'.join(f'{means[m][i]:.3f}' for m, _, _ in _LINES).rjust(18)
        for _, means in curves]))
  return '\n'.join(lines)


def main() -> None:
  """Command line: ``--workdir`` and ``--config`` (with overrides)."""
  def body(config, workdir):
    result = run(workdir, **config)
    for corr in result['config']['train_corrs']:
      print(format_table(result['cells'], corr))
    print(f"wall time (s): {result['wall_time_s']}")
    print(f"CPU time (s): {result['cpu_time_s']}")
    print('\n'.join(f'wrote {path}' for path in result['files'].values()))

  cli.run_config_main('toy_linear_classification.py', body)


if __name__ == '__main__':
  main()
