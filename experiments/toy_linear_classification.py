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
from experiments.configs import toy_linear_classification as toy_config
from cmi_jax import plots
from cmi_jax.toy import figures as toy_figures
from cmi_jax.toy import linear_classification as lc


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
  return dict(result, files=plots.write_outputs(workdir, {
      'results.json': result,
      'figure.png': toy_figures.classification_figure(cells)}))


def main() -> None:
  """Command line: ``--workdir`` and ``--config`` (with overrides)."""
  def body(config, workdir):
    result = run(workdir, **config)
    for corr in result['config']['train_corrs']:
      print(toy_figures.classification_table(result['cells'], corr))
    print(f"wall time (s): {result['wall_time_s']}")
    print(f"CPU time (s): {result['cpu_time_s']}")
    print('\n'.join(f'wrote {path}' for path in result['files'].values()))

  cli.run_config_main('toy_linear_classification.py', body)


if __name__ == '__main__':
  main()
