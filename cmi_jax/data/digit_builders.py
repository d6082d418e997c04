"""TFDS builders that turn local IDX files into a prepared, cached dataset.

``cmi_mnist_idx`` and ``cmi_fashion_mnist_idx`` read the four standard IDX
files (:data:`cmi_jax.data.idx.IDX_FILE_NAMES`) from a *manual* directory;
nothing is downloaded. The dataset is written as ``array_record`` (read back
without TensorFlow) in the IDX order::

  builder = prepare_idx_dataset('fashion_mnist', manual_dir, data_dir)
  images, labels = read_prepared_split(builder, 'train')
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from cmi_jax import validate
from cmi_jax.data import idx

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
# TFDS file format that needs no TensorFlow to write or read.
FILE_FORMAT = 'array_record'
# 'train-images-idx3-ubyte.gz, ..., t10k-labels-idx1-ubyte.gz'.
_IDX_FILES_GZ = ', '.join(f'{stem}.gz' for stems in idx.IDX_FILE_NAMES.values()
                          for stem in stems)


class _IdxDigitsBuilder(tfds.core.GeneratorBasedBuilder,
                        skip_registration=True):
  """Shared logic of the IDX digit builders (not registered itself)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'IDX files read from a manual directory, in order.'}
  _DESCRIPTION = ''
  # TFDS derives `code_path` through `importlib_resources`, which it installs
  # only on Python < 3.9; the path only locates a checksums file we lack.
  code_path = epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=self._DESCRIPTION,
        features=tfds.features.FeaturesDict({
            # One raw string, not 784 integers: smaller, faster to decode.
            'image': tfds.features.Tensor(
                shape=IMAGE_SHAPE, dtype=np.uint8,
                encoding=tfds.features.Encoding.BYTES),
            'label': tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=('image', 'label'),
        disable_shuffling=True,  # keep the IDX order
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    # Both splits are validated before TFDS writes anything.
    arrays = {split: idx.read_idx_split(manual_dir, split, NUM_CLASSES)
              for split in ('train', 'test')}
    height, width = IMAGE_SHAPE
    for split, (images, _) in arrays.items():
      validate.arrays(f'{split} images in {manual_dir}',
                      {'images': (images, f'[N, {height}, {width}]')},
                      'These are not MNIST-style IDX files.')
    return {split: self._generate_examples(*a) for split, a in arrays.items()}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray
                         ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    for i in range(len(images)):
      yield i, {'image': images[i], 'label': labels[i]}


class CmiMnistIdx(_IdxDigitsBuilder):
  """MNIST handwritten digits from local IDX files (no download)."""

  _DESCRIPTION = 'MNIST from local IDX files, original order.'
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f'Place the four MNIST IDX files ({_IDX_FILES_GZ}; .gz optional) in the '
      'manual directory.')


class CmiFashionMnistIdx(_IdxDigitsBuilder):
  """Fashion-MNIST from local IDX files (Debian: dataset-fashion-mnist)."""

  _DESCRIPTION = 'Fashion-MNIST from local IDX files, original order.'
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f'Place the four Fashion-MNIST IDX files ({_IDX_FILES_GZ}) in the manual '
      'directory; on Debian/Ubuntu `apt-get install dataset-fashion-mnist` '
      'puts them in /usr/share/datasets/fashion-mnist.')


BUILDERS: dict[str, type[_IdxDigitsBuilder]] = {
    'mnist': CmiMnistIdx, 'fashion_mnist': CmiFashionMnistIdx}


def idx_builder(dataset: str, data_dir: str | os.PathLike | None = None
                ) -> _IdxDigitsBuilder:
  """The IDX builder of ``dataset`` ('mnist' or 'fashion_mnist').

  ``data_dir`` is the TFDS data directory (the cache); None means TFDS's
  default (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
  """
  validate.choice(dataset, 'dataset', tuple(BUILDERS))
  return BUILDERS[dataset](
      data_dir=os.fspath(data_dir) if data_dir is not None else None,
      file_format=FILE_FORMAT)


def _missing_dirs(path: str) -> list[str]:
  """``path`` and its ancestors that do not exist yet, deepest first."""
  missing = []
  path = os.path.abspath(path)
  while not os.path.exists(path) and path not in missing:
    missing.append(path)
    path = os.path.dirname(path)
  return missing


def prepare_idx_dataset(dataset: str, manual_dir: str | os.PathLike,
                        data_dir: str | os.PathLike | None = None
                        ) -> _IdxDigitsBuilder:
  """Prepares (once) the IDX builder of ``dataset`` and returns it.

  A dataset already prepared in ``data_dir`` (as in :func:`idx_builder`) is
  reused without reading ``manual_dir``, the folder with the four IDX files.
  A failure (a ValueError names a missing or corrupt file) leaves nothing in
  ``data_dir``, not even the empty folders this call created.
  """
  builder = idx_builder(dataset, data_dir)
  if builder.is_prepared():
    return builder
  manual_dir = os.fspath(manual_dir)
  # TFDS's own error for an empty manual dir does not name the files.
  idx.find_idx_files(manual_dir)
  downloads = os.path.join(builder.data_dir_root, 'downloads')
  created = sorted(
      {p for d in (builder.data_dir, os.path.join(downloads, 'extracted'),
                   os.path.join(downloads, 'manual'))
       for p in _missing_dirs(d)}, key=lambda p: -p.count(os.sep))
  config = tfds.download.DownloadConfig(
      manual_dir=manual_dir, try_download_gcs=False,
      compute_stats=tfds.download.ComputeStatsMode.SKIP)
  try:
    builder.download_and_prepare(download_config=config)
  except BaseException:
    for path in created:  # deepest first; skips those not empty
      with contextlib.suppress(OSError):
        os.rmdir(path)
    # Another process may have prepared the same cache concurrently.
    concurrent = idx_builder(dataset, data_dir)
    if concurrent.is_prepared():
      return concurrent
    raise
  return builder


def read_prepared_split(builder: tfds.core.DatasetBuilder, split: str
                        ) -> tuple[np.ndarray, np.ndarray]:
  """``(images uint8 [N, 28, 28], labels int64 [N])`` of a prepared split.

  Read TF-free from array_record, in stored order; a trailing channel axis
  of 1 is dropped.
  """
  source = builder.as_data_source(split=split)
  examples = source.__getitems__(list(range(len(source))))
  images = np.stack([np.asarray(e['image'], np.uint8) for e in examples])
  labels = np.asarray([e['label'] for e in examples], np.int64)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  return images, labels
