"""Correlated CelebA: the sub-sampled, weakly labelled, occluded run splits.

:func:`celeba_splits` builds them from the splits that
:func:`cmi_jax.data.celeba_files.load_celeba` reads.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import validate
from cmi_jax.data import host
from cmi_jax.data import occlusion
from cmi_jax.data.base import ArrayDataset
from cmi_jax.data.base import validate_labels
from cmi_jax.data.celeba_files import CelebASplits
from cmi_jax.data.correlation import exact_subsample_counts
from cmi_jax.data.correlation import joint_counts
from cmi_jax.data.correlation import joint_table, split_tables
from cmi_jax.data.correlation import labels_to_combination

_log = logging.getLogger(__name__)


def _combination_name(combo: Sequence[int], names: Sequence[str] | None
                      ) -> str:
  if names is None:
    names = [f'attribute{k}' for k in range(len(combo))]
  return ', '.join(f'{n}={int(v)}' for n, v in zip(names, combo))


def correlated_subsample(labels: np.ndarray, table: np.ndarray | Sequence,
                         seed: int,
                         names: Sequence[str] | None = None) -> np.ndarray:
  """Row indices of the largest sub-sample whose joint counts follow ``table``.

  Draws, without replacement, the rows of every attribute combination that
  :func:`~cmi_jax.data.correlation.exact_subsample_counts` gives.

  ``labels`` are ``[N, K]`` in {0, 1} (none missing), ``table`` the target
  of shape ``(2,) * K`` (normalised here), ``seed`` >= 0 chooses the rows and
  the optional K ``names`` go into error messages.

  Returns:
    int64 ``[M]`` sorted, distinct row indices into ``labels``.

  Raises:
    ValueError: for bad labels or table, or naming a combination of
      probability > 0 that would be left with zero examples.
  """
  seed = validate.integer(seed, 'seed', 0)
  labels = np.asarray(labels)
  if labels.ndim != 2:
    raise ValueError(f'labels must have shape [N, K]; got {labels.shape}.')
  num_attributes = labels.shape[1]
  validate_labels(labels, (2,) * num_attributes, names,
                  where='correlated_subsample')
  if np.any(labels < 0):
    raise ValueError('correlated_subsample: labels contain -1 (missing); '
                     'sub-sample the fully labelled data, then remove labels.')
  table = np.asarray(table, np.float64)
  if table.shape != (2,) * num_attributes:
    raise ValueError(
        f'table has shape {table.shape} but labels have {num_attributes} '
        f'binary attributes; pass a table of shape {(2,) * num_attributes}.')
  if not np.all(np.isfinite(table)) or np.any(table < 0) or table.sum() <= 0:
    raise ValueError(f'table entries must be finite, >= 0 and not all 0; got '
                     f'{table.tolist()}.')
  table = table / table.sum()
  available = joint_counts(labels, (2,) * num_attributes)
  for combo in np.argwhere((table > 0) & (available == 0)):
    raise ValueError(
        f'attribute combination ({_combination_name(combo, names)}) has '
        f'probability {table[tuple(combo)]:.3g} in the target table but no '
        f'example among the {len(labels)} rows; use a correlation of smaller '
        'magnitude or data that contains it.')
  counts = exact_subsample_counts(available, table)
  for combo in np.argwhere((table > 0) & (counts == 0)):
    raise ValueError(
        f'attribute combination ({_combination_name(combo, names)}) is left '
        f'with zero examples: the table gives it probability '
        f'{table[tuple(combo)]:.3g} and the largest sub-sample that follows '
        f'the table has only {int(counts.sum())} rows (available per '
        f'combination: {available.ravel().tolist()}); use a correlation of '
        'smaller magnitude or more data.')
  rng = np.random.default_rng(seed)
  flat = labels_to_combination(labels.astype(np.int64))
  chosen = [rng.choice(np.flatnonzero(flat == c), size=int(n), replace=False)
            for c, n in enumerate(counts.ravel())]
  return np.sort(np.concatenate(chosen)).astype(np.int64)


def remove_labels(labels: np.ndarray, fraction: float, seed: int
                  ) -> np.ndarray:
  """Weak supervision: hides a fraction of each attribute's labels.

  For every attribute independently, exactly ``round(fraction * N)`` rows
  (Python rounding) chosen uniformly at random get the label -1 (missing).

  Returns:
    int32 ``[N, K]``, a copy of the integer ``labels`` with the removed
    labels set to -1.
  """
  seed = validate.integer(seed, 'seed', 0)
  labels = np.asarray(labels)
  if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'labels must be integers of shape [N, K]; got '
                     f'{labels.dtype} {labels.shape}.')
  fraction = validate.number(fraction, 'the fraction of removed labels', 0, 1,
                             open_high=True,
                             hint='1 would leave no label to train on.')
  num = labels.shape[0]
  removed = int(round(fraction * num))
  out = labels.astype(np.int32)  # a copy
  rng = np.random.default_rng(seed)
  for k in range(labels.shape[1]):
    out[rng.permutation(num)[:removed], k] = -1
  return out


_occluded = jax.jit(occlusion.occluded, static_argnums=(1, 2))


def occlusion_masks(num_images: int, height: int, width: int, noise: float,
                    patch: int = 4, seed: int = 0) -> np.ndarray:
  """Random blob masks (:mod:`cmi_jax.data.occlusion`), one per image.

  The fields depend on ``seed`` (>= 0) only, so a larger ``noise`` (in
  [0, 1]) occludes a superset of the pixels.

  Returns:
    uint8 ``[num_images, height, width]``: 1 where kept, 0 where occluded.
  """
  seed = validate.integer(seed, 'seed', 0)
  noise = validate.number(noise, 'noise (occlusion threshold)', 0, 1)
  patch = validate.integer(patch, 'patch', 1)
  field = np.random.default_rng(seed).random((num_images, patch, patch))
  masks = np.empty((num_images, height, width), np.uint8)
  for start in range(0, num_images, 4096):  # bounds the device temporaries
    block = jnp.asarray(field[start:start + 4096], jnp.float32)
    masks[start:start + 4096] = ~np.asarray(
        _occluded(block, height, width, noise))
  return masks


def occlude(images: np.ndarray, noise: float, patch: int = 4, seed: int = 0
            ) -> np.ndarray:
  """Multiplies every image by its own :func:`occlusion_masks` mask.

  Occluded pixels become 0 (black) in every channel; ``noise`` 0 returns the
  images unchanged.

  Returns:
    The ``[N, H, W, C]`` images (uint8 or float), same shape and dtype.
  """
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f'images must have shape [N, H, W, C]; got '
                     f'{images.shape}.')
  masks = occlusion_masks(images.shape[0], images.shape[1], images.shape[2],
                          noise, patch, seed)
  return images * masks[..., None].astype(images.dtype)


def _child_seed(seed: int, purpose: str) -> int:
  """A seed for one use, independent of the others made from ``seed``."""
  state = np.random.SeedSequence([seed, zlib.crc32(purpose.encode())])
  return int(state.generate_state(1)[0])


CORRELATION_MODES = ('subsampled', 'natural')


def natural_correlation(labels: np.ndarray) -> float:
  """Pearson correlation of two binary attributes ``[N, 2]`` (0 if constant)."""
  labels = np.asarray(labels, np.float64)
  std = labels.std(0)
  if np.any(std == 0):
    return 0.0
  return float(np.clip(np.corrcoef(labels.T)[0, 1], -1.0, 1.0))


def celeba_splits(splits: CelebASplits, train_corr: float,
                  weak_supervision: float = 0.0, noise: float = 0.0,
                  batch_size: int = 100, seed: int = 0,
                  occlusion_patch: int = 4, placement: str = 'device',
                  device_memory_fraction: float =
                  host.DEFAULT_DEVICE_MEMORY_FRACTION,
                  correlation_mode: str = 'subsampled') -> dict[str, Any]:
  """The datasets of one correlated CelebA run.

  With ``correlation_mode='subsampled'`` (the paper's setting) every split is
  sub-sampled (:func:`correlated_subsample`) to a joint table of the K
  attributes:

  ===============  ===================  =========================  ==========
  key              data                 table                      labels
  ===============  ===================  =========================  ==========
  ``train``        official train       ``joint_table(c)``         weak
  ``train_eval``   the same rows        ``joint_table(c)``         full
  ``val``          official validation  ``joint_table(c)``         full
  ``test_anti``    official test        ``joint_table(-c)``        full
  ``test_uncorr``  official test        ``joint_table(0)``         full
  ===============  ===================  =========================  ==========

  ``test_anti`` and ``test_uncorr`` are drawn independently (they may share
  images); for K > 2 ``test_anti`` uses ``joint_table(0)`` too. With
  ``'natural'`` (the group-robustness benchmarks', e.g. ``Blond_Hair`` x
  ``Male``) train, train_eval and val are the official splits as they are,
  and ``c`` is the training split's measured correlation (0 for K > 2).
  ``train`` is shuffled every epoch, the others are sequential; they are
  :class:`~cmi_jax.data.base.ArrayDataset` on the device or
  :class:`~cmi_jax.data.host.HostDataset` (same batches) in host memory.

  Args:
    splits: from :func:`load_celeba`, K >= 2 attributes.
    train_corr: ``c``, in [-1, 1] for K = 2, [0, 1] for K > 2.
    weak_supervision: share of each attribute's train labels removed
      (:func:`remove_labels`), in [0, 1). The paper's runs scale the batch
      size by ``1 / (1 - weak_supervision)``; the caller passes the result.
    noise, occlusion_patch: occlusion of every split (:func:`occlude`).
    batch_size: at most the smallest split.
    seed: fixes the sub-samples, removed labels and masks.
    placement, device_memory_fraction: where the images live
      (:func:`cmi_jax.data.host.choose_placement`; logged).
    correlation_mode: one of :data:`CORRELATION_MODES`.

  Returns:
    The five datasets above (images uint8 ``[N, 64, 64, 3]``, labels int32
    ``[N, K]``) and ``'placement'``, ``'tables'`` (split -> float64 table
    ``(2,) * K``, target or held), ``'joint_counts'`` (split -> int64 counts
    of the fully labelled rows), ``'attributes'``, ``'correlation_mode'``,
    ``'natural_corr'`` (measured for ``'natural'`` with K = 2, else None).

  Raises:
    ValueError: for bad arguments or a split too small for its table or for
      ``batch_size``; the message names the fix.
  """
  seed = validate.integer(seed, 'seed', 0)
  host.check_placement(placement)
  if correlation_mode not in CORRELATION_MODES:
    raise ValueError(f'correlation_mode {correlation_mode!r} is unknown; '
                     f'choose one of {CORRELATION_MODES}.')
  natural = correlation_mode == 'natural'
  names = tuple(splits.attributes)
  num_attributes = len(names)
  if num_attributes < 2:
    raise ValueError(f'correlated splits need K >= 2 attributes; got {names}. '
                     'Load CelebA with two or more attributes.')
  validate.integer(batch_size, 'batch_size', 1)
  validate.number(weak_supervision, 'weak_supervision', 0, 1, open_high=True)
  validate.number(noise, 'noise', 0, 1)
  natural_corr = None
  if natural:
    full = np.all(splits.train.labels >= 0, axis=1)
    counts = joint_counts(splits.train.labels[full], (2,) * num_attributes)
    train_table = counts / max(counts.sum(), 1)
    if num_attributes == 2:
      natural_corr = natural_correlation(splits.train.labels[full])
    train_corr = natural_corr if natural_corr is not None else 0.0
  else:
    train_table = joint_table(train_corr, num_attributes)
  tables = split_tables(train_table, train_corr, num_attributes)
  sources = {'train': splits.train, 'val': splits.val,
             'test_anti': splits.test, 'test_uncorr': splits.test}

  chosen = {}
  for key, split in sources.items():
    if natural and key in ('train', 'val'):
      chosen[key] = (split.images if noise == 0 else occlude(
          split.images, noise, occlusion_patch,
          _child_seed(seed, 'occlude/' + key)), split.labels)
      if len(split.labels) < batch_size:
        raise ValueError(f'CelebA split {key!r} has {len(split.labels)} '
                         f'examples, fewer than batch_size={batch_size}.')
      continue
    try:
      index = correlated_subsample(split.labels, tables[key],
                                   _child_seed(seed, 'subsample/' + key),
                                   names)
    except ValueError as e:
      raise ValueError(f'CelebA split {key!r} at its table '
                       f'{tables[key].ravel().round(3).tolist()}: {e}') from e
    if len(index) < batch_size:
      raise ValueError(
          f'CelebA split {key!r} has {len(index)} examples after '
          f'sub-sampling, fewer than batch_size={batch_size}; lower '
          'batch_size or the correlation.')
    images = split.images[index]
    if noise > 0:
      images = occlude(images, noise, occlusion_patch,
                       _child_seed(seed, 'occlude/' + key))
    chosen[key] = (images, split.labels[index])

  train_images, train_labels = chosen['train']
  weak_labels = remove_labels(train_labels, weak_supervision,
                              _child_seed(seed, 'weak'))
  # train_eval shares the train images.
  nbytes = sum(int(images.nbytes) for images, _ in chosen.values())
  where, reason = host.choose_placement(nbytes, placement,
                                        memory_fraction=device_memory_fraction)
  _log.info('CelebA data placement: %s (%s).', where, reason)
  on_host = where == 'host'
  to_images = np.ascontiguousarray if on_host else jnp.asarray

  def make(images, labels, shuffle):
    if on_host:
      return host.HostDataset(images, np.asarray(labels, np.int32),
                              batch_size=int(batch_size), shuffle=shuffle)
    return ArrayDataset(images, jnp.asarray(labels),
                        batch_size=int(batch_size), shuffle=shuffle)

  train_images = to_images(train_images)
  datasets = {
      'train': make(train_images, weak_labels, True),
      'train_eval': make(train_images, train_labels, False),
  }
  for key in ('val', 'test_anti', 'test_uncorr'):
    images, labels = chosen[key]
    datasets[key] = make(to_images(images), labels, False)
  classes = (2,) * num_attributes
  counts = {'train': joint_counts(weak_labels, classes),
            'train_eval': joint_counts(train_labels, classes)}
  for key in ('val', 'test_anti', 'test_uncorr'):
    counts[key] = joint_counts(chosen[key][1], classes)
  _log.info('CelebA splits (c=%g, weak=%g, noise=%g): %s', train_corr,
            weak_supervision, noise,
            ', '.join(f'{k} {len(v[1])}' for k, v in chosen.items()))
  if natural:
    tables['train'] = tables['train_eval'] = train_table
    val_counts = counts['val'].astype(np.float64)
    tables['val'] = val_counts / max(val_counts.sum(), 1)
  return {**datasets, 'placement': where, 'tables': tables,
          'joint_counts': counts, 'attributes': names,
          'correlation_mode': correlation_mode, 'natural_corr': natural_corr}
