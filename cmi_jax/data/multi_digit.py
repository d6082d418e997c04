"""Correlated multi-digit images, generated on the device.

A sample is K digit images side by side. Digit k shows class ``classes[0]``
(label 0) or ``classes[1]`` (label 1); the K labels are drawn from a joint
table of shape ``(2,) * K`` (see :mod:`cmi_jax.data.correlation`), so the
digits are correlated as the paper prescribes. Each 28x28 digit is

1. chosen uniformly among the images of its class in the split,
2. resized bilinearly to 32x32 (half-pixel centres, as ``jax.image.resize``),
3. occluded: a ``patch`` x ``patch`` field of U[0, 1) values is resized
   bilinearly to 32x32 and every pixel whose field value is below ``noise`` is
   set to gray (0.5); each digit has its own field,
4. made 3-channel; the K digits are concatenated along the width.

A batch is ``{'image': float32 [B, 32, 32*K, 3] in [0, 1], 'labels': int32
[B, K]}``. Everything runs inside ``jit`` from device-resident arrays: the
training engine scans over whole epochs without the host.

Two dataset types satisfy :class:`cmi_jax.data.base.DeviceDataset`:

- :class:`MultiDigitDataset` (training): i.i.d. samples, a fresh stream per
  epoch key. Its epoch has as many samples as the split has images of the two
  classes (rounded down to whole batches).
- :class:`MultiDigitEvalSplit` (evaluation): a fixed set of examples whose
  label combinations follow the table *exactly* (largest-remainder rounding),
  and whose digits spread over the split's images; it yields identical
  batches on every pass because :meth:`MultiDigitEvalSplit.epoch_plan` ignores
  its key.

``noise`` and ``table`` are array fields, so a sweep can ``jax.vmap`` over
them. The NumPy reference of the same composition, for tests and benchmarks,
is ``tests/numpy_reference.py``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

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
  if (digits.ndim != 4 or digits.dtype != np.uint8
      or digits.shape[2] > IMAGE_SIZE or digits.shape[3] > IMAGE_SIZE):
    raise ValueError(
        f'digits must be uint8 [B, K, H, W] with H, W <= {IMAGE_SIZE}; got '
        f'{digits.dtype} of shape {digits.shape}.')
  if (fields.ndim != 4 or fields.shape[:2] != digits.shape[:2]
      or fields.shape[2] != fields.shape[3]
      or not 1 <= fields.shape[2] <= IMAGE_SIZE):
    raise ValueError(
        f'fields must be [B, K, P, P] = {tuple(digits.shape[:2])} + (P, P) '
        f'with 1 <= P <= {IMAGE_SIZE} (one square field per digit); got '
        f'shape {fields.shape}.')


def compose(digits: jax.Array, fields: jax.Array, noise: jax.Array | float
            ) -> jax.Array:
  """Turns chosen digits and occlusion fields into multi-digit images (JAX).

  Args:
    digits: uint8 ``[B, K, H, W]`` (H, W <= 32), pixel values 0..255.
    fields: float ``[B, K, P, P]`` occlusion fields with values in [0, 1).
    noise: scalar in [0, 1], the occlusion threshold; 0 occludes nothing, 1
      everything.

  Returns:
    float32 ``[B, 32, 32 * K, 3]`` in [0, 1].
  """
  _check_compose_shapes(digits, fields)
  b, k = digits.shape[:2]
  size = (b, k, IMAGE_SIZE, IMAGE_SIZE)
  x = jax.image.resize(digits.astype(jnp.float32) / 255.0, size, 'bilinear')
  x = jnp.where(occlusion.occluded(fields, IMAGE_SIZE, IMAGE_SIZE, noise),
                OCCLUDED_VALUE, x)
  # [B, K, 32, 32] -> [B, 32, K, 32] -> [B, 32, K*32]: digits side by side.
  x = x.transpose(0, 2, 1, 3).reshape(b, IMAGE_SIZE, k * IMAGE_SIZE)
  return jnp.broadcast_to(x[..., None], x.shape + (NUM_CHANNELS,))


def _uniform_fields(key: jax.Array, shape: tuple[int, ...], patch: int
                    ) -> jax.Array:
  """U[0, 1) occlusion fields ``shape + (patch, patch)``, float32."""
  # Drawn flat and reshaped: XLA:CPU compiles threefry over a 4-d shape ~8x
  # slower than over the same number of values in 1-d.
  size = math.prod(shape) * patch * patch
  return jax.random.uniform(key, (size,), jnp.float32).reshape(
      shape + (patch, patch))


def _sample_batch(key: jax.Array, bank: jax.Array, counts: jax.Array,
                  table: jax.Array, noise: jax.Array, patch: int,
                  batch_size: int) -> Batch:
  """One i.i.d. batch: labels ~ table, digits uniform within their class."""
  k_labels, k_index, k_field = jax.random.split(key, 3)
  labels = correlation.sample_combinations_jax(k_labels, table, batch_size)
  # floor(u * count) is uniform over the class's images (bias < count / 2**24,
  # negligible) and the zero padding after them is never reached; it compiles
  # far faster than randint with per-element bounds.
  count = counts[labels]
  u = jax.random.uniform(k_index, (labels.size,), jnp.float32)
  index = jnp.minimum((u.reshape(labels.shape) * count).astype(jnp.int32),
                      count - 1)
  fields = _uniform_fields(k_field, labels.shape, patch)
  return {'image': compose(bank[labels, index], fields, noise),
          'labels': labels}


# -------------------------------------------------------------- input checks
def _check_int(value: Any, name: str, low: int, high: int | None = None,
               fix: str = '') -> int:
  """``value`` as an int in ``[low, high]``, else one clear ValueError."""
  return validate.integer(value, name, low, high, fix)


def _check_images(images: Any, labels: Any, where: str
                  ) -> tuple[np.ndarray, np.ndarray]:
  images = np.asarray(images)
  labels = np.asarray(labels)
  if images.dtype != np.uint8 or images.ndim != 3:
    raise ValueError(
        f'{where}: images must be uint8 [N, H, W] (pixel values 0..255); got '
        f'{images.dtype} of shape {images.shape}. Squeeze a trailing channel '
        'axis and keep the raw uint8 pixels.')
  if images.shape[1] > IMAGE_SIZE or images.shape[2] > IMAGE_SIZE:
    raise ValueError(
        f'{where}: images are {images.shape[1]}x{images.shape[2]}, larger than '
        f'the {IMAGE_SIZE}x{IMAGE_SIZE} output; digits are only upsampled. '
        'Pass 28x28 MNIST-style images.')
  if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (
      len(images),):
    raise ValueError(
        f'{where}: labels must be integers of shape [{len(images)}] (one '
        f'class per image); got {labels.dtype} of shape {labels.shape}.')
  return images, labels


def _check_classes(classes: Any, labels: np.ndarray, where: str
                   ) -> tuple[int, int]:
  present = sorted(int(c) for c in np.unique(labels))
  try:
    pair = tuple(classes)
  except TypeError:
    pair = ()
  if (len(pair) != 2 or not all(isinstance(c, numbers.Integral)
                                and not isinstance(c, bool) for c in pair)
      or pair[0] == pair[1]):
    raise ValueError(
        f'classes must be two different integer class ids (label 0, label 1), '
        f'e.g. (3, 8); got {classes!r}. Classes present in {where}: '
        f'{present}.')
  for c in pair:
    if int(c) not in present:
      raise ValueError(
          f'class {int(c)} has no image in {where}; classes present: '
          f'{present}. Choose classes from those.')
  return int(pair[0]), int(pair[1])


def _check_noise(noise: Any) -> float:
  return validate.number(
      noise, 'noise', 0, 1,
      hint='It is the occlusion threshold: 0 occludes nothing, 1 everything. '
      'To sweep noise, build once and jax.vmap over '
      'dataset.replace(noise=...).')


def resolve_table(num_digits: int, corr: float | None = None,
                  table: Any = None) -> np.ndarray:
  """The joint table of ``num_digits`` labels from ``corr`` or ``table``.

  Args:
    num_digits: K.
    corr: correlation; K = 2 takes [-1, 1], K > 2 takes [0, 1] (see
      :func:`cmi_jax.data.correlation.joint_table`). Default 0.9 when neither
      ``corr`` nor ``table`` is given.
    table: an explicit joint table of shape ``(2,) * K`` (normalised here).

  Returns:
    float64 table of shape ``(2,) * K``.

  Raises:
    ValueError: if both or an invalid one is given.
  """
  num_digits = _check_int(num_digits, 'num_digits', 1)
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
  corr = DEFAULT_CORR if corr is None else corr
  if num_digits < 2:
    raise ValueError(f'corr needs num_digits >= 2 (got {num_digits}); for a '
                     'single digit pass table=[p0, p1] instead.')
  low = -1.0 if num_digits == 2 else 0.0
  if (not isinstance(corr, numbers.Real) or isinstance(corr, bool)
      or not low <= float(corr) <= 1.0):
    raise ValueError(
        f'corr={corr!r} is outside [{low:g}, 1] for num_digits={num_digits}; '
        + ('negative correlations exist only for two digits; ' if low == 0
           else '') + 'pass a value in that range or an explicit table.')
  return correlation.joint_table(float(corr), num_digits)


def build_digit_bank(images: Any, labels: Any,
                     classes: Sequence[int] = DEFAULT_CLASSES,
                     where: str = 'images') -> tuple[np.ndarray, np.ndarray]:
  """Groups the images of two classes into a padded bank.

  Args:
    images: uint8 ``[N, H, W]``.
    labels: int ``[N]`` class ids.
    classes: ``(class of label 0, class of label 1)``.
    where: name of the split, for messages.

  Returns:
    ``(bank, counts)``: uint8 ``[2, M, H, W]`` with the images of
    ``classes[j]`` first in row ``j`` (in their original order, zero padding
    after them; M is the larger count) and int32 ``[2]`` counts.

  Raises:
    ValueError: for malformed images/labels or a class absent from ``labels``.
  """
  images, labels = _check_images(images, labels, where)
  classes = _check_classes(classes, labels, where)
  members = [np.flatnonzero(labels == c) for c in classes]
  counts = np.array([len(m) for m in members], np.int32)
  bank = np.zeros((2, counts.max()) + images.shape[1:], np.uint8)
  for j, m in enumerate(members):
    bank[j, :len(m)] = images[m]
  return bank, counts


def _check_batch_size(batch_size: Any, epoch_size: int, where: str) -> int:
  batch_size = _check_int(batch_size, 'batch_size', 1)
  if batch_size > epoch_size:
    raise ValueError(
        f'batch_size={batch_size} exceeds the {epoch_size} samples of one '
        f'epoch of {where} (its images of the two classes); use a batch size '
        f'<= {epoch_size} or a larger split.')
  return batch_size


# -------------------------------------------------------------- training set
@flax.struct.dataclass
class MultiDigitDataset:
  """Training set of correlated multi-digit images (a ``DeviceDataset``).

  Attributes:
    bank: uint8 ``[2, M, H, W]`` digits of the two classes (zero padded).
    counts: int32 ``[2]`` valid images per class in ``bank``.
    table: float32 joint table of the labels, shape ``(2,) * K``.
    noise: float32 scalar occlusion threshold in [0, 1].
    batch_size: B (static).
    steps_per_epoch: batches per epoch (static).
    patch: side of the occlusion field before resizing (static).
    seed: uint32 scalar folded into every epoch key, so that datasets built
      with different seeds give different streams under the same trainer key
      (an array, so changing it does not recompile).

  Batches are i.i.d.: batch ``step`` of the epoch drawn with ``key`` depends
  only on ``fold_in(fold_in(key, seed), step)``.
  """
  bank: jax.Array
  counts: jax.Array
  table: jax.Array
  noise: jax.Array
  seed: jax.Array
  batch_size: int = flax.struct.field(pytree_node=False)
  steps_per_epoch: int = flax.struct.field(pytree_node=False)
  patch: int = flax.struct.field(pytree_node=False)

  @property
  def num_digits(self) -> int:
    """K (from the table's rank; call on an un-vmapped dataset)."""
    return self.table.ndim

  def epoch_plan(self, key: jax.Array) -> jax.Array:
    """The epoch's key: ``fold_in(key, seed)``."""
    return jax.random.fold_in(key, self.seed)

  def batch(self, plan: jax.Array, step: jax.Array) -> Batch:
    """Batch ``step`` of the epoch: ``{'image': [B, 32, 32K, 3], 'labels':
    int32 [B, K]}``."""
    return _sample_batch(jax.random.fold_in(plan, step), self.bank,
                         self.counts, self.table, self.noise, self.patch,
                         self.batch_size)


def make_multi_digit_dataset(images: Any, labels: Any,
                             classes: Sequence[int] = DEFAULT_CLASSES,
                             num_digits: int = 2, corr: float | None = None,
                             table: Any = None, noise: float = 0.0,
                             patch: int = 4, batch_size: int = 100,
                             seed: int = 0) -> MultiDigitDataset:
  """Builds the device-side training set of one split.

  Args:
    images: uint8 ``[N, 28, 28]`` digits of the split (e.g.
      ``DigitSplits.train_images``).
    labels: int ``[N]`` their classes.
    classes: ``(class of label 0, class of label 1)``; the paper uses (3, 8).
    num_digits: K digits per sample.
    corr: target correlation (default 0.9); or give ``table``.
    table: explicit joint table of shape ``(2,) * K``.
    noise: occlusion threshold in [0, 1].
    patch: occlusion field side, in [1, 32] (the paper: 4).
    batch_size: B.
    seed: data-stream salt (see :class:`MultiDigitDataset`).

  Returns:
    A :class:`MultiDigitDataset` on the default device whose epoch has
    ``n // batch_size`` batches, n = number of images of the two classes.

  Raises:
    ValueError: for malformed images, an absent class, a correlation or table
      that does not fit K, noise outside [0, 1], a patch outside [1, 32], or a
      batch larger than the epoch.
  """
  joint = resolve_table(num_digits, corr, table)
  noise = _check_noise(noise)
  patch = _check_int(patch, 'patch', 1, IMAGE_SIZE,
                     'It is the side of the occlusion field (the paper: 4).')
  bank, counts = build_digit_bank(images, labels, classes, 'the images')
  epoch_size = int(counts.sum())
  batch_size = _check_batch_size(batch_size, epoch_size, 'the images')
  seed = _check_int(seed, 'seed', 0, 2**32 - 1)
  return MultiDigitDataset(
      bank=jnp.asarray(bank), counts=jnp.asarray(counts),
      table=jnp.asarray(joint, jnp.float32),
      noise=jnp.asarray(noise, jnp.float32), seed=jnp.uint32(seed),
      batch_size=batch_size, steps_per_epoch=epoch_size // batch_size,
      patch=patch)


# ------------------------------------------------------------ evaluation set
@flax.struct.dataclass
class MultiDigitEvalSplit:
  """A fixed evaluation set of multi-digit images (a ``DeviceDataset``).

  The labels and the chosen digit of every example are stored; the occlusion
  field of batch ``step`` comes from ``fold_in(key, step)``. Every pass yields
  the same batches: :meth:`epoch_plan` ignores its key.

  Attributes:
    bank: uint8 ``[2, M, H, W]`` digits of the two classes.
    labels: int32 ``[N, K]``, N a multiple of ``batch_size``.
    index: int32 ``[N, K]`` position of each digit in its class's bank row.
    noise: float32 scalar occlusion threshold.
    key: the fixed PRNG key of the occlusion fields.
    batch_size: B (static).
    patch: occlusion field side (static).
  """
  bank: jax.Array
  labels: jax.Array
  index: jax.Array
  noise: jax.Array
  key: jax.Array
  batch_size: int = flax.struct.field(pytree_node=False)
  patch: int = flax.struct.field(pytree_node=False)

  @property
  def steps_per_epoch(self) -> int:
    """``N // batch_size`` fixed batches."""
    return self.labels.shape[0] // self.batch_size

  @property
  def num_digits(self) -> int:
    """K, the digits per example."""
    return self.labels.shape[1]

  def epoch_plan(self, key: jax.Array) -> jax.Array:
    """The fixed key (``key`` is ignored: evaluation is the same every time)."""
    del key
    return self.key

  def batch(self, plan: jax.Array, step: jax.Array) -> Batch:
    """Batch ``step``: ``{'image': [B, 32, 32K, 3], 'labels': [B, K]}``."""
    start = step * self.batch_size
    labels = jax.lax.dynamic_slice_in_dim(self.labels, start, self.batch_size)
    index = jax.lax.dynamic_slice_in_dim(self.index, start, self.batch_size)
    fields = _uniform_fields(jax.random.fold_in(plan, step), labels.shape,
                             self.patch)
    return {'image': compose(self.bank[labels, index], fields, self.noise),
            'labels': labels}


def _eval_assignment(rng: np.random.Generator, counts: np.ndarray,
                     table: np.ndarray, n: int
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Fixed labels ``[n, K]`` and digit positions ``[n, K]`` of an eval split."""
  combos = correlation.exact_combination_counts(table, n).ravel()
  flat = np.repeat(np.arange(combos.size), combos)
  labels = correlation.combination_to_labels(rng.permutation(flat),
                                             table.ndim).astype(np.int32)
  index = np.zeros_like(labels)
  for j in range(2):
    slots = labels == j
    needed = int(slots.sum())
    if needed == 0:
      continue
    # Consecutive fresh permutations: every image of the class is used
    # before any is used again.
    reps = -(-needed // int(counts[j]))
    order = np.concatenate([rng.permutation(int(counts[j]))
                            for _ in range(reps)])
    index[slots] = order[:needed]
  return labels, index


def _eval_split(bank: np.ndarray, counts: np.ndarray, device_bank: jax.Array,
                table: np.ndarray, noise: float, patch: int, batch_size: int,
                num_examples: int | None, seed: int, where: str
                ) -> MultiDigitEvalSplit:
  available = int(counts.sum())
  n = available if num_examples is None else _check_int(
      num_examples, 'num_examples', 1)
  batch_size = _check_batch_size(batch_size, n, where)
  n -= n % batch_size  # static shapes: drop the last partial batch
  rng = np.random.default_rng(seed)
  labels, index = _eval_assignment(rng, counts, table, n)
  return MultiDigitEvalSplit(
      bank=device_bank, labels=jnp.asarray(labels), index=jnp.asarray(index),
      noise=jnp.asarray(noise, jnp.float32),
      key=jax.random.key(int(rng.integers(2**31))), batch_size=batch_size,
      patch=patch)


def make_eval_split(images: Any, labels: Any,
                    classes: Sequence[int] = DEFAULT_CLASSES,
                    num_digits: int = 2, corr: float | None = None,
                    table: Any = None, noise: float = 0.0, patch: int = 4,
                    batch_size: int = 100, seed: int = 0,
                    num_examples: int | None = None) -> MultiDigitEvalSplit:
  """Builds a fixed, deterministic evaluation set from one split.

  The set has N examples, N = the split's images of the two classes (or
  ``num_examples``) rounded *down* to a multiple of ``batch_size`` (at most
  ``batch_size - 1`` examples are dropped, so shapes stay static). Its label
  combinations follow the table exactly up to rounding (see
  :func:`cmi_jax.data.correlation.exact_combination_counts`), in a shuffled order; the digits of each
  class cycle through fresh permutations of the class's images, so each image
  is used as evenly as possible.

  Args:
    images, labels, classes, num_digits, corr, table, noise, patch,
      batch_size: as in :func:`make_multi_digit_dataset`.
    seed: fixes the labels, digits and occlusion fields.
    num_examples: override N (before rounding down to whole batches).

  Returns:
    A :class:`MultiDigitEvalSplit` on the default device.

  Raises:
    ValueError: as :func:`make_multi_digit_dataset`.
  """
  joint = resolve_table(num_digits, corr, table)
  noise = _check_noise(noise)
  patch = _check_int(patch, 'patch', 1, IMAGE_SIZE,
                     'It is the side of the occlusion field (the paper: 4).')
  seed = _check_int(seed, 'seed', 0, 2**32 - 1)
  bank, counts = build_digit_bank(images, labels, classes, 'the images')
  return _eval_split(bank, counts, jnp.asarray(bank), joint, noise, patch,
                     batch_size, num_examples, seed, 'the images')


# ------------------------------------------------------------------- helpers
_batch_jit = jax.jit(lambda dataset, plan, step: dataset.batch(plan, step))


def materialize(dataset: MultiDigitDataset | MultiDigitEvalSplit,
                max_batches: int | None = None,
                key: jax.Array | None = None) -> dict[str, np.ndarray]:
  """Copies (the first batches of) one epoch to the host, for figures/metrics.

  Args:
    dataset: a multi-digit dataset (any ``DeviceDataset`` works).
    max_batches: at most this many batches (None: the whole epoch).
    key: epoch key for a training set (default ``jax.random.key(0)``);
      ignored by evaluation splits.

  Returns:
    ``{'image': float32 [S*B, 32, 32K, 3], 'labels': int32 [S*B, K]}`` as NumPy
    arrays, S the number of batches.
  """
  steps = dataset.steps_per_epoch
  if max_batches is not None:
    steps = min(steps, _check_int(max_batches, 'max_batches', 1))
  plan = dataset.epoch_plan(jax.random.key(0) if key is None else key)
  batches = [jax.device_get(_batch_jit(dataset, plan, step))
             for step in range(steps)]
  return {name: np.concatenate([b[name] for b in batches])
          for name in batches[0]}


def multi_digit_splits(digits: Any, classes: Sequence[int] = DEFAULT_CLASSES,
                       num_digits: int = 2, train_corr: float = DEFAULT_CORR,
                       noise: float = 0.0, patch: int = 4,
                       batch_size: int = 100, seed: int = 0
                       ) -> dict[str, MultiDigitDataset | MultiDigitEvalSplit]:
  """The paper's five multi-digit splits from one :class:`DigitSplits`.

  Args:
    digits: a :class:`cmi_jax.data.sources.DigitSplits`.
    classes, num_digits, noise, patch, batch_size: as in
      :func:`make_multi_digit_dataset`.
    train_corr: correlation c of train and val.
    seed: seed of the training stream salt and of the fixed eval splits.

  Returns:
    ``{'train': MultiDigitDataset at c (training stream),
    'train_eval': fixed set on the train images at c,
    'val': fixed set on the val images at c,
    'test_anti': fixed set on the test images at -c (uncorrelated for K > 2,
    see :func:`cmi_jax.data.correlation.anti_correlation`),
    'test_uncorr': fixed set on the test images at 0}``. Splits built on the
    same images share one device-resident bank.

  Raises:
    ValueError: as :func:`make_multi_digit_dataset`, naming the split.
  """
  train_table = resolve_table(num_digits, corr=train_corr)
  tables = correlation.split_tables(train_table, train_corr, num_digits)
  noise = _check_noise(noise)
  patch = _check_int(patch, 'patch', 1, IMAGE_SIZE,
                     'It is the side of the occlusion field (the paper: 4).')
  seed = _check_int(seed, 'seed', 0, 2**32 - 1)
  banks = {}
  for split in ('train', 'val', 'test'):
    images, labels = digits.split(split)
    bank, counts = build_digit_bank(images, labels, classes,
                                    f'the {split} split')
    banks[split] = (bank, counts, jnp.asarray(bank))
  bank, counts, device_bank = banks['train']
  epoch_size = int(counts.sum())
  train_batch = _check_batch_size(batch_size, epoch_size, 'the train split')
  result = {'train': MultiDigitDataset(
      bank=device_bank, counts=jnp.asarray(counts),
      table=jnp.asarray(train_table, jnp.float32),
      noise=jnp.asarray(noise, jnp.float32), seed=jnp.uint32(seed),
      batch_size=train_batch, steps_per_epoch=epoch_size // train_batch,
      patch=patch)}
  source_split = {'train_eval': 'train', 'val': 'val', 'test_anti': 'test',
                  'test_uncorr': 'test'}
  for i, (name, split) in enumerate(source_split.items()):
    bank, counts, device_bank = banks[split]
    # Distinct, reproducible streams per eval split.
    split_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
    result[name] = _eval_split(bank, counts, device_bank, tables[name], noise,
                               patch, batch_size, None, split_seed,
                               f'the {split} split ({name})')
  return result
