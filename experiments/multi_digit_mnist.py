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

import functools
from typing import Any, Mapping, Sequence

import ml_collections
import numpy as np
from absl import logging

from cmi_jax import validate
from cmi_jax.data import correlation
from cmi_jax.data import multi_digit
from cmi_jax.data import sources
from cmi_jax.data.base import Splits
from experiments import common
from experiments import driver
from experiments.configs import multi_digit as multi_digit_config


def check(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Refuses data fields that cannot make splits (ValueError names them)."""
  common.check_data_fields(config, config.num_digits)
  check_items(config)
  if config.epoch_size is not None and config.epoch_size < config.batch_size:
    raise ValueError(f'config.epoch_size={config.epoch_size} is smaller '
                     f'than one batch ({config.batch_size}).')
  return config


def check_items(config: ml_collections.ConfigDict) -> None:
  """Checks ``classes`` (two different labels in 0..9) and ``patch``."""
  classes = tuple(config.classes)
  if len(classes) != 2 or len(set(classes)) != 2 or not all(
      0 <= int(c) <= 9 for c in classes):
    raise ValueError(f'config.classes must be two different class labels '
                     f'in 0..9; got {classes}.')
  validate.integer(config.patch, 'config.patch', 1)


def item_names(dataset: str, classes: Sequence[int]) -> list[str]:
  """The names of ``classes`` (Fashion-MNIST's items, or the digits)."""
  return [sources.FASHION_MNIST_NAMES[int(c)] if dataset == 'fashion_mnist'
          else str(int(c)) for c in classes]


def vmap_varying(config: Any) -> tuple[str, ...]:
  """The fields that may differ inside a vmapped group: arrays of the
  MultiDigitDataset, so cells differing in them share every shape.

  Not ``train_corr`` if the weighting or CIRCE's regression depends on it:
  one trainer has one of each, and ``subsample`` changes the epoch length.
  """
  if config.objective == 'circe' or config.group_weighting in (
      'reweight', 'subsample') or (
      config.group_weighting == 'groupdro' and config.dro_size_adjustment > 0):
    return ('seed', 'noise')
  return ('seed', 'noise', 'train_corr')


def load(config: Any) -> sources.DigitSplits:
  """The digits of the config's dataset, from its source."""
  digits = sources.load_digits(config.dataset, config.source,
                               tfds_data_dir=config.tfds_data_dir,
                               manual_dir=config.manual_dir)
  logging.info('Digits from %s: %s', digits.source, digits.num_examples())
  return digits


def splits(config: Any, digits: sources.DigitSplits) -> Splits:
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
  names = item_names(digits.dataset, config.classes)
  info = {'dataset': digits.dataset, 'source': digits.source,
          'num_images': digits.num_examples(),
          'classes': list(config.classes),
          'class_names': [names] * config.num_digits}
  return Splits(
      train, data, tuple(f'digit{k}' for k in range(config.num_digits)),
      table.shape, counts, info)


def report(results: Mapping[str, Any]) -> None:
  """Prints a run's data and its accuracy per split and digit."""
  print(f"data: {results['data']['source']}")
  for split, summary in results['final']['eval'].items():
    print(f"{split:>12}: accuracy {summary['accuracy']:.3f} "
          f"per digit {np.round(summary['accuracy_per_attribute'], 3)}")


SPEC = driver.Spec('multi_digit.py', multi_digit_config.PAPER_OPTIM, check,
                   load, splits, vmap_varying)
train_and_evaluate = functools.partial(driver.train, SPEC)

if __name__ == '__main__':
  driver.main(SPEC, report)
