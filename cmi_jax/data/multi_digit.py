"""Correlated multi-digit images, generated on the device.

A sample is K digit images side by side; digit k shows class ``classes[0]``
(label 0) or ``classes[1]`` (label 1), the K labels following a joint table
(:mod:`cmi_jax.data.correlation`). Each 28x28 digit is

1. chosen uniformly among the images of its class in the split,
2. resized bilinearly to 32x32 (half-pixel centres, as ``jax.image.resize``),
3. occluded (:mod:`cmi_jax.data.occlusion`, one ``patch`` x ``patch`` field
   per digit): occluded pixels are set to gray (0.5),
4. made 3-channel; the K digits are concatenated along the width.

A batch is ``{'image': float32 [B, 32, 32*K, 3] in [0, 1], 'labels': int32
[B, K]}``, made inside ``jit``. ``noise`` and ``table`` are array fields, so
a sweep can ``jax.vmap`` over them. ``benchmarks/numpy_reference.py`` holds the
NumPy reference.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import programs
from cmi_jax import validate
from cmi_jax.data import correlation
from cmi_jax.data import occlusion
from cmi_jax.data.base import Batch

IMAGE_SIZE = 32  # output side of every digit (pixels)
NUM_CHANNELS = 3
OCCLUDED_VALUE = 0.5  # gray
DEFAULT_CLASSES = (3, 8)
DEFAULT_CORR = 0.9


# ------------------------------------------------------------------ composition
def _check_compose_shapes(digits: Any, fields: Any) -> None:
  """Static shape checks of :func:`compose` (and of its NumPy reference)."""
  validate.arrays('compose', {'digits': (digits, 'uint8 [B, K, H, W]'),
                              'fields': (fields, '[B, K, P, P]')},
                  'One square field per digit.', H=IMAGE_SIZE, W=IMAGE_SIZE,
                  P=IMAGE_SIZE)


def compose(digits: jax.Array, fields: jax.Array, noise: jax.Array | float
            ) -> jax.Array:
  """Digits uint8 ``[B, K, H, W]`` (H, W <= 32), occluded by the fields.

  ``fields`` are float ``[B, K, P, P]`` in [0, 1), ``noise`` the scalar
  threshold in [0, 1]. Returns float32 ``[B, 32, 32 * K, 3]`` in [0, 1].
  """
  _check_compose_shapes(digits, fields)
  b, k = digits.shape[:2]
  x = jax.image.resize(digits.astype(jnp.float32) / 255.0,
                       (b, k, IMAGE_SIZE, IMAGE_SIZE), 'bilinear')
  x = jnp.where(occlusion.occluded(fields, IMAGE_SIZE, IMAGE_SIZE, noise),
                OCCLUDED_VALUE, x)
  # [B, K, 32, 32] -> [B, 32, K, 32] -> [B, 32, K*32]: digits side by side.
  x = x.transpose(0, 2, 1, 3).reshape(b, IMAGE_SIZE, k * IMAGE_SIZE)
  return jnp.broadcast_to(x[..., None], x.shape + (NUM_CHANNELS,))


# -------------------------------------------------------------- input checks
def _check_common(num_digits: Any, corr: Any, table: Any, noise: Any,
                  patch: Any, seed: Any
                  ) -> tuple[np.ndarray, float, int, int]:
  """Every builder's ``(resolve_table(...), noise, patch, seed)``, validated."""
  table = resolve_table(num_digits, corr, table)
  noise = validate.number(noise, 'noise', 0, 1, hint=(
      'It is the occlusion threshold: 0 occludes nothing, 1 everything. To '
      'sweep noise, build once and jax.vmap over dataset.replace(noise=...).'))
  patch = validate.integer(patch, 'patch', 1, IMAGE_SIZE, hint=(
      'It is the side of the occlusion field (the paper: 4).'))
  return table, noise, patch, validate.integer(seed, 'seed', 0, 2**32 - 1)


def resolve_table(num_digits: int, corr: float | None = None,
                  table: Any = None) -> np.ndarray:
  """The float64 joint table ``(2,) * K`` of K = ``num_digits`` labels.

  An explicit ``table`` is normalised; else ``corr`` (default 0.9; in
  [-1, 1] for K = 2, [0, 1] for K > 2) gives
  :func:`cmi_jax.data.correlation.joint_table`.
  """
  num_digits = validate.integer(num_digits, 'num_digits', 1)
  if corr is not None and table is not None:
    raise ValueError('pass either corr or table, not both (table fixes the '
                     'joint distribution, corr builds the paper\'s table).')
  if table is not None:
    table = correlation.validate_table(table)
    if table.shape != (2,) * num_digits:
      raise ValueError(
          f'table has shape {table.shape} but num_digits={num_digits} needs '
          f'{(2,) * num_digits}; give one axis of size 2 per digit.')
    return table
  corr = validate.number(DEFAULT_CORR if corr is None else corr, 'corr')
  validate.integer(num_digits, 'num_digits', 2, hint=(
      'corr needs two or more digits; for one, pass table=[p0, p1].'))
  return correlation.joint_table(corr, num_digits)  # checks corr's range


def build_digit_bank(images: Any, labels: Any,
                     classes: Sequence[int] = DEFAULT_CLASSES,
                     where: str = 'images') -> tuple[np.ndarray, np.ndarray]:
  """Groups the images ``[N, H, W]`` (labels ``[N]``) of two classes.

  Returns ``(bank, counts)``: uint8 ``[2, M, H, W]`` with the images of
  ``classes[j]`` first in row ``j`` (in their original order, zero padding
  after them; M is the larger count) and int32 ``[2]`` counts.
  """
  images, labels = np.asarray(images), np.asarray(labels)
  validate.arrays(where, {'images': (images, 'uint8 [N, H, W]'),
                          'labels': (labels, 'integer [N]')},
                  'Pass the raw 28x28 pixels, no channel axis (digits are only '
                  'upsampled), and one class per image.', H=IMAGE_SIZE,
                  W=IMAGE_SIZE)
  present = sorted(int(c) for c in np.unique(labels))
  pair = tuple(classes) if np.ndim(classes) == 1 else ()
  if (len(pair) != 2 or pair[0] == pair[1] or not all(
      isinstance(c, numbers.Integral) and not isinstance(c, bool)
      for c in pair)):
    raise ValueError(f'classes must be two different integer class ids '
                     f'(label 0, label 1), e.g. (3, 8); got {classes!r}. '
                     f'Classes present in {where}: {present}.')
  for c in pair:
    if int(c) not in present:
      raise ValueError(f'class {int(c)} has no image in {where}; classes '
                       f'present: {present}. Choose classes from those.')
  members = [np.flatnonzero(labels == c) for c in pair]
  counts = np.array([len(m) for m in members], np.int32)
  bank = np.zeros((2, counts.max()) + images.shape[1:], np.uint8)
  for j, m in enumerate(members):
    bank[j, :len(m)] = images[m]
  return bank, counts


def _check_batch_size(batch_size: Any, epoch_size: int, where: str) -> int:
  return validate.integer(batch_size, 'batch_size', 1, epoch_size, hint=(
      f'One epoch of {where} has {epoch_size} samples (its images of the two '
      'classes): use a smaller batch or a larger split.'))


# ------------------------------------------------------------------ datasets
@flax.struct.dataclass
class _OccludedDigits:
  """Fields and rendering shared by the two multi-digit datasets."""
  bank: jax.Array
  noise: jax.Array
  batch_size: int = flax.struct.field(pytree_node=False)
  patch: int = flax.struct.field(pytree_node=False)

  def _render(self, labels: jax.Array, index: jax.Array, key: jax.Array
              ) -> Batch:
    """Digits ``bank[labels, index]`` occluded by fields drawn from ``key``."""
    # U[0, 1) fields [B, K, patch, patch], drawn flat and reshaped: XLA:CPU
    # compiles threefry over a 4-d shape much more slowly than in 1-d.
    fields = jax.random.uniform(key, (labels.size * self.patch**2,),
                                jnp.float32)
    fields = fields.reshape(labels.shape + (self.patch, self.patch))
    return {'image': compose(self.bank[labels, index], fields, self.noise),
            'labels': labels}


@flax.struct.dataclass
class MultiDigitDataset(_OccludedDigits):
  """Training set of correlated multi-digit images (a ``DeviceDataset``).

  Batch ``step`` of the epoch of ``key`` depends only on
  ``fold_in(fold_in(key, seed), step)``.

  Attributes:
    bank: uint8 ``[2, M, H, W]`` digits of the two classes (zero padded).
    noise: float32 scalar occlusion threshold in [0, 1].
    batch_size, patch: B and the occlusion field's side (static).
    counts: int32 ``[2]`` valid images per class in ``bank``.
    table: float32 joint table of the labels, shape ``(2,) * K``.
    seed: uint32 salt of every epoch key (another stream, no recompile).
    steps_per_epoch: the split's images of the two classes, in whole batches.
  """
  counts: jax.Array
  table: jax.Array
  seed: jax.Array
  steps_per_epoch: int = flax.struct.field(pytree_node=False)

  @property
  def num_digits(self) -> int:
    """K (from the table's rank; call on an un-vmapped dataset)."""
    return self.table.ndim

  def epoch_plan(self, key: jax.Array) -> jax.Array:
    """The epoch's key: ``fold_in(key, seed)``."""
    return jax.random.fold_in(key, self.seed)

  def batch(self, plan: jax.Array, step: jax.Array) -> Batch:
    """Batch ``step``: labels ~ table, digits uniform within their class."""
    k_labels, k_index, k_field = jax.random.split(
        jax.random.fold_in(plan, step), 3)
    labels = correlation.sample_combinations_jax(k_labels, self.table,
                                                 self.batch_size)
    # floor(u * count): uniform over the class's images (bias < count / 2**24),
    # never the padding, and far faster to compile than a bounded randint.
    count = self.counts[labels]
    u = jax.random.uniform(k_index, (labels.size,), jnp.float32)
    index = jnp.minimum((u.reshape(labels.shape) * count).astype(jnp.int32),
                        count - 1)
    return self._render(labels, index, k_field)


def _train_set(device_bank: jax.Array, counts: np.ndarray, table: np.ndarray,
               noise: float, patch: int, batch_size: Any, seed: int,
               where: str) -> MultiDigitDataset:
  epoch_size = int(counts.sum())
  batch_size = _check_batch_size(batch_size, epoch_size, where)
  return MultiDigitDataset(
      bank=device_bank, counts=jnp.asarray(counts), patch=patch,
      table=jnp.asarray(table, jnp.float32), seed=jnp.uint32(seed),
      noise=jnp.asarray(noise, jnp.float32), batch_size=batch_size,
      steps_per_epoch=epoch_size // batch_size)


def make_multi_digit_dataset(images: Any, labels: Any,
                             classes: Sequence[int] = DEFAULT_CLASSES,
                             num_digits: int = 2, corr: float | None = None,
                             table: Any = None, noise: float = 0.0,
                             patch: int = 4, batch_size: int = 100,
                             seed: int = 0) -> MultiDigitDataset:
  """The device-side training set of one split.

  Args:
    images: uint8 ``[N, 28, 28]`` digits of the split; ``labels`` int
      ``[N]`` their classes.
    classes: ``(class of label 0, class of label 1)``; the paper uses (3, 8).
    num_digits, corr, table: the labels' joint table (:func:`resolve_table`).
    noise: occlusion threshold in [0, 1].
    patch: occlusion field side, in [1, 32] (the paper: 4).
    seed: data-stream salt (see :class:`MultiDigitDataset`).
  """
  joint, noise, patch, seed = _check_common(num_digits, corr, table, noise,
                                            patch, seed)
  bank, counts = build_digit_bank(images, labels, classes, 'the images')
  return _train_set(jnp.asarray(bank), counts, joint, noise, patch,
                    batch_size, seed, 'the images')


@flax.struct.dataclass
class MultiDigitEvalSplit(_OccludedDigits):
  """A fixed evaluation set of multi-digit images (a ``DeviceDataset``).

  The occlusion fields of batch ``step`` come from ``fold_in(key, step)``, so
  every pass yields the same batches.

  Attributes:
    bank, noise, batch_size, patch: as in :class:`MultiDigitDataset`.
    labels: int32 ``[N, K]``, N a multiple of ``batch_size``.
    index: int32 ``[N, K]`` position of each digit in its class's bank row.
    key: the fixed PRNG key of the occlusion fields.
  """
  labels: jax.Array
  index: jax.Array
  key: jax.Array

  @property
  def steps_per_epoch(self) -> int:
    """``N // batch_size`` fixed batches."""
    return self.labels.shape[0] // self.batch_size

  @property
  def num_digits(self) -> int:
    """K, the digits per example."""
    return self.labels.shape[1]

  def epoch_plan(self, key: jax.Array) -> jax.Array:
    """The fixed key (``key`` is ignored)."""
    del key
    return self.key

  def batch(self, plan: jax.Array, step: jax.Array) -> Batch:
    """Batch ``step``: ``{'image': [B, 32, 32K, 3], 'labels': [B, K]}``."""
    start = step * self.batch_size
    labels = jax.lax.dynamic_slice_in_dim(self.labels, start, self.batch_size)
    index = jax.lax.dynamic_slice_in_dim(self.index, start, self.batch_size)
    return self._render(labels, index, jax.random.fold_in(plan, step))


def _eval_split(device_bank: jax.Array, counts: np.ndarray,
                table: np.ndarray, noise: float, patch: int, batch_size: int,
                num_examples: int | None, seed: int, where: str
                ) -> MultiDigitEvalSplit:
  n = int(counts.sum()) if num_examples is None else validate.integer(
      num_examples, 'num_examples', 1)
  batch_size = _check_batch_size(batch_size, n, where)
  n -= n % batch_size  # static shapes: drop the last partial batch
  rng = np.random.default_rng(seed)
  # The table's label combinations up to rounding, shuffled; each class's
  # digits cycle through fresh permutations of its images.
  combos = correlation.exact_combination_counts(table, n).ravel()
  flat = np.repeat(np.arange(combos.size), combos)
  labels = correlation.combination_to_labels(rng.permutation(flat),
                                             table.ndim).astype(np.int32)
  index = np.zeros_like(labels)
  for j in range(2):
    slots = labels == j
    reps = -(-int(slots.sum()) // int(counts[j]))
    order = [rng.permutation(int(counts[j])) for _ in range(reps)]
    index[slots] = np.concatenate(order)[:slots.sum()] if order else 0
  return MultiDigitEvalSplit(
      bank=device_bank, labels=jnp.asarray(labels), index=jnp.asarray(index),
      noise=jnp.asarray(noise, jnp.float32), patch=patch,
      key=jax.random.key(int(rng.integers(2**31))), batch_size=batch_size)


def make_eval_split(images: Any, labels: Any,
                    classes: Sequence[int] = DEFAULT_CLASSES,
                    num_digits: int = 2, corr: float | None = None,
                    table: Any = None, noise: float = 0.0, patch: int = 4,
                    batch_size: int = 100, seed: int = 0,
                    num_examples: int | None = None) -> MultiDigitEvalSplit:
  """A fixed, deterministic evaluation set of one split.

  It has N examples: the split's images of the two classes (or
  ``num_examples``), rounded *down* to a multiple of ``batch_size``. Its label
  combinations follow the table up to rounding
  (:func:`cmi_jax.data.correlation.exact_combination_counts`), shuffled; the
  digits of each class cycle through fresh permutations of its images, so
  each is used as evenly as possible. ``seed`` fixes labels, digits and
  fields; the other arguments are as in :func:`make_multi_digit_dataset`.
  """
  joint, noise, patch, seed = _check_common(num_digits, corr, table, noise,
                                            patch, seed)
  bank, counts = build_digit_bank(images, labels, classes, 'the images')
  return _eval_split(jnp.asarray(bank), counts, joint, noise, patch,
                     batch_size, num_examples, seed, 'the images')


# ------------------------------------------------------------------- helpers
def materialize(dataset: MultiDigitDataset | MultiDigitEvalSplit,
                max_batches: int | None = None,
                key: jax.Array | None = None) -> dict[str, np.ndarray]:
  """The first ``max_batches`` (None: all) S batches of an epoch, on the host.

  ``dataset`` is any ``DeviceDataset``; ``key`` defaults to
  ``jax.random.key(0)``. Returns NumPy ``{'image': float32 [S*B, 32, 32K, 3],
  'labels': int32 [S*B, K]}``.
  """
  steps = dataset.steps_per_epoch
  if max_batches is not None:
    steps = min(steps, validate.integer(max_batches, 'max_batches', 1))
  plan = dataset.epoch_plan(jax.random.key(0) if key is None else key)
  batch = programs.compiled(type(dataset).batch)
  batches = [jax.device_get(batch(dataset, plan, step))
             for step in range(steps)]
  return jax.tree.map(lambda *parts: np.concatenate(parts), *batches)


def multi_digit_splits(digits: Any, classes: Sequence[int] = DEFAULT_CLASSES,
                       num_digits: int = 2, train_corr: float = DEFAULT_CORR,
                       noise: float = 0.0, patch: int = 4,
                       batch_size: int = 100, seed: int = 0
                       ) -> dict[str, MultiDigitDataset | MultiDigitEvalSplit]:
  """The paper's five multi-digit splits of a :class:`~sources.DigitSplits`.

  ``train_corr`` is the correlation c of train and val; ``seed`` fixes the
  training stream and the eval splits; the other arguments are as in
  :func:`make_multi_digit_dataset`. Returns ``{'train': MultiDigitDataset at
  c, 'train_eval': eval set on the train images at c, 'val': on the val
  images at c, 'test_anti': on the test images at -c (0 for K > 2),
  'test_uncorr': on the test images at 0}``; splits on the same images share
  one device bank.
  """
  train_table, noise, patch, seed = _check_common(num_digits, train_corr,
                                                  None, noise, patch, seed)
  tables = correlation.split_tables(train_table, train_corr, num_digits)
  banks = {}
  for split in ('train', 'val', 'test'):
    bank, counts = build_digit_bank(*digits.split(split), classes,
                                    f'the {split} split')
    banks[split] = (jnp.asarray(bank), counts)
  result = {'train': _train_set(*banks['train'], train_table, noise, patch,
                                batch_size, seed, 'the train split')}
  source_split = {'train_eval': 'train', 'val': 'val', 'test_anti': 'test',
                  'test_uncorr': 'test'}
  for i, (name, split) in enumerate(source_split.items()):
    # Distinct, reproducible streams per eval split.
    split_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
    result[name] = _eval_split(*banks[split], tables[name], noise, patch,
                               batch_size, None, split_seed,
                               f'the {split} split ({name})')
  return result
