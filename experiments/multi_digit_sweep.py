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

import itertools
import os
import time

import jax
import numpy as np
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from cmi_jax import experiment
from cmi_jax import logs
from cmi_jax import sweep as vmapped
from cmi_jax import sweeps
from cmi_jax.data import multi_digit
from cmi_jax.data import sources
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


def run_vmapped_sweep(base_config, sweep_dir, cells):
  """Trains the unfinished cells of each objective together, vmapped.

  Cells of one objective share every shape, so their states, keys, noise
  levels and correlation tables are stacked and trained by one compiled
  epoch (:mod:`cmi_jax.sweep`); member ``i`` equals the separate run of cell
  ``i``. Evaluation runs once, after the last epoch, so each cell's
  ``results.json`` holds the ``final`` record only (no best-epoch
  checkpoints), and an interrupted group restarts from scratch.
  """
  config = multi_digit_mnist.resolve_config(base_config)
  digits = sources.load_digits(config.dataset, config.source,
                               tfds_data_dir=config.tfds_data_dir,
                               manual_dir=config.manual_dir)
  todo = [c for c in cells if not sweeps.is_done(sweep_dir, c)]
  for objective, group in itertools.groupby(todo, key=lambda c: c.objective):
    group = list(group)
    configs, splits = [], []
    for cell in group:
      cell_config = multi_digit_mnist.resolve_config(config)
      with cell_config.unlocked():
        cell_config.update(cell.overrides())
        cell_config.fast = False
      configs.append(cell_config)
      data = multi_digit.multi_digit_splits(
          digits, tuple(cell_config.classes), cell_config.num_digits,
          cell.train_corr, cell.noise, cell_config.patch,
          cell_config.batch_size, cell.seed)
      if cell_config.epoch_size is not None:
        data['train'] = experiment.set_epoch_size(data['train'],
                                                  cell_config.epoch_size)
      splits.append(data)
    trainer = experiment.build_trainer(configs[0], config.num_digits,
                                       multi_digit_config.PAPER_OPTIM)
    example = experiment.first_batches(splits[0]['train'], 1)['image']
    keys = np.stack([np.asarray(jax.random.PRNGKey(c.seed)) for c in group])
    states = vmapped.init_sweep(
        trainer, keys, example,
        {'disentangle_weight': [c.disentangle_weight for c in configs]})
    datas = vmapped.stack_datasets([s['train'] for s in splits])
    epoch = vmapped.sweep_train_epoch(trainer)
    start = time.time()
    for i in range(config.num_epochs):
      states, metrics = epoch(states, datas)
      if (i + 1) % max(1, config.num_epochs // 10) == 0:
        ce = np.asarray(metrics['loss/ce']).mean(1)
        logging.info('%s: epoch %d/%d, %d members, mean ce %.3f (%.0f s).',
                     objective, i + 1, config.num_epochs, len(group),
                     float(ce.mean()), time.time() - start)
    stats = vmapped.sweep_evaluate(
        trainer, states,
        {s: [d[s] for d in splits] for s in experiment.EVAL_SPLITS})
    summaries = {s: vmapped.summarize(v) for s, v in stats.items()}
    for i, (cell, cell_config) in enumerate(zip(group, configs)):
      record = {'epoch': config.num_epochs,
                'step': config.num_epochs * datas.steps_per_epoch,
                'eval': {s: summaries[s][i] for s in experiment.EVAL_SPLITS}}
      workdir = os.path.join(sweep_dir, cell.name)
      os.makedirs(workdir, exist_ok=True)
      logs.write_json_atomic(os.path.join(workdir, 'config.json'),
                             {'config': cell_config.to_dict(),
                              'data': {'source': digits.source}})
      logs.write_json_atomic(os.path.join(workdir, sweeps.RESULTS), {
          'final': record, 'mode': 'vmapped', 'objective': objective,
          'data': {'dataset': digits.dataset, 'source': digits.source,
                   'classes': list(cell_config.classes)},
          'train_seconds_for_group': time.time() - start})
  rows = sweeps.collect(sweep_dir)
  logs.write_json_atomic(os.path.join(sweep_dir, 'summary.json'), rows)
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
  vmap = flags.DEFINE_bool(
      'vmap', False, 'Train the cells of each objective together with vmap '
      '(faster; final-epoch results only, no per-epoch logs or checkpoints).')

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
    runner = run_vmapped_sweep if vmap.value else run_sweep
    rows = runner(config.value, workdir.value, cells)
    print(f'{len(rows)} finished cells in {workdir.value}')

  app.run(run)


if __name__ == '__main__':
  main()
