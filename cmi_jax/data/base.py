"""What the training engine consumes: batches, device-resident datasets, label checks.

A *batch* is a dict ``{'image': float32 [B, ...], 'labels': int32 [B, K]}``;
labels hold class indices, ``-1`` for a missing label.

A *device dataset* produces a whole epoch of batches inside one compiled call:
``epoch_plan(key)`` draws whatever is fixed for an epoch (a permutation, say),
``batch(plan, step)`` returns batch number ``step`` of that epoch. Both are pure,
jit-safe functions of arrays that live on the device, so
:func:`cmi_jax.train.train_epoch` can ``lax.scan`` over them with the host out
of the loop.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

Batch = dict[str, jax.Array]


@runtime_checkable
class DeviceDataset(Protocol):
  """A training set whose batches are generated on the device (see module doc)."""

  @property
  def steps_per_epoch(self) -> int:
    """Batches per epoch (static)."""
    ...

  @property
  def batch_size(self) -> int:
    """Examples per batch, B (static)."""
    ...

  def epoch_plan(self, key: jax.Array) -> Any:
    """What is fixed for one epoch (a key, a permutation), from ``key``."""
    ...

  def batch(self, plan: Any, step: jax.Array) -> Batch:
    """Batch ``step`` of the epoch: ``{'image': [B, ...], 'labels': [B, K]}``."""
    ...


@flax.struct.dataclass
class ArrayDataset:
  """A labelled image array held on the device, batched by a per-epoch shuffle.

  Attributes:
    images: uint8 ``[N, H, W, C]`` (or float ``[N, ...]``), scaled to [0, 1]
      when batched if uint8.
    labels: int32 ``[N, K]``, -1 for missing.
    batch_size: examples per batch (static).
    shuffle: draw a fresh permutation every epoch (else sequential order).
  The epoch has ``N // batch_size`` steps; the remainder is dropped so shapes
  stay static (a different remainder is dropped each epoch when shuffling).
  """
  images: jax.Array
  labels: jax.Array
  batch_size: int = flax.struct.field(pytree_node=False)
  shuffle: bool = flax.struct.field(pytree_node=False, default=True)

  @property
  def steps_per_epoch(self) -> int:
    """``N // batch_size``: the remainder is dropped."""
    return self.images.shape[0] // self.batch_size

  def epoch_plan(self, key: jax.Array) -> jax.Array:
    """The epoch's order of the N rows, int ``[N]``."""
    n = self.images.shape[0]
    if self.shuffle:
      return jax.random.permutation(key, n)
    return jnp.arange(n)

  def batch(self, plan: jax.Array, step: jax.Array) -> Batch:
    """Rows ``plan[step * B : (step + 1) * B]``, images scaled to [0, 1]."""
    index = jax.lax.dynamic_slice_in_dim(plan, step * self.batch_size,
                                         self.batch_size)
    return {'image': to_float_image(self.images[index]),
            'labels': self.labels[index]}


def to_float_image(images: jax.Array) -> jax.Array:
  """uint8 images -> float32 in [0, 1]; float images pass through as float32."""
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


def validate_labels(labels: np.ndarray | jax.Array, num_classes: Sequence[int],
                    names: Sequence[str] | None = None,
                    where: str = 'labels') -> None:
  """Host-side check of a label array where data enters the library.

  Args:
    labels: ``[N, K]`` integer labels, -1 for missing.
    num_classes: K ints.
    names: optional K attribute names used in the message.
    where: what the labels belong to (a split, a batch), for the message.

  Raises:
    ValueError: naming the attribute, if the shape is wrong, the labels are not
      integers, or a value lies outside ``[-1, num_classes[k])``.
  """
  labels = np.asarray(labels)
  num_classes = tuple(num_classes)
  if labels.ndim != 2 or labels.shape[1] != len(num_classes):
    raise ValueError(
        f'{where}: labels must have shape [N, K={len(num_classes)}] (one column '
        f'per attribute of num_classes={num_classes}); got {labels.shape}.')
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'{where}: labels must be integers (class index, -1 for '
                     f'missing); got dtype {labels.dtype}.')
  for k, n in enumerate(num_classes):
    column = labels[:, k]
    bad = (column < -1) | (column >= n)
    if np.any(bad):
      name = names[k] if names is not None else f'#{k}'
      value = int(column[np.argmax(bad)])
      raise ValueError(
          f'{where}: attribute {name} has label {value}, outside [-1, {n}) '
          f'({int(bad.sum())} such rows); labels must be a class index in '
          f'[0, {n}) or -1 for missing.')


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
