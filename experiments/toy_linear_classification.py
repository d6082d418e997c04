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
import os
import time
from typing import Any, Sequence

import numpy as np

from experiments import cli
from experiments import common
from experiments import figures
from experiments.configs import toy_linear_classification as toy_config
from cmi_jax import logs
from cmi_jax import plots
from cmi_jax.toy import linear_classification as lc

_OBJECTIVE_TITLES = {'base': 'Base', 'mi': 'Base + MI', 'cmi': 'Base + CMI'}


def _mean_over_seeds(cells: Sequence[dict[str, Any]], objective: str,
                     train_corr: float, metrics: Sequence[str]
                     ) -> tuple[np.ndarray, list[np.ndarray]]:
  """Sorted noise levels and, per metric, its seed mean at each."""
  by_noise: dict[float, list[dict[str, Any]]] = {}
  for cell in cells:
    if cell['objective'] == objective and cell['train_corr'] == train_corr:
      by_noise.setdefault(cell['noise_var'], []).append(cell)
  noise = np.array(sorted(by_noise))
  return noise, [np.array([np.mean([c[m] for c in by_noise[n]])
                           for n in noise]) for m in metrics]


def plot_figure(cells: Sequence[dict[str, Any]]):
  """Accuracy against noise level of :func:`run`'s cells (seed means)."""
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  from matplotlib.patches import Patch  # pylint: disable=g-import-not-at-top
  corrs = sorted({c['train_corr'] for c in cells})
  objectives = [o for o in lc.OBJECTIVES
                if any(c['objective'] == o for c in cells)]
  num_attributes = cells[0]['num_attributes']
  fig = plots.new_figure(4.4 * len(corrs) + 0.6, 4.2)
  axes = np.atleast_1d(fig.subplots(1, len(corrs), sharey=True))
  for ax, corr in zip(axes, corrs):
    for objective in objectives:
      color = figures.STYLES[objective][0]
      noise, (train_acc, zero_acc, low, high) = _mean_over_seeds(
          cells, objective, corr, ('train_accuracy', 'uncorrelated_accuracy',
                                   'min_accuracy', 'max_accuracy'))
      ax.fill_between(noise, low, high, color=color, alpha=0.08, lw=0)
      ax.plot(noise, train_acc, '-o', color=color, ms=3)
      ax.plot(noise, zero_acc, '--', color=color)
      ax.plot(noise, low, ':', color=color, lw=2)
    ax.grid(alpha=0.3)
    ax.set(xscale='log', ylim=(0.45, 1.02), xlabel=r'noise variance $\sigma^2$',
           title=f'training correlation {corr:g}')
  axes[0].set_ylabel(f'accuracy (mean over {num_attributes} attributes)')
  color_handles = [Line2D([], [], color=figures.STYLES[o][0], lw=2,
                          label=_OBJECTIVE_TITLES[o]) for o in objectives]
  grid = 'in [-1, 1]' if num_attributes == 2 else 'in [0, 1]'
  style_handles = [
      Line2D([], [], color='gray', ls='-', marker='o', ms=3,
             label='at training correlation'),
      Line2D([], [], color='gray', ls='--', label='at correlation 0'),
      Line2D([], [], color='gray', ls=':', lw=2,
             label=f'worst test correlation {grid}'),
      Patch(color='gray', alpha=0.15, lw=0, label='worst to best'),
  ]
  # Below the panels: inside, they would hide the low-accuracy curves.
  fig.legend(handles=color_handles + style_handles, loc='upper center',
             bbox_to_anchor=(0.5, 0.0), ncol=len(color_handles)
             + len(style_handles), fontsize=8, frameon=False)
  fig.suptitle(f'Learned linear classification, K = {num_attributes}')
  return fig


def _floats(values: Sequence[Any], name: str) -> tuple[float, ...]:
  try:
    return tuple(float(v) for v in values)
  except (TypeError, ValueError):
    raise ValueError(f'{name} must be numbers; got {list(values)}.') from None


def run(workdir: str, **settings: Any) -> dict[str, Any]:
  """Runs the sweep; writes ``results.json``, ``figure.png`` into ``workdir``.

  ``settings`` change fields of :func:`toy_config.get_config` (``train``:
  of :class:`lc.TrainConfig`). Returns the JSON content plus ``files``.
  """
  if not workdir:
    raise ValueError('workdir is required; pass --workdir=DIR.')
  c = common.config_with(toy_config.get_config(), settings)
  noise_levels = _floats(c.noise_levels, 'noise_levels')
  train_corrs = _floats(c.train_corrs, 'train_corrs')
  # A comma-separated --config.objectives=base,cmi arrives as one string.
  objectives = tuple(name for entry in c.objectives
                     for name in str(entry).split(',') if name)
  config = lc.TrainConfig(**c.train)
  # Every objective is checked before the first one trains (minutes).
  lc.check_sweep(c.num_attributes, noise_levels, train_corrs, objectives,
                 c.num_seeds, c.num_samples, config, c.num_test_corrs)

  timings, cpu_times, cells = {}, {}, []
  start, cpu_start = time.perf_counter(), time.process_time()
  for objective in objectives:
    # One objective at a time, so the time of each is measured. CPU time is
    # reported too: on a shared machine the wall time mostly measures load.
    tic, cpu_tic = time.perf_counter(), time.process_time()
    cells += lc.sweep(c.num_attributes, noise_levels, train_corrs,
                      (objective,), seed=c.seed, num_seeds=c.num_seeds,
                      config=config, num_samples=c.num_samples,
                      num_test_corrs=c.num_test_corrs)
    timings[objective] = time.perf_counter() - tic
    cpu_times[objective] = time.process_time() - cpu_tic
  timings['total'] = time.perf_counter() - start
  cpu_times['total'] = time.process_time() - cpu_start

  result = {
      'config': {
          'num_attributes': int(c.num_attributes),
          'noise_levels': list(noise_levels), 'train_corrs': list(train_corrs),
          'objectives': list(objectives), 'seed': int(c.seed),
          'num_seeds': int(c.num_seeds), 'num_samples': int(c.num_samples),
          'num_test_corrs': int(c.num_test_corrs),
          'test_corrs': lc.evaluation_correlations(
              c.num_attributes, c.num_test_corrs).tolist(),
          'evaluation': 'closed form (exact population accuracy)',
          'train': dataclasses.asdict(config),
      },
      'wall_time_s': timings, 'cpu_time_s': cpu_times,
      'snapshot_steps': lc.snapshot_steps(config).tolist(), 'cells': cells}
  os.makedirs(workdir, exist_ok=True)
  files = {'results': os.path.join(workdir, 'results.json'),
           'figure': os.path.join(workdir, 'figure.png')}
  logs.write_json_atomic(files['results'], result)
  plots.save_figure(plot_figure(cells), files['figure'])
  return dict(result, files=files)


def format_table(cells: Sequence[dict[str, Any]], train_corr: float) -> str:
  """Text table of train / uncorrelated / worst accuracy at one train corr."""
  objectives = [o for o in lc.OBJECTIVES
                if any(c['objective'] == o for c in cells)]
  header = 'sigma^2  ' + '  '.join(f'{_OBJECTIVE_TITLES[o]:>18}'
                                   for o in objectives)
  lines = [f'train corr {train_corr:g}: accuracy train / uncorrelated / '
           'worst case', header]
  metrics = ('train_accuracy', 'uncorrelated_accuracy', 'min_accuracy')
  curves = [_mean_over_seeds(cells, o, train_corr, metrics) for o in objectives]
  for i, n in enumerate(curves[0][0]):
    lines.append('  '.join([f'{n:7.3g}'] + [
        '{:.3f}/{:.3f}/{:.3f}'.format(*(v[i] for v in values)).rjust(18)
        for _, values in curves]))
  return '\n'.join(lines)


def main() -> None:
  """Command line: ``--workdir`` and ``--config`` (with overrides)."""
  def body(config, workdir):
    result = run(workdir, **config)
    for corr in result['config']['train_corrs']:
      print(format_table(result['cells'], corr))
    print(f"wall time (s): {result['wall_time_s']}")
    print(f"CPU time (s): {result['cpu_time_s']}")
    for path in result['files'].values():
      print(f'wrote {path}')

  cli.run_config_main('toy_linear_classification.py', body)


if __name__ == '__main__':
  main()
