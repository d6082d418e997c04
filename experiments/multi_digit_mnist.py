r"""Correlated multi-digit MNIST: the paper's main experiment.

  python -m experiments.multi_digit_mnist --workdir=/tmp/md \
      [--config=experiments/configs/multi_digit.py[:fast]] \
      [--config.objective=cmi --config.train_corr=0.9 --config.noise=0.8 ...]

Writes to ``workdir`` what every run writes (:mod:`experiments.driver`):
``config.json``, ``log.jsonl``, ``results.json``, checkpoints, figures.
Started again with the same command, a run resumes where it stopped; a
changed config is refused unless its fields are named in ``--allow_change``.
"""

from __future__ import annotations

from typing import Any

import ml_collections
import numpy as np
from absl import logging

from cmi_jax import validate
from cmi_jax.data import correlation
from cmi_jax.data import multi_digit
from cmi_jax.data import sources
from experiments import cli
from experiments import common
from experiments import driver
from experiments.configs import multi_digit as multi_digit_config

# The fields that may differ inside a vmapped group: arrays of the
# MultiDigitDataset, so cells differing in them share every shape.
VMAP_VARYING = ('seed', 'noise', 'train_corr')


def check(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Refuses data fields that cannot make splits (ValueError names them)."""
  try:
    correlation.joint_table(config.train_corr, config.num_digits)
  except ValueError as e:
    raise ValueError(f'config.train_corr={config.train_corr!r}: {e}'
                     ) from None
  validate.number(config.noise, 'config.noise (occlusion threshold)', 0, 1)
  classes = tuple(config.classes)
  if len(classes) != 2 or len(set(classes)) != 2 or not all(
      0 <= int(c) <= 9 for c in classes):
    raise ValueError(f'config.classes must be two different class labels '
                     f'in 0..9; got {classes}.')
  validate.integer(config.patch, 'config.patch', 1)
  if config.epoch_size is not None and config.epoch_size < config.batch_size:
    raise ValueError(f'config.epoch_size={config.epoch_size} is smaller '
                     f'than one batch ({config.batch_size}).')
  common.subspace_sizes(config.z_dim, config.num_digits)
  return config


def vmap_varying(config: Any) -> tuple[str, ...]:
  """:data:`VMAP_VARYING`, less ``train_corr`` if the weighting depends on it.

  One trainer has one weighting, and ``subsample`` changes the epoch length.
  """
  if config.group_weighting in ('reweight', 'subsample') or (
      config.group_weighting == 'groupdro' and config.dro_size_adjustment > 0):
    return ('seed', 'noise')
  return VMAP_VARYING


def load(config: Any) -> sources.DigitSplits:
  """The digits of the config's dataset, from its source."""
  digits = sources.load_digits(config.dataset, config.source,
                               tfds_data_dir=config.tfds_data_dir,
                               manual_dir=config.manual_dir)
  logging.info('Digits from %s: %s', digits.source, digits.num_examples())
  return digits


def splits(config: Any, digits: sources.DigitSplits) -> driver.Splits:
  """The train and evaluation splits of ``config`` from loaded ``digits``."""
  data = multi_digit.multi_digit_splits(
      digits, tuple(config.classes), config.num_digits, config.train_corr,
      config.noise, config.patch, config.batch_size, config.seed)
  train = data.pop('train')
  if config.epoch_size is not None:
    train = train.replace(steps_per_epoch=config.epoch_size // train.batch_size)
  table = np.asarray(train.table)
  counts = {'train (expected per epoch)':
                table * train.steps_per_epoch * train.batch_size}
  counts.update({name: correlation.joint_counts(np.asarray(split.labels))
                 for name, split in data.items()})
  names = [sources.FASHION_MNIST_NAMES[int(c)]
           if digits.dataset == 'fashion_mnist' else str(int(c))
           for c in config.classes]
  info = {'dataset': digits.dataset, 'source': digits.source,
          'num_images': digits.num_examples(),
          'classes': list(config.classes),
          'class_names': [names] * config.num_digits}
  return driver.Splits(
      train, data, tuple(f'digit{k}' for k in range(config.num_digits)),
      table.shape, counts, info)


SPEC = driver.Spec('multi_digit.py', multi_digit_config.PAPER_OPTIM, check,
                   load, splits, vmap_varying)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_change=()) -> dict[str, Any]:
  """Runs ``config`` in ``workdir`` (:func:`experiments.driver.train`)."""
  return driver.train(SPEC, config, workdir, allow_change=allow_change)


def main() -> None:
  """Command line (flags defined here, not at import)."""
  allow_change = cli.define_allow_change_flag()

  def body(config, workdir):
    results = train_and_evaluate(config, workdir,
                                 allow_change=allow_change.value)
    print(f"data: {results['data']['source']}")
    for split, summary in results['final']['eval'].items():
      print(f"{split:>12}: accuracy {summary['accuracy']:.3f} "
            f"per digit {np.round(summary['accuracy_per_attribute'], 3)}")

  cli.run_config_main('multi_digit.py', body)


if __name__ == '__main__':
  main()
