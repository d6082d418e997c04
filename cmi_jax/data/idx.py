"""Reader of the IDX files that MNIST and Fashion-MNIST are distributed in.

An IDX file is a big-endian header followed by a dense array::

  bytes 0-1   zero
  byte  2     element type (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
              0x0D float32, 0x0E float64)
  byte  3     number of dimensions D
  4 * D       the dimensions, uint32 big-endian
  ...         prod(dims) elements, big-endian

Files may be gzip-compressed or plain (detected from the content, not the
name). Every defect raises a ``ValueError`` that names the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Literal

import numpy as np

from cmi_jax import validate

_GZIP_MAGIC = b'\x1f\x8b'
# IDX type code -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: np.dtype('>u1'), 0x09: np.dtype('>i1'),
               0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
               0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}

# Standard file names of the two splits, without the optional '.gz'.
IDX_FILE_NAMES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}


def _read_bytes(path: str) -> bytes:
  """The decompressed content of ``path`` (gzip detected by its magic bytes)."""
  with open(path, 'rb') as f:
    raw = f.read()
  if raw[:2] != _GZIP_MAGIC:
    return raw
  try:
    return gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as e:  # cut or damaged stream
    raise ValueError(f'IDX file {path} is a corrupt or truncated gzip stream '
                     f'({e}); download or copy the file again.') from e


def parse_idx(data: bytes, name: str = '<bytes>') -> np.ndarray:
  """The array in the bytes of one (decompressed) IDX file, native byte order.

  Errors name ``name`` (usually the path).
  """
  if len(data) < 4 or data[:2] != b'\0\0' or data[2] not in _IDX_DTYPES:
    raise ValueError(
        f'IDX file {name} starts with 0x{data[:4].hex()}, not an IDX magic '
        f'number (0x0000, a type code in {sorted(map(hex, _IDX_DTYPES))}, the '
        'number of dimensions); is it the right file?')
  dtype, ndim = _IDX_DTYPES[data[2]], data[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(f'IDX file {name} is truncated inside its header '
                     f'({len(data)} bytes, header needs {header}).')
  shape = tuple(int(d) for d in np.frombuffer(data, '>u4', ndim, offset=4))
  expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  actual = len(data) - header
  if actual != expected:
    problem = (f'is truncated: its header declares shape {shape} ({expected} '
               f'data bytes) but only {actual} follow' if actual < expected
               else f'has {actual - expected} bytes after the {shape} array '
               'its header declares')
    raise ValueError(f'IDX file {name} {problem}; copy the file again.')
  array = np.frombuffer(data, dtype, count=int(np.prod(shape)), offset=header)
  return array.reshape(shape).astype(dtype.newbyteorder('='))


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads one IDX file (gzip-compressed or plain), as :func:`parse_idx`."""
  path = os.fspath(path)
  return parse_idx(_read_bytes(path), path)


def find_idx_file(directory: str | os.PathLike, stem: str) -> str:
  """Path of ``stem.gz`` or else ``stem`` in ``directory`` (else ValueError)."""
  directory = os.fspath(directory)
  for candidate in (stem + '.gz', stem):
    path = os.path.join(directory, candidate)
    if os.path.isfile(path):
      return path
  raise ValueError(f'IDX file {stem}(.gz) not found in {directory}; expected '
                   f'{os.path.join(directory, stem + ".gz")} or the '
                   'uncompressed file.')


def find_idx_files(directory: str | os.PathLike) -> list[str]:
  """Paths of all the files of :data:`IDX_FILE_NAMES` (see find_idx_file)."""
  return [find_idx_file(directory, stem)
          for stems in IDX_FILE_NAMES.values() for stem in stems]


def read_idx_split(directory: str | os.PathLike,
                   split: Literal['train', 'test'],
                   num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """``(images uint8 [N, H, W], labels int64 [N])`` of an MNIST-style split.

  ``directory`` holds the files of :data:`IDX_FILE_NAMES` (``.gz``
  optional); labels must lie in ``[0, num_classes)``.
  """
  validate.choice(split, 'split', tuple(IDX_FILE_NAMES))
  image_path, label_path = (find_idx_file(directory, stem)
                            for stem in IDX_FILE_NAMES[split])
  images, labels = read_idx(image_path), read_idx(label_path)
  validate.arrays('IDX files', {image_path: (images, 'uint8 [N, H, W]'),
                                label_path: (labels, 'uint8 [N]')},
                  'Either is not the right file, or the files do not belong '
                  'together.')
  if labels.size and labels.max() >= num_classes:
    raise ValueError(f'IDX file {label_path} has label {int(labels.max())}, '
                     f'outside [0, {num_classes}); is it a label file of a '
                     f'{num_classes}-class dataset?')
  return images, labels.astype(np.int64)
