r"""The paper's multi-digit sweep: noise x train correlation x objective x seed.

  python -m experiments.multi_digit_sweep --workdir=/tmp/md_sweep \
      [--noises=0,0.2,0.4,0.6,0.8 --train_corrs=0,0.6,0.9 \
       --objectives=base,mi,cmi --seeds=0,1,2 --config.num_epochs=400 ...]

Each cell is a full run of :mod:`experiments.multi_digit_mnist` in
``workdir/<objective>/corr<c>_noise<n>/seed<s>``; cells with a
``results.json`` are skipped, so a restarted sweep picks up where it stopped
(the interrupted cell resumes from its checkpoint). Draw the paper's figure
with :mod:`experiments.plot_multi_digit`.
"""

from __future__ import annotations

import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from cmi_jax import experiment
from cmi_jax import logs
from cmi_jax import sweeps
from experiments import multi_digit_mnist
from experiments.configs import multi_digit as multi_digit_config

def parse_floats(values, name):
  try:
    return [float(v) for v in values]
  except ValueError as e:
    raise app.UsageError(f'--{name} takes comma-separated numbers; got '
                         f'{values}.') from e


def run_sweep(base_config, sweep_dir, cells):
  """Runs every unfinished cell; returns the rows of :func:`sweeps.collect`."""
  for i, cell in enumerate(cells):
    if sweeps.is_done(sweep_dir, cell):
      logging.info('[%d/%d] %s: done, skipped.', i + 1, len(cells), cell.name)
      continue
    config = multi_digit_mnist.resolve_config(base_config)
    with config.unlocked():
      config.update(cell.overrides())
      config.fast = False  # Already applied by resolve_config.
    start = time.time()
    results = multi_digit_mnist.train_and_evaluate(
        config, f'{sweep_dir}/{cell.name}')
    final = results['final']['eval']
    logging.info('[%d/%d] %s: anti %.3f, uncorr %.3f (%.0f s).', i + 1,
                 len(cells), cell.name, final['test_anti']['accuracy'],
                 final['test_uncorr']['accuracy'], time.time() - start)
  rows = sweeps.collect(sweep_dir)
  logs.write_json_atomic(f'{sweep_dir}/summary.json', rows)
  return rows


def main() -> None:
  """Command line (flags defined here, not at import)."""
  config = config_flags.DEFINE_config_dict(
      'config', multi_digit_config.get_config(), lock_config=True)
  workdir = flags.DEFINE_string('workdir', None, 'Sweep directory.')
  noises = flags.DEFINE_list('noises', ['0', '0.2', '0.4', '0.6', '0.8'],
                             'Occlusion noise levels.')
  corrs = flags.DEFINE_list('train_corrs', ['0', '0.6', '0.9'],
                            'Training correlations.')
  objectives = flags.DEFINE_list('objectives', ['base', 'mi', 'cmi'],
                                 'Objectives.')
  seeds = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds.')

  def run(argv):
    experiment.quiet_library_logs()
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    if not workdir.value:
      raise app.UsageError('--workdir is required (the sweep directory).')
    cells = sweeps.grid(objectives.value,
                        parse_floats(corrs.value, 'train_corrs'),
                        parse_floats(noises.value, 'noises'),
                        [int(s) for s in parse_floats(seeds.value, 'seeds')])
    rows = run_sweep(config.value, workdir.value, cells)
    print(f'{len(rows)} finished cells in {workdir.value}')

  app.run(run)


if __name__ == '__main__':
  main()
