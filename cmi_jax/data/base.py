"""What the training engine consumes: batches, device datasets, label checks.

A *batch* is a dict ``{'image': float32 [B, ...], 'labels': int32 [B, K]}``;
labels hold class indices, ``-1`` for a missing label.

A *device dataset* (:class:`DeviceDataset`) makes a whole epoch inside one
compiled call: ``epoch_plan(key)`` draws what is fixed for an epoch (a
permutation, say), ``batch(plan, step)`` returns batch ``step``; both are
pure and jit-safe, so :func:`cmi_jax.train.train_epoch` can scan them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, Sequence, runtime_checkable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import attributes
from cmi_jax import validate

Batch = dict[str, jax.Array]


@runtime_checkable
class DeviceDataset(Protocol):
  """A training set whose batches are generated on the device."""

  @property
  def steps_per_epoch(self) -> int:
    """Batches per epoch (static)."""

  @property
  def batch_size(self) -> int:
    """Examples per batch, B (static)."""

  def epoch_plan(self, key: jax.Array) -> Any:
    """What is fixed for one epoch (a key, a permutation), from ``key``."""

  def batch(self, plan: Any, step: jax.Array) -> Batch:
    """Batch ``step``: ``{'image': [B, ...], 'labels': [B, K]}``."""


@flax.struct.dataclass
class ArrayDataset:
  """A labelled image array held on the device, batched by a per-epoch shuffle.

  Attributes:
    images: uint8 ``[N, H, W, C]`` (or float ``[N, ...]``), scaled to [0, 1]
      when batched if uint8.
    labels: int32 ``[N, K]``, -1 for missing.
    batch_size: static.
    shuffle: a fresh permutation every epoch (else sequential order).
  """
  images: jax.Array
  labels: jax.Array
  batch_size: int = flax.struct.field(pytree_node=False)
  shuffle: bool = flax.struct.field(pytree_node=False, default=True)

  @property
  def steps_per_epoch(self) -> int:
    """``N // batch_size``; the remainder is dropped (shapes stay static)."""
    return self.images.shape[0] // self.batch_size

  def epoch_plan(self, key: jax.Array) -> jax.Array:
    """The epoch's order of the N rows, int ``[N]``."""
    n = self.images.shape[0]
    return jax.random.permutation(key, n) if self.shuffle else jnp.arange(n)

  def batch(self, plan: jax.Array, step: jax.Array) -> Batch:
    """Rows ``plan[step * B : (step + 1) * B]``, images scaled to [0, 1]."""
    return gather_batch(self.images, self.labels, plan, step, self.batch_size)


@flax.struct.dataclass
class GroupBalancedDataset:
  """An :class:`ArrayDataset` whose every epoch is a group-balanced sample.

  Each epoch draws, without replacement, ``per_group`` rows (the smallest
  group's size) from each group (combination of attribute values) and
  shuffles them: "simple data balancing" (Idrissi et al., 2022). Rows with a
  missing label are never drawn. Build it with :func:`group_balanced`.

  Attributes:
    images, labels, batch_size: as in :class:`ArrayDataset`.
    group_rows: int32 ``[G, n_max]`` the rows of each group, padded.
    group_sizes: int32 ``[G]``.
    per_group: rows drawn per group and epoch (static).
  """
  images: jax.Array
  labels: jax.Array
  group_rows: jax.Array
  group_sizes: jax.Array
  per_group: int = flax.struct.field(pytree_node=False)
  batch_size: int = flax.struct.field(pytree_node=False)

  @property
  def steps_per_epoch(self) -> int:
    """``G * per_group // batch_size``."""
    return self.group_rows.shape[0] * self.per_group // self.batch_size

  def epoch_plan(self, key: jax.Array) -> jax.Array:
    """``G * per_group`` distinct rows, ``per_group`` per group, shuffled."""
    k_groups, k_order = jax.random.split(key)
    scores = jax.random.uniform(k_groups, self.group_rows.shape)
    # Padding positions sort last, so each group draws only its own rows.
    valid = jnp.arange(self.group_rows.shape[1]) < self.group_sizes[:, None]
    order = jnp.argsort(jnp.where(valid, scores, 2.0), axis=1)
    picked = jnp.take_along_axis(self.group_rows, order, 1)[:, :self.per_group]
    return jax.random.permutation(k_order, picked.reshape(-1))

  def batch(self, plan: jax.Array, step: jax.Array) -> Batch:
    """Rows ``plan[step * B : (step + 1) * B]``, images scaled to [0, 1]."""
    return gather_batch(self.images, self.labels, plan, step, self.batch_size)


@dataclasses.dataclass
class Splits:
  """What a run trains and evaluates on, from one config.

  Attributes:
    train: the training dataset.
    evals: the evaluation splits by name, in report order.
    attributes: the K attribute names.
    num_classes: the K class counts, from the data.
    joint_counts: label counts per split (arrays shaped ``num_classes``),
      saved as ``joint_counts.json`` and drawn.
    info: what the run's data are, saved in ``config.json`` and
      ``results.json`` under ``data``.
  """
  train: Any
  evals: dict[str, Any]
  attributes: tuple[str, ...]
  num_classes: tuple[int, ...]
  joint_counts: dict[str, Any]
  info: dict[str, Any]


def group_balanced(dataset: ArrayDataset, num_classes: Sequence[int]
                   ) -> GroupBalancedDataset:
  """The :class:`GroupBalancedDataset` version of a training set.

  ValueError if a group is empty or a balanced epoch is under one batch.
  """
  labels, num_classes = _group_columns(dataset.labels, num_classes)
  index = np.where((labels >= 0).all(1), np.ravel_multi_index(
      tuple(np.maximum(labels, 0).T), num_classes), -1)
  rows = [np.flatnonzero(index == g) for g in range(int(np.prod(num_classes)))]
  sizes = np.array([len(r) for r in rows])
  if sizes.min() == 0:
    empty = int(np.argmin(sizes))
    name = ''.join(str(v) for v in np.unravel_index(empty, num_classes))
    raise ValueError(
        f'group {name} has no example with every label, so no balanced '
        'sample exists; use group_weighting=reweight or groupdro instead.')
  per_group = int(sizes.min())
  if len(rows) * per_group < dataset.batch_size:
    raise ValueError(
        f'a balanced epoch has {len(rows) * per_group} examples ({per_group} '
        f'per group), fewer than one batch of {dataset.batch_size}.')
  padded = np.stack([np.pad(r, (0, sizes.max() - len(r)), mode='edge')
                     for r in rows]).astype(np.int32)
  return GroupBalancedDataset(
      images=dataset.images, labels=dataset.labels,
      group_rows=jnp.asarray(padded), group_sizes=jnp.asarray(sizes, jnp.int32),
      per_group=per_group, batch_size=dataset.batch_size)


def subsample_balanced(train_data: Any, num_classes: Sequence[int]) -> Any:
  """The training set of ``group_weighting=subsample``: each group equally.

  A stored split draws a group-balanced subsample every epoch
  (:func:`group_balanced`); a generated stream (a joint
  ``table``) draws from the uniform table, its epoch shrunk to
  ``G * min_g p(g)`` of its length.
  """
  if hasattr(train_data, 'table'):
    table = np.asarray(train_data.table, np.float64)
    steps = max(1, int(round(train_data.steps_per_epoch * table.size
                             * table.min())))
    return train_data.replace(
        table=jnp.full(table.shape, 1.0 / table.size, jnp.float32),
        steps_per_epoch=steps)
  if not hasattr(train_data, 'images') or not hasattr(train_data, 'replace'):
    raise ValueError('config.group_weighting=subsample needs the training '
                     'images on the device (config.data_placement=device).')
  return group_balanced(train_data, num_classes)


def _group_columns(labels: Any, num_classes: Sequence[int]
                   ) -> tuple[np.ndarray, tuple[int, ...]]:
  """The categorical columns of ``labels`` ``[N, K]`` (int64), and their
  class counts: the attributes that define groups."""
  columns = attributes.categorical(num_classes)
  return (np.asarray(labels)[:, columns].astype(np.int64),
          tuple(int(num_classes[k]) for k in columns))


def group_counts(data: Any, num_classes: Sequence[int]) -> np.ndarray:
  """Examples per group of attribute values in an epoch of ``data``, ``[G]``.

  For a generated stream (a joint ``table``) the expected counts, otherwise
  the fully labelled rows of each group.
  """
  if hasattr(data, 'table'):
    table = np.asarray(data.table, np.float64).reshape(-1)
    return table * data.steps_per_epoch * data.batch_size
  labels, num_classes = _group_columns(data.labels, num_classes)
  full = (labels >= 0).all(1)
  index = np.ravel_multi_index(tuple(np.maximum(labels[full], 0).T),
                               num_classes)
  return np.bincount(index, minlength=int(np.prod(num_classes))).astype(
      np.float64)


def heldout_labels(train_data: Any, num_classes: Sequence[int],
                   fraction: float) -> np.ndarray:
  """CIRCE's held-out labels ``[M, K]``, ``M = fraction x`` an epoch.

  Drawn (a fixed stream, not the run's seed) from the joint distribution of
  the training split's fully labelled rows (:func:`group_counts`), apart
  from the training batches; labels are all the regression reads, so no
  training row is set aside, and every seed and noise level of a sweep gets
  the same regression. With a continuous attribute (float labels) the
  held-out rows are fully labelled training rows, drawn with replacement.
  """
  rows = max(2, int(round(fraction * train_data.steps_per_epoch
                          * train_data.batch_size)))
  if attributes.any_continuous(num_classes):
    labels = np.asarray(train_data.labels)
    labels = labels[np.asarray(attributes.labelled(labels, num_classes)).all(1)]
    return labels[np.random.default_rng(0).choice(len(labels), rows)]
  counts = group_counts(train_data, num_classes)
  groups_ = np.random.default_rng(0).choice(len(counts), rows,
                                            p=counts / counts.sum())
  return np.stack(np.unravel_index(groups_, tuple(num_classes)), 1)


def first_batches(dataset: DeviceDataset, count: int) -> dict[str, np.ndarray]:
  """At least ``count`` examples from the first batches of a dataset."""
  plan = dataset.epoch_plan(jax.random.PRNGKey(0))
  batches, total = [], 0
  for step in range(dataset.steps_per_epoch):
    batch = jax.device_get(dataset.batch(plan, step))
    batches.append(batch)
    total += len(batch['labels'])
    if total >= count:
      break
  return {k: np.concatenate([b[k] for b in batches])[:count]
          for k in batches[0]}


def gather_batch(images: jax.Array, labels: jax.Array, plan: jax.Array,
                 step: jax.Array, batch_size: int) -> Batch:
  """Rows ``plan[step * B : (step + 1) * B]`` of an array dataset."""
  index = jax.lax.dynamic_slice_in_dim(plan, step * batch_size, batch_size)
  return {'image': to_float_image(images[index]), 'labels': labels[index]}


def to_float_image(images: jax.Array) -> jax.Array:
  """uint8 images -> float32 in [0, 1]; float images pass through as float32."""
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


def validate_labels(labels: np.ndarray | jax.Array, num_classes: Sequence[int],
                    names: Sequence[str] | None = None,
                    where: str = 'labels') -> None:
  """Host-side check of a label array where data enters the library.

  ``labels`` are ``[N, K]`` integers, -1 for missing, each below its
  ``num_classes``; with a continuous attribute (count 0) floats, its column
  any value (NaN missing) and the others whole numbers. The optional K
  ``names`` and ``where`` (a split, a batch) go into the ValueError message.
  """
  labels = np.asarray(labels)
  num_classes = tuple(num_classes)
  continuous = attributes.any_continuous(num_classes)
  spec = f'{"floating" if continuous else "integer"} [N, {len(num_classes)}]'
  validate.arrays(where, {'labels': (labels, spec)},
                  hint='Labels are class indices (-1 for missing), one column '
                  f'per attribute of num_classes={num_classes}'
                  + ('; float, a value (NaN: missing) where the count is 0.'
                     if continuous else '.'))
  for k in attributes.categorical(num_classes):
    column, n = labels[:, k], num_classes[k]
    bad = (column < -1) | (column >= n) | (column != np.round(column))
    if bad.any():
      name = names[k] if names is not None else f'#{k}'
      value = column[np.argmax(bad)]
      raise ValueError(f'{where}: attribute {name} has label {value:g}, '
                       f'outside [-1, {n}) ({int(bad.sum())} such rows); '
                       f'labels must be a class index in [0, {n}) or -1 for '
                       'missing.')
