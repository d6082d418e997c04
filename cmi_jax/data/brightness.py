"""One item and a continuous nuisance: its brightness, correlated with its class.

A real-image benchmark with one categorical and one continuous attribute.
Every image of two classes of a digit dataset (e.g. Fashion-MNIST
T-shirt/top vs Trouser) gets a value ``v``, is dimmed to the brightness
``b(v) = 0.2 + 0.8 sigmoid(1.5 v)`` and occluded by the paper's blobs at
``noise`` (gray, whatever ``v``). Its labels are ``[y, v]`` (float32): the
class index in ``classes`` and the value, with class counts ``(2, 0)``
(:data:`cmi_jax.attributes.CONTINUOUS`).

The value is drawn given the class: ``v = c s + sqrt(1 - c^2) eps`` with
``s = 2y - 1`` and ``eps ~ N(0, 1)``, so ``v`` has unit variance and
``corr(v, s) = c`` when the classes are balanced. Train and val are at
``c = train_corr``, ``test_anti`` at ``-c`` and ``test_uncorr`` at 0; a model
that reads the class off the brightness is right on train and val and wrong
on ``test_anti``.

Every split is a fixed :class:`~cmi_jax.data.base.ArrayDataset` of uint8
``[N, 28, 28, 1]`` images: ``v`` and the occlusion are drawn once per image
(seeded by ``seed``). The evaluation splits keep the largest multiple of the
batch size of their rows (fewer than ``batch_size`` left out).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import validate
from cmi_jax.data import occlusion
from cmi_jax.data.base import ArrayDataset

# The class counts of the labels [y, v].
NUM_CLASSES = (2, 0)
OCCLUDED_VALUE = 0.5  # gray, as the multi-digit data
# Which images each split reads, and the sign of its correlation.
SPLITS = {'train_eval': ('train', 1.0), 'val': ('val', 1.0),
          'test_anti': ('test', -1.0), 'test_uncorr': ('test', 0.0)}


def brightness(values: np.ndarray) -> np.ndarray:
  """``b(v) = 0.2 + 0.8 sigmoid(1.5 v)``, in (0.2, 1)."""
  return 0.2 + 0.8 / (1.0 + np.exp(-1.5 * values))


def nuisance_values(classes: np.ndarray, corr: float,
                    rng: np.random.Generator) -> np.ndarray:
  """``v = c s + sqrt(1 - c^2) eps`` for class indices ``classes`` ``[N]``."""
  signs = 2.0 * classes - 1.0
  return corr * signs + np.sqrt(1.0 - corr**2) * rng.standard_normal(
      len(classes))


def render(images: np.ndarray, values: np.ndarray, noise: float, patch: int,
           key: jax.Array) -> np.ndarray:
  """Images uint8 ``[N, 28, 28]`` dimmed by ``b(values)``, then occluded.

  Returns uint8 ``[N, 28, 28, 1]``.
  """
  n, height, width = images.shape
  dimmed = images.astype(np.float32) / 255.0 * brightness(values)[:, None,
                                                                   None]
  fields = jax.random.uniform(key, (n, patch, patch))
  hidden = np.asarray(occlusion.occluded(fields, height, width, noise))
  out = np.where(hidden, OCCLUDED_VALUE, dimmed)
  return np.round(out * 255.0).astype(np.uint8)[..., None]


def _pick(images: np.ndarray, labels: np.ndarray, classes: Sequence[int],
          where: str) -> tuple[np.ndarray, np.ndarray]:
  """The images of ``classes`` and their class indices (0, 1)."""
  keep = np.isin(labels, classes)
  index = (labels[keep] == classes[1]).astype(np.int64)
  if not keep.any() or index.min() == index.max():
    raise ValueError(f'{where} has no images of both classes {tuple(classes)};'
                     ' pick two classes of the dataset.')
  return images[keep], index


def brightness_splits(digits: Any, classes: Sequence[int] = (0, 1),
                      train_corr: float = 0.9, noise: float = 0.0,
                      patch: int = 4, batch_size: int = 100, seed: int = 0
                      ) -> dict[str, ArrayDataset]:
  """``train``, ``train_eval``, ``val``, ``test_anti`` and ``test_uncorr``.

  ``digits``: a :class:`~cmi_jax.data.sources.DigitSplits`; ``classes``: two
  of its labels (class indices 0 and 1, in this order). ``train`` is shuffled
  every epoch; ``train_eval`` holds the same images and values in order.
  """
  validate.number(train_corr, 'train_corr', -1, 1)
  validate.number(noise, 'noise', 0, 1)
  validate.integer(patch, 'patch', 1)
  validate.integer(batch_size, 'batch_size', 1)
  classes = tuple(int(c) for c in classes)
  if len(classes) != 2 or classes[0] == classes[1]:
    raise ValueError(f'classes must be two different labels; got {classes}.')
  rendered = {}
  for i, (name, (source, sign)) in enumerate(SPLITS.items()):
    images, y = _pick(*digits.split(source), classes, f'the {source} split')
    rng = np.random.default_rng([seed, i])
    if name != 'train_eval':  # Whole batches; train_eval keeps train's rows.
      order = rng.permutation(len(y))[:len(y) // batch_size * batch_size]
      images, y = images[order], y[order]
    v = nuisance_values(y, sign * train_corr, rng)
    x = render(images, v, noise, patch, jax.random.key(
        int(rng.integers(2**31))))
    rendered[name] = (x, np.stack([y, v], 1).astype(np.float32))
  train_images, train_labels = rendered['train_eval']
  out = {'train': ArrayDataset(jnp.asarray(train_images),
                               jnp.asarray(train_labels), batch_size)}
  for name, (x, labels) in rendered.items():
    out[name] = ArrayDataset(jnp.asarray(x), jnp.asarray(labels), batch_size,
                             shuffle=False)
  return out
