"""NumPy references of the on-device multi-digit images.

The maths of :mod:`cmi_jax.data.multi_digit` in plain NumPy: the host loader
the throughput benchmarks time, and the tests' independent check of the
device path. Import as ``from benchmarks import numpy_reference`` from the
repository root.
"""

import numpy as np

from cmi_jax.data import correlation
from cmi_jax.data import multi_digit as md


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
  """Bilinear resampling matrix ``[n_out, n_in]`` (float64), half-pixel centres.

  Output pixel ``i`` samples input coordinate
  ``(i + 0.5) * n_in / n_out - 0.5``, clamped to the border. For upsampling
  this equals ``jax.image.resize(..., 'bilinear')`` (whose edge
  renormalisation amounts to clamping).
  """
  if n_in < 1 or n_out < n_in:
    raise ValueError(f'bilinear_matrix only upsamples; got n_in={n_in}, '
                     f'n_out={n_out} (need 1 <= n_in <= n_out).')
  x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
  lo = np.floor(x).astype(int)
  hi = np.minimum(lo + 1, n_in - 1)
  w_hi = x - lo
  matrix = np.zeros((n_out, n_in))
  np.add.at(matrix, (np.arange(n_out), lo), 1.0 - w_hi)
  np.add.at(matrix, (np.arange(n_out), hi), w_hi)
  return matrix


def _resize(x: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize of the last two axes of float ``x`` to ``size``^2."""
  rows = bilinear_matrix(x.shape[-2], size).astype(np.float32)
  cols = bilinear_matrix(x.shape[-1], size).astype(np.float32)
  return rows @ x @ cols.T


def compose(digits: np.ndarray, fields: np.ndarray, noise: float
            ) -> np.ndarray:
  """:func:`cmi_jax.data.multi_digit.compose` in NumPy (same shapes and maths).

  Args:
    digits: uint8 ``[B, K, H, W]``.
    fields: float ``[B, K, P, P]`` in [0, 1).
    noise: occlusion threshold in [0, 1].

  Returns:
    float32 ``[B, 32, 32 * K, 3]``.
  """
  digits, fields = np.asarray(digits), np.asarray(fields)
  md._check_compose_shapes(digits, fields)
  b, k = digits.shape[:2]
  x = _resize(digits.astype(np.float32) / np.float32(255.0), md.IMAGE_SIZE)
  field = _resize(fields.astype(np.float32), md.IMAGE_SIZE)
  x = np.where(field < np.float32(noise), np.float32(md.OCCLUDED_VALUE), x)
  x = x.transpose(0, 2, 1, 3).reshape(b, md.IMAGE_SIZE, k * md.IMAGE_SIZE)
  return np.repeat(x[..., None], md.NUM_CHANNELS, axis=-1).astype(np.float32)


def sample_batch(rng: np.random.Generator, bank: np.ndarray,
                 counts: np.ndarray, table: np.ndarray, noise: float,
                 patch: int, batch_size: int) -> dict[str, np.ndarray]:
  """One batch of a ``MultiDigitDataset`` in NumPy (same distribution).

  Args:
    rng: the NumPy generator of labels, digits and fields.
    bank: uint8 ``[2, M, H, W]`` digit bank (``multi_digit.build_digit_bank``).
    counts: int ``[2]`` valid images per class in ``bank``.
    table: joint table ``(2,) * K``.
    noise: occlusion threshold in [0, 1].
    patch: side P of the ``[P, P]`` occlusion field.
    batch_size: B.

  Returns:
    ``{'image': float32 [B, 32, 32*K, 3], 'labels': int32 [B, K]}``.
  """
  labels = correlation.sample_combinations(rng, np.asarray(table), batch_size)
  index = rng.integers(0, np.asarray(counts)[labels])
  fields = rng.random(labels.shape + (patch, patch), dtype=np.float32)
  return {'image': compose(np.asarray(bank)[labels, index], fields, noise),
          'labels': labels}
