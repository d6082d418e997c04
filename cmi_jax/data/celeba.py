"""Correlated CelebA: the sub-sampled, weakly labelled, occluded run splits.

:func:`celeba_splits` builds them from the splits that
:func:`cmi_jax.data.celeba_files.load_celeba` reads.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

from cmi_jax import programs
from cmi_jax import validate
from cmi_jax.data import correlation
from cmi_jax.data import host
from cmi_jax.data import occlusion
from cmi_jax.data.base import ArrayDataset
from cmi_jax.data.base import validate_labels
from cmi_jax.data.celeba_files import CelebASplits

_log = logging.getLogger(__name__)

CORRELATION_MODES = ('subsampled', 'natural')
_SPLITS = ('train', 'train_eval', 'val', 'test_anti', 'test_uncorr')


def correlated_subsample(labels: np.ndarray, table: np.ndarray | Sequence,
                         seed: int,
                         names: Sequence[str] | None = None) -> np.ndarray:
  """Sorted row indices (int64 ``[M]``) of the largest sub-sample on ``table``.

  Draws, without replacement, the rows of every attribute combination that
  :func:`~cmi_jax.data.correlation.exact_subsample_counts` gives. ``labels``
  are ``[N, K]`` in {0, 1} (none missing), ``table`` of shape ``(2,) * K``;
  the optional K ``names`` go into error messages.
  """
  seed = validate.integer(seed, 'seed', 0)
  table = correlation.validate_table(table)
  labels = np.asarray(labels)
  validate_labels(labels, table.shape, names,
                  f'correlated_subsample to a table of shape {table.shape}')
  if np.any(labels < 0):
    raise ValueError('correlated_subsample: labels contain -1 (missing); '
                     'sub-sample the fully labelled data, then remove labels.')
  counts = correlation.exact_subsample_counts(
      correlation.joint_counts(labels), table, names)
  rng = np.random.default_rng(seed)
  flat = correlation.labels_to_combination(labels.astype(np.int64))
  chosen = [rng.choice(np.flatnonzero(flat == c), size=int(n), replace=False)
            for c, n in enumerate(counts.ravel())]
  return np.sort(np.concatenate(chosen)).astype(np.int64)


def remove_labels(labels: np.ndarray, fraction: float, seed: int
                  ) -> np.ndarray:
  """Weak supervision: a copy of ``labels`` with some set to -1 (missing).

  For every attribute independently, exactly ``round(fraction * N)`` rows
  (Python rounding), chosen uniformly, lose their label. Returns int32
  ``[N, K]``.
  """
  seed = validate.integer(seed, 'seed', 0)
  labels = np.asarray(labels)
  validate.arrays('remove_labels', {'labels': (labels, 'integer [N, K]')})
  fraction = validate.number(fraction, 'the fraction of removed labels', 0, 1,
                             open_high=True,
                             hint='1 would leave no label to train on.')
  removed = int(round(fraction * len(labels)))
  out = labels.astype(np.int32)  # a copy
  rng = np.random.default_rng(seed)
  for k in range(labels.shape[1]):
    out[rng.permutation(len(labels))[:removed], k] = -1
  return out


def occlusion_masks(num_images: int, height: int, width: int, noise: float,
                    patch: int = 4, seed: int = 0) -> np.ndarray:
  """Random blob masks (:mod:`cmi_jax.data.occlusion`), one per image.

  The fields depend on ``seed`` only, so a larger ``noise`` occludes a
  superset of the pixels. Returns uint8 ``[num_images, height, width]``: 1
  where kept, 0 where occluded.
  """
  seed = validate.integer(seed, 'seed', 0)
  noise = validate.number(noise, 'noise (occlusion threshold)', 0, 1)
  patch = validate.integer(patch, 'patch', 1)
  field = np.random.default_rng(seed).random((num_images, patch, patch))
  masks = np.empty((num_images, height, width), np.uint8)
  for start in range(0, num_images, 4096):  # bounds the device temporaries
    block = jnp.asarray(field[start:start + 4096], jnp.float32)
    masks[start:start + 4096] = ~np.asarray(
        programs.compiled(occlusion.occluded, static_argnums=(1, 2))(
            block, height, width, noise))
  return masks


def occlude(images: np.ndarray, noise: float, patch: int = 4, seed: int = 0
            ) -> np.ndarray:
  """Images ``[N, H, W, C]`` times their :func:`occlusion_masks` (same dtype).

  Occluded pixels become 0 (black) in every channel.
  """
  images = np.asarray(images)
  validate.arrays('occlude', {'images': (images, '[N, H, W, C]')})
  masks = occlusion_masks(*images.shape[:3], noise, patch, seed)
  return images * masks[..., None].astype(images.dtype)


def _child_seed(seed: int, purpose: str) -> int:
  """A seed for one use, independent of the others made from ``seed``."""
  state = np.random.SeedSequence([seed, zlib.crc32(purpose.encode())])
  return int(state.generate_state(1)[0])


def _frequencies(labels: np.ndarray) -> np.ndarray:
  """The joint table of the fully labelled rows of ``labels [N, K]``."""
  counts = correlation.joint_counts(labels)
  return counts / max(counts.sum(), 1)


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

  Returns:
    The five datasets above (images uint8 ``[N, 64, 64, 3]``, labels int32
    ``[N, K]``) and ``'placement'``, ``'tables'`` (split -> float64 table
    ``(2,) * K``, target or held), ``'joint_counts'`` (split -> int64 counts
    of the fully labelled rows), ``'attributes'``, ``'correlation_mode'``,
    ``'natural_corr'`` (measured for ``'natural'`` with K = 2, else None).
  """
  seed = validate.integer(seed, 'seed', 0)
  validate.choice(correlation_mode, 'correlation_mode', CORRELATION_MODES)
  natural = correlation_mode == 'natural'
  names = tuple(splits.attributes)
  if len(names) < 2:
    raise ValueError(f'correlated splits need K >= 2 attributes; got {names}. '
                     'Load CelebA with two or more attributes.')
  batch_size = validate.integer(batch_size, 'batch_size', 1)
  validate.number(weak_supervision, 'weak_supervision', 0, 1, open_high=True)
  validate.number(noise, 'noise', 0, 1)
  natural_corr = None
  if natural:
    train_table = _frequencies(splits.train.labels)
    if len(names) == 2:  # a constant attribute (NaN) counts as 0
      natural_corr = float(np.nan_to_num(
          correlation.realised_correlation(splits.train.labels)[0, 1]))
    train_corr = 0.0 if natural_corr is None else natural_corr
  else:
    train_table = correlation.joint_table(train_corr, len(names))
  tables = correlation.split_tables(train_table, train_corr, len(names))
  sources = {'train': splits.train, 'val': splits.val,
             'test_anti': splits.test, 'test_uncorr': splits.test}

  chosen = {}
  for key, split in sources.items():
    whole = natural and key in ('train', 'val')
    try:
      index = slice(None) if whole else correlated_subsample(
          split.labels, tables[key], _child_seed(seed, 'subsample/' + key),
          names)
    except ValueError as e:
      raise ValueError(f'CelebA split {key!r} at its table '
                       f'{tables[key].ravel().round(3).tolist()}: {e}') from e
    images, labels = split.images[index], split.labels[index]
    validate.integer(batch_size, 'batch_size', 1, len(labels), hint=(
        f'CelebA split {key!r} has {len(labels)} examples'
        + ('' if whole else ' after sub-sampling') + ': lower batch_size'
        + ('.' if whole else ' or the correlation.')))
    if noise > 0:
      images = occlude(images, noise, occlusion_patch,
                       _child_seed(seed, 'occlude/' + key))
    chosen[key] = (images, labels)

  nbytes = sum(int(images.nbytes) for images, _ in chosen.values())
  where, reason = host.choose_placement(nbytes, placement,
                                        memory_fraction=device_memory_fraction)
  _log.info('CelebA data placement: %s (%s).', where, reason)
  kind, to_array = ((host.HostDataset, np.ascontiguousarray) if where == 'host'
                     else (ArrayDataset, jnp.asarray))
  images = {k: to_array(v[0]) for k, v in chosen.items()}
  labels = {k: np.asarray(v[1], np.int32) for k, v in chosen.items()}
  # train_eval shares the train images; train has the weak labels.
  images['train_eval'], labels['train_eval'] = images['train'], labels['train']
  labels['train'] = remove_labels(labels['train'], weak_supervision,
                                  _child_seed(seed, 'weak'))
  _log.info('CelebA splits (c=%g, weak=%g, noise=%g): %s', train_corr,
            weak_supervision, noise,
            ', '.join(f'{k} {len(v[1])}' for k, v in chosen.items()))
  if natural:
    tables['val'] = _frequencies(labels['val'])
  counts = {k: correlation.joint_counts(labels[k]) for k in _SPLITS}
  return {**{k: kind(images[k], to_array(labels[k]), batch_size=batch_size,
                     shuffle=k == 'train') for k in _SPLITS},
          'placement': where, 'tables': tables, 'joint_counts': counts,
          'attributes': names, 'correlation_mode': correlation_mode,
          'natural_corr': natural_corr}
