r"""Disentanglement metrics of a finished run, from one of its checkpoints.

  python -m experiments.evaluate_disentanglement --workdir=RUN_DIR \
      [--checkpoint=best_val_accuracy|best_val_loss|latest \
       --splits=test_uncorr,test_anti --max_rows=0 --seed=0]

Rebuilds the run of ``RUN_DIR/config.json`` (:mod:`experiments.celeba` or
:mod:`experiments.multi_digit_mnist`), restores the checkpoint and scores the
codes ``z`` of each split with :func:`cmi_jax.metrics.compute_all`, the
attributes as factors. Writes ``RUN_DIR/disentanglement.json`` and ``.md``,
with each split's accuracy as a check that the right checkpoint was read.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np

from cmi_jax import checkpoint as ckpt
from cmi_jax import evaluation
from cmi_jax import metrics
from cmi_jax import plots
from cmi_jax import records
from cmi_jax import train
from cmi_jax import validate
from cmi_jax.data import base as data_base
from cmi_jax.data.base import DeviceDataset
from experiments import celeba as celeba_experiment
from experiments import cli
from experiments import common
from experiments import multi_digit_mnist

CHECKPOINTS = ckpt.BEST_SERIES + (ckpt.LATEST,)
SPLITS = ('test_uncorr', 'test_anti')
OUTPUT_JSON = 'disentanglement.json'
OUTPUT_MD = 'disentanglement.md'


def experiment_kind(config: Mapping[str, Any],
                    data_info: Mapping[str, Any]) -> str:
  """``'celeba'`` or ``'multi_digit'``; ValueError for another config."""
  if data_info.get('dataset') == 'celeba' or 'celeba_dir' in config:
    return 'celeba'
  if 'num_digits' in config and 'classes' in config:
    return 'multi_digit'
  raise ValueError(
      f'cannot tell the experiment of this config.json (dataset '
      f"{data_info.get('dataset')!r}, fields {sorted(config)[:8]}...): only "
      f'runs of experiments.celeba and experiments.multi_digit_mnist can be '
      'evaluated.')


def rebuild(config: ml_collections.ConfigDict, kind: str
            ) -> tuple[train.Trainer, dict[str, DeviceDataset],
                       tuple[str, ...]]:
  """The trainer, evaluation datasets and attribute names of a saved run.

  The data are rebuilt exactly: they depend only on the resolved config.
  """
  spec = (celeba_experiment if kind == 'celeba' else multi_digit_mnist).SPEC
  splits = spec.splits(config, spec.load(config))
  return common.build_trainer(config, splits), splits.evals, splits.attributes


def markdown_table(report: Mapping[str, Any]) -> str:
  """A Markdown table: one row per metric, one column per split."""
  splits = report['splits']
  names = sorted({m for s in splits.values() for m in s['metrics']})

  def row(name, values):
    return f'| {name} | ' + ' | '.join(map(str, values)) + ' |'

  def number(value):
    return '–' if value is None or not np.isfinite(value) else f'{value:.4f}'

  return '\n'.join([
      f"Disentanglement of `{report['workdir']}` ({report['experiment']}, "
      f"checkpoint {report['checkpoint']} at epoch {report['epoch']}; "
      f"factors: {', '.join(report['attributes'])}).", '',
      row('metric', splits), '|---' * (len(splits) + 1) + '|',
      row('rows', [s['num_rows'] for s in splits.values()]),
      row('accuracy', [number(s['accuracy']) for s in splits.values()])] + [
          row(name, [number(s['metrics'].get(name)) for s in splits.values()])
          for name in names]) + '\n'


def evaluate_run(workdir: str, checkpoint: str = ckpt.BEST_ACCURACY,
                 splits: Sequence[str] = SPLITS, max_rows: int = 0,
                 seed: int = 0) -> dict[str, Any]:
  """Computes and writes the disentanglement metrics of one run.

  Scores at most ``max_rows`` rows per split (0: all); ``seed`` seeds the
  metrics' sampling and the row sub-sample. Returns the report written to
  ``workdir/disentanglement.json``: ``experiment``, ``checkpoint``,
  ``epoch``, ``attributes`` and, per split, ``num_rows``, ``accuracy``
  (mean over attributes, of the whole split) and ``metrics``
  (``'<metric>/<score>' -> float``).

  Raises:
    ValueError: for malformed inputs; the message names the fix.
  """
  workdir = os.path.abspath(workdir)
  saved, info = records.read_config(workdir)
  config = ml_collections.ConfigDict(saved)
  kind = experiment_kind(config, info)
  validate.integer(max_rows, '--max_rows', 0, hint='0: all rows.')
  validate.choice(checkpoint, '--checkpoint', CHECKPOINTS)
  available = [s for s in CHECKPOINTS if s in ckpt.saved_series(workdir)]
  if checkpoint not in available:
    raise ValueError(
        f'{workdir} has no {checkpoint!r} checkpoint (under '
        f'{os.path.join(workdir, "checkpoints")}); it has '
        f'{available or "none"}: pass --checkpoint= one of those, or finish '
        'the run first.')
  trainer, data, names = rebuild(config, kind)
  if not splits or any(s not in data for s in splits):
    raise ValueError(f'--splits {list(splits)}: each must be one of '
                     f'{list(data)} (at least one).')
  # Only shapes and dtypes are needed; eval_shape runs no initialiser.
  like = jax.eval_shape(trainer.init, jax.random.PRNGKey(config.seed),
                        data_base.first_batches(data[splits[0]], 1)['image'],
                        config.disentangle_weight)
  checkpoints = ckpt.RunCheckpoints(workdir)
  try:
    state, meta = checkpoints.restore(checkpoint, like)
  finally:
    checkpoints.close()
  logging.info('Restored %s of %s (epoch %d).', checkpoint, workdir,
               meta['epoch'])
  report = {'workdir': workdir, 'experiment': kind, 'checkpoint': checkpoint,
            'epoch': int(meta['epoch']), 'attributes': list(names),
            'seed': seed, 'max_rows': max_rows, 'splits': {}}
  for split in splits:
    codes, factors, summary = evaluation.codes_and_labels(
        trainer, state, data[split], max_rows, seed)
    try:
      scores = metrics.compute_all(codes, factors, seed=seed)
    except ValueError as e:
      raise ValueError(f'split {split!r} ({len(codes)} rows): {e}') from e
    report['splits'][split] = {
        'num_rows': len(codes), 'accuracy': summary['accuracy'],
        'accuracy_per_attribute': summary['accuracy_per_attribute'],
        'metrics': scores}
    logging.info('%s: %d rows, accuracy %.3f, DCI disentanglement %.3f.',
                 split, len(codes), summary['accuracy'],
                 scores['dci/disentanglement'])
  if jax.process_index() == 0:
    plots.write_outputs(workdir, {OUTPUT_JSON: report,
                                    OUTPUT_MD: markdown_table(report)})
  return report


def main() -> None:
  """Command line (flags defined here, not at import)."""
  workdir = flags.DEFINE_string('workdir', None, 'The run directory.')
  checkpoint = flags.DEFINE_enum('checkpoint', ckpt.BEST_ACCURACY,
                                 list(CHECKPOINTS), 'Checkpoint to restore.')
  splits = flags.DEFINE_list('splits', list(SPLITS),
                             'Evaluation splits whose codes are scored.')
  max_rows = flags.DEFINE_integer(
      'max_rows', 0, 'Score at most this many rows per split (0: all).')
  seed = flags.DEFINE_integer('seed', 0, 'Seed of the metrics.')

  def run(argv):
    del argv
    if not workdir.value:
      raise app.UsageError('--workdir is required (a finished run directory).')
    print(markdown_table(evaluate_run(workdir.value, checkpoint.value,
                                      splits.value, max_rows.value,
                                      seed.value)))

  cli.run_main(run, workdir=lambda: workdir.value)


if __name__ == '__main__':
  main()
