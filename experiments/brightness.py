r"""Item and brightness: a categorical and a continuous attribute, real images.

  python -m experiments.brightness --workdir=/tmp/brightness \
      [--config.objective=cmi --config.train_corr=0.9 --config.noise=0.8 ...]

Two Fashion-MNIST items (the class, categorical) dimmed to a brightness drawn
given the class (the value, continuous: :mod:`cmi_jax.data.brightness`);
train and val at ``train_corr``, ``test_anti`` at its negative,
``test_uncorr`` at 0. Writes what every run writes
(:mod:`experiments.driver`); each split's record holds the item's accuracy
and worst-group accuracy, and the brightness head's ``mse`` and ``r2``.
Started again with the same command, a run resumes where it stopped.
"""

from __future__ import annotations

from typing import Any, Mapping

import ml_collections
import numpy as np

from cmi_jax.data import brightness
from cmi_jax.data import sources
from cmi_jax.data.base import Splits
from experiments import common
from experiments import driver
from experiments import multi_digit_mnist
from experiments.configs import multi_digit as multi_digit_config


def check(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Refuses data fields that cannot make splits (ValueError names them)."""
  common.check_data_fields(config, 2)
  multi_digit_mnist.check_items(config)
  return config


def splits(config: Any, digits: sources.DigitSplits) -> Splits:
  """The train and evaluation splits of ``config`` from loaded ``digits``."""
  data = brightness.brightness_splits(
      digits, tuple(config.classes), config.train_corr, config.noise,
      config.patch, config.batch_size, config.seed)
  train = data.pop('train')
  # The items' counts per split; the brightness has no table.
  counts = {name: np.bincount(np.asarray(split.labels[:, 0], np.int64),
                              minlength=2)
            for name, split in {'train': train, **data}.items()}
  info = {'dataset': digits.dataset, 'source': digits.source,
          'num_images': digits.num_examples(),
          'classes': list(config.classes),
          'class_names': [multi_digit_mnist.item_names(digits.dataset,
                                                       config.classes), None]}
  return Splits(train, data, ('item', 'brightness'), brightness.NUM_CLASSES,
                counts, info)


def report(results: Mapping[str, Any]) -> None:
  """Prints each split's item accuracy and the brightness head's fit."""
  print(f"data: {results['data']['source']}")
  for split, summary in results['final']['eval'].items():
    print(f"{split:>12}: item accuracy {summary['accuracy']:.3f} (worst "
          f"group {summary['worst_group_accuracy']:.3f}), brightness MSE "
          f"{summary['mse']:.3f}, R^2 {summary['r2']:.3f}")


# Seed, noise and correlation change no shape (each split keeps its images),
# so the multi-digit rule of what a vmapped group may vary holds; the model
# and learning rates are the multi-digit experiment's.
SPEC = driver.Spec('brightness.py', multi_digit_config.PAPER_OPTIM, check,
                   multi_digit_mnist.load, splits,
                   multi_digit_mnist.vmap_varying)

if __name__ == '__main__':
  driver.main(SPEC, report)
