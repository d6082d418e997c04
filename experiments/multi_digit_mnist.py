r"""Correlated multi-digit MNIST: the paper's main experiment.

  python -m experiments.multi_digit_mnist --workdir=/tmp/md \
      [--config=experiments/configs/multi_digit.py[:fast]] \
      [--config.objective=cmi --config.train_corr=0.9 --config.noise=0.8 ...]

Writes to ``workdir`` what :func:`experiments.common.run_experiment` writes.
Started again with the same command, a run resumes where it stopped; a
changed config is refused unless its fields are named in ``--allow_change``.
"""

from __future__ import annotations

from typing import Any

from absl import logging
import ml_collections
import numpy as np

from cmi_jax import validate
from experiments import common
from cmi_jax.data import correlation
from cmi_jax.data import multi_digit
from cmi_jax.data import sources
from experiments.configs import multi_digit as multi_digit_config


def resolve_config(config: ml_collections.ConfigDict
                   ) -> ml_collections.ConfigDict:
  """The config a run trains with: unset learning rates set (a copy)."""
  check_data_fields(config)
  return common.resolve_learning_rates(config, multi_digit_config.PAPER_OPTIM)


def check_data_fields(config: ml_collections.ConfigDict) -> None:
  """Refuses data fields that cannot make splits; ValueError names the flag."""
  try:
    correlation.joint_table(config.train_corr, config.num_digits)
  except ValueError as e:
    raise ValueError(f'--config.train_corr={config.train_corr!r}: {e}'
                     ) from None
  validate.number(config.noise, '--config.noise (occlusion threshold)', 0, 1)
  classes = tuple(config.classes)
  if len(classes) != 2 or len(set(classes)) != 2 or not all(
      0 <= int(c) <= 9 for c in classes):
    raise ValueError(f'--config.classes must be two different class labels '
                     f'in 0..9; got {classes}.')
  validate.integer(config.patch, '--config.patch', 1)
  if config.epoch_size is not None and config.epoch_size < config.batch_size:
    raise ValueError(f'--config.epoch_size={config.epoch_size} is smaller '
                     f'than one batch ({config.batch_size}).')


def make_splits(config: ml_collections.ConfigDict, digits: Any
                ) -> dict[str, Any]:
  """The train and evaluation splits of ``config`` from loaded ``digits``."""
  splits = multi_digit.multi_digit_splits(
      digits, tuple(config.classes), config.num_digits, config.train_corr,
      config.noise, config.patch, config.batch_size, config.seed)
  if config.epoch_size is not None:
    train = splits['train']
    splits['train'] = train.replace(
        steps_per_epoch=config.epoch_size // train.batch_size)
  return splits


def load_data(config: ml_collections.ConfigDict):
  """``(digits, splits, joint_counts)`` of the config's data."""
  digits = sources.load_digits(config.dataset, config.source,
                               tfds_data_dir=config.tfds_data_dir,
                               manual_dir=config.manual_dir)
  logging.info('Digits from %s: %s', digits.source, digits.num_examples())
  splits = make_splits(config, digits)
  counts = {'train (expected per epoch)': np.asarray(
      splits['train'].table) * splits['train'].steps_per_epoch
            * splits['train'].batch_size}
  for name in common.EVAL_SPLITS:
    counts[name] = correlation.joint_counts(np.asarray(splits[name].labels))
  return digits, splits, counts


def attribute_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """``digit0``, ``digit1``, ...: the attributes are the digit positions."""
  return tuple(f'digit{k}' for k in range(config.num_digits))


def data_info(config: ml_collections.ConfigDict, digits: Any
              ) -> dict[str, Any]:
  """What a run's ``results.json`` and ``config.json`` say of its data."""
  names = [sources.FASHION_MNIST_NAMES[int(c)]
           if digits.dataset == 'fashion_mnist' else str(int(c))
           for c in config.classes]
  return {'dataset': digits.dataset, 'source': digits.source,
          'num_images': digits.num_examples(),
          'classes': list(config.classes),
          'class_names': [names] * config.num_digits}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_change=()) -> dict[str, Any]:
  """Runs ``config`` in ``workdir`` (:func:`common.run_experiment`)."""
  config = resolve_config(config)
  # Fails fast on bad model fields, before the data are read.
  common.build_trainer(config, config.num_digits,
                       multi_digit_config.PAPER_OPTIM)
  digits, splits, counts = load_data(config)
  return common.run_experiment(
      config, workdir, splits, attribute_names=attribute_names(config),
      paper_optim=multi_digit_config.PAPER_OPTIM, joint_counts=counts,
      data_info=data_info(config, digits), allow_change=allow_change)


def main() -> None:
  """Command line (flags defined here, not at import)."""
  allow_change = common.define_allow_change_flag()

  def body(config, workdir):
    results = train_and_evaluate(config, workdir,
                                 allow_change=allow_change.value)
    print(f"data: {results['data']['source']}")
    for split, summary in results['final']['eval'].items():
      print(f"{split:>12}: accuracy {summary['accuracy']:.3f} "
            f"per digit {np.round(summary['accuracy_per_attribute'], 3)}")

  common.run_config_main('multi_digit.py', body)


if __name__ == '__main__':
  main()
