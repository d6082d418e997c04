"""CelebA on disk: official files or TFDS ``celeb_a``, cached as 64x64 arrays.

As in the paper (Funke et al. 2022), images are centre-cropped to 128x128
and resized to 64x64x3, with the official train/validation/test partition.
The official files lie in ``celeba_dir`` as::

  celeba_dir/
    img_align_celeba/000001.jpg ...   (or img_align_celeba.zip holding
                                       img_align_celeba/000001.jpg ...)
    list_attr_celeba.txt
    list_eval_partition.txt

The 64x64 images are computed once per source and cached as ``.npy``::

  <cache_dir>/celeba64_v1_<source>/   (source: 'files' or 'tfds')
    images.npy       uint8 [N, 64, 64, 3]
    attributes.npy   int8 [N, 40] in {0, 1}, columns as CELEBA_ATTRIBUTES
    partition.npy    int8 [N], 0/1/2 = train/validation/test, sorted so
                     that every split is one contiguous block
    meta.json        source, location, split sizes, format version

A cache is written under a temporary name and renamed when complete; a
``*.tmp-*`` directory left by a killed process is never read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import json
import logging
import os
import shutil
import tempfile
import zipfile
import zlib
from typing import Any, Iterator, Literal, Sequence

import numpy as np
from PIL import Image
import tqdm

from cmi_jax import validate
from cmi_jax.data import sources

_log = logging.getLogger(__name__)

# The 40 attributes in the order of the columns of list_attr_celeba.txt.
CELEBA_ATTRIBUTES = (
    '5_o_Clock_Shadow', 'Arched_Eyebrows', 'Attractive', 'Bags_Under_Eyes',
    'Bald', 'Bangs', 'Big_Lips', 'Big_Nose', 'Black_Hair', 'Blond_Hair',
    'Blurry', 'Brown_Hair', 'Bushy_Eyebrows', 'Chubby', 'Double_Chin',
    'Eyeglasses', 'Goatee', 'Gray_Hair', 'Heavy_Makeup', 'High_Cheekbones',
    'Male', 'Mouth_Slightly_Open', 'Mustache', 'Narrow_Eyes', 'No_Beard',
    'Oval_Face', 'Pale_Skin', 'Pointy_Nose', 'Receding_Hairline',
    'Rosy_Cheeks', 'Sideburns', 'Smiling', 'Straight_Hair', 'Wavy_Hair',
    'Wearing_Earrings', 'Wearing_Hat', 'Wearing_Lipstick', 'Wearing_Necklace',
    'Wearing_Necktie', 'Young',
)

CROP_SIZE = 128  # centre crop of the 178x218 aligned images, in pixels
IMAGE_SIZE = 64  # side of the cached square images, in pixels

IMAGE_DIR = 'img_align_celeba'
IMAGE_ZIP = 'img_align_celeba.zip'
ATTR_FILE = 'list_attr_celeba.txt'
PARTITION_FILE = 'list_eval_partition.txt'

_TFDS_SPLITS = ('train', 'validation', 'test')  # partition codes 0, 1, 2
_TFDS_NAME = 'celeb_a'

# Bump when the preprocessing changes, so an old cache is never read.
_CACHE_VERSION = 1
_CACHE_FILES = ('images.npy', 'attributes.npy', 'partition.npy', 'meta.json')

_LAYOUT = (f'{IMAGE_DIR}/000001.jpg ... (or {IMAGE_ZIP}), {ATTR_FILE}, '
           f'{PARTITION_FILE}')


@dataclasses.dataclass(frozen=True)
class CelebASplit:
  """One split of CelebA.

  Attributes:
    images: uint8 ``[N, 64, 64, 3]``, pixel values 0..255.
    labels: int32 ``[N, K]`` in {0, 1}, one column per requested attribute.
  """
  images: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class CelebASplits:
  """The official CelebA partition, with the requested attributes.

  Attributes:
    train, val, test: :class:`CelebASplit` (the official partition 0, 1, 2).
    attributes: the K attribute names, in the column order of ``labels``.
    source: ``'tfds'`` or ``'files'``, where the images came from.
    location: the TFDS data dir or CelebA directory read (or cached).
  """
  train: CelebASplit
  val: CelebASplit
  test: CelebASplit
  attributes: tuple[str, ...]
  source: str
  location: str


# ---------------------------------------------------------------------- images
def _preprocess(data: bytes, name: str) -> np.ndarray:
  """Encoded image bytes -> uint8 ``[64, 64, 3]``.

  A centre ``CROP_SIZE`` crop, rounded like torchvision's ``CenterCrop``,
  then PIL's bilinear resize, which averages all covered pixels when
  shrinking, like ``torchvision.transforms.Resize`` of the reference.
  """
  try:
    image = Image.open(io.BytesIO(data))
    image.load()  # decode now, so a truncated file fails here
  except (OSError, ValueError, SyntaxError) as e:
    raise ValueError(f'cannot decode image {name} ({e}); the file is corrupt '
                     'or truncated: extract or copy it again.') from e
  width, height = image.size
  if width < CROP_SIZE or height < CROP_SIZE:
    raise ValueError(f'image {name} is {width}x{height} pixels, smaller than '
                     f'the {CROP_SIZE}x{CROP_SIZE} centre crop; CelebA aligned '
                     'images are 178x218: is this the img_align_celeba set?')
  left = int(round((width - CROP_SIZE) / 2.0))  # (25, 45) for 178x218
  top = int(round((height - CROP_SIZE) / 2.0))
  image = image.convert('RGB').crop(
      (left, top, left + CROP_SIZE, top + CROP_SIZE))
  image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
  return np.asarray(image, dtype=np.uint8)


# ---------------------------------------------------------- the official files
def _read_lines(path: str | os.PathLike) -> list[str]:
  with open(path, 'r', encoding='utf-8', errors='replace') as f:
    return [line for line in f.read().splitlines() if line.strip()]


def read_attribute_file(path: str | os.PathLike
                        ) -> tuple[list[str], np.ndarray]:
  """``(filenames, attributes int8 [N, 40])`` of ``list_attr_celeba.txt``.

  Line 1 holds the number of images, line 2 the 40 attribute names, then
  one line per image: ``000001.jpg -1  1 ...`` with 40 values in {-1, 1};
  ``attributes`` is 1 where the file says 1, else 0.
  """
  lines = _read_lines(path) + ['', '']
  rows = [line.split() for line in lines[2:-2]]
  bad = [i for i, fields in enumerate(rows)  # a file name and 40 values
         if len(fields) != 41 or not set(fields[1:]) <= {'1', '-1'}]
  problem = (
      f'line 1 is {lines[0][:40]!r}, not the number of images '
      f'({len(rows)} rows follow)' if lines[0].split()[:1] != [str(len(rows))]
      else 'line 2 does not name the 40 CelebA attributes in the official '
      f'order {list(CELEBA_ATTRIBUTES)}'
      if tuple(lines[1].split()) != CELEBA_ATTRIBUTES
      else f'line {bad[0] + 3} is {lines[bad[0] + 2][:60]!r}, not a file '
      'name and 40 values in {-1, 1}' if bad else None)
  if problem:
    raise ValueError(f'{path}: {problem}; the file is truncated or edited: '
                     'copy it again.')
  values = np.array([[v == '1' for v in f[1:]] for f in rows], np.int8)
  return [f[0] for f in rows], values.reshape(len(rows), len(CELEBA_ATTRIBUTES))


def read_partition_file(path: str | os.PathLike) -> dict[str, int]:
  """File name -> partition (0 train, 1 validation, 2 test).

  From ``list_eval_partition.txt``, one ``000001.jpg 0`` per line.
  """
  partition = {}
  for i, line in enumerate(_read_lines(path)):
    fields = line.split()
    if len(fields) != 2 or fields[1] not in ('0', '1', '2'):
      raise ValueError(f'{path}, line {i + 1}: expected "<file name> 0|1|2"; '
                       f'got {line[:60]!r}.')
    partition[fields[0]] = int(fields[1])
  return partition


class _ImageReader:
  """The encoded images of ``img_align_celeba/`` or its zip, by file name."""

  def __init__(self, celeba_dir: str):
    directory = os.path.join(celeba_dir, IMAGE_DIR)
    archive = os.path.join(celeba_dir, IMAGE_ZIP)
    self._zip = None
    self.where = directory if os.path.isdir(directory) else archive
    if os.path.isdir(directory):
      self.members = {name: os.path.join(directory, name)
                      for name in os.listdir(directory)}
    else:  # the caller checked that one of the two exists
      try:
        self._zip = zipfile.ZipFile(archive)
      except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f'{archive} is not a readable zip archive ({e}); '
                         'download or copy it again.') from e
      # By base name, so a re-zipped flat archive works too.
      self.members = {os.path.basename(m): m for m in self._zip.namelist()
                      if not m.endswith('/')}

  def read(self, filename: str) -> bytes:
    member = self.members[filename]
    try:
      with (self._zip.open(member) if self._zip else open(member, 'rb')) as f:
        return f.read()
    except (OSError, zipfile.BadZipFile, zlib.error) as e:
      raise ValueError(f'cannot read image {filename} from {self.where} '
                       f'({e}); copy the data again.') from e

  def close(self) -> None:
    if self._zip is not None:
      self._zip.close()


# ------------------------------------------------------------------- the cache
def default_cache_dir() -> str:
  """``$XDG_CACHE_HOME/cmi_jax`` (``~/.cache/cmi_jax`` when unset)."""
  root = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
  return os.path.join(root, 'cmi_jax')


def cache_path(cache_dir: str | os.PathLike, source: str) -> str:
  """The cache directory of one source (``'files'`` or ``'tfds'``)."""
  return os.path.join(os.fspath(cache_dir),
                      f'celeba{IMAGE_SIZE}_v{_CACHE_VERSION}_{source}')


def _read_meta(path: str) -> dict[str, Any] | None:
  """The cache's metadata, or None if ``path`` is not a complete cache."""
  if not all(os.path.isfile(os.path.join(path, f)) for f in _CACHE_FILES):
    return None
  with open(os.path.join(path, 'meta.json'), 'r', encoding='utf-8') as f:
    return json.load(f)


def _reuse_cache(path: str, key: str, expected: Any, data: str) -> bool:
  """Whether ``path`` is a complete cache to reuse.

  Raises for a foreign directory there, or a cache whose ``meta[key]`` is not
  the ``expected`` (None: not checked) of ``data``.
  """
  meta = _read_meta(path)
  if meta is None and os.path.exists(path):
    raise ValueError(f'{path} exists but is not a complete CelebA cache (it '
                     'was not written by cmi_jax); delete it.')
  if meta is None:
    return False
  if expected is not None and meta[key] != expected:
    raise ValueError(
        f'the CelebA cache {path} holds {key}={meta[key]} but {data} has '
        f'{expected}; delete {path} or pass another cache_dir.')
  _log.info('CelebA: reusing the cache %s', path)
  return True


def _write_cache(path: str, split_sizes: Sequence[int],
                 examples: Iterator[tuple[np.ndarray, np.ndarray]],
                 meta: dict[str, Any], description: str) -> None:
  """Writes the cache directory ``path`` atomically (it appears complete).

  ``examples`` yields ``(image uint8 [64, 64, 3], attributes int8 [40])`` for
  the ``split_sizes`` train, validation and test examples, in that order.
  """
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  # Same filesystem as the target, so the final rename is atomic.
  tmp = tempfile.mkdtemp(prefix=os.path.basename(path) + '.tmp-', dir=parent)
  try:
    total = int(sum(split_sizes))
    images = np.lib.format.open_memmap(
        os.path.join(tmp, 'images.npy'), mode='w+', dtype=np.uint8,
        shape=(total, IMAGE_SIZE, IMAGE_SIZE, 3))
    attributes = np.zeros((total, len(CELEBA_ATTRIBUTES)), np.int8)
    for i, (image, attrs) in enumerate(tqdm.tqdm(
        examples, total=total, desc=description, unit='img', mininterval=1.0)):
      images[i], attributes[i] = image, attrs
    images.flush()
    del images
    np.save(os.path.join(tmp, 'attributes.npy'), attributes)
    np.save(os.path.join(tmp, 'partition.npy'),
            np.repeat(np.arange(3, dtype=np.int8), split_sizes))
    meta = dict(meta, num_images=total, version=_CACHE_VERSION,
                split_sizes=list(split_sizes), image_size=IMAGE_SIZE,
                crop_size=CROP_SIZE, attributes=list(CELEBA_ATTRIBUTES))
    with open(os.path.join(tmp, 'meta.json'), 'w', encoding='utf-8') as f:
      json.dump(meta, f, indent=1)
    os.rename(tmp, path)
  except BaseException as e:
    shutil.rmtree(tmp, ignore_errors=True)
    # A rename fails where another process finished the same cache first.
    if not isinstance(e, OSError) or _read_meta(path) is None:
      raise


def prepare_celeba(celeba_dir: str | os.PathLike,
                   cache_dir: str | os.PathLike) -> str:
  """Caches the official CelebA files as 64x64 arrays (once); returns the path.

  Reads ``celeba_dir`` (the layout of the module doc), preprocesses every
  image and writes all splits to ``cache_path(cache_dir, 'files')``; a
  complete cache is reused without reading any image. A failure leaves no
  cache behind.
  """
  celeba_dir = os.fspath(celeba_dir)
  path = cache_path(cache_dir, 'files')
  attr_path = os.path.join(celeba_dir, ATTR_FILE)
  listed = None  # a cheap check that a cache belongs to this data
  with contextlib.suppress(OSError, IndexError, ValueError), open(
      attr_path, 'r', encoding='utf-8', errors='replace') as f:
    listed = int(f.readline().split()[0])
  if _reuse_cache(path, 'num_images', listed, attr_path):
    return path
  partition_path = os.path.join(celeba_dir, PARTITION_FILE)
  images = [os.path.join(celeba_dir, name) for name in (IMAGE_DIR, IMAGE_ZIP)]
  missing = [path for path in (attr_path, partition_path)
             if not os.path.isfile(path)]
  if not any(map(os.path.exists, images)):
    missing.append(' or '.join(images))
  if missing:
    raise ValueError(f'CelebA data {missing} not found. celeba_dir ('
                     f'{celeba_dir}) must hold the official layout: {_LAYOUT}.')
  with contextlib.closing(_ImageReader(celeba_dir)) as reader:
    filenames, attributes = read_attribute_file(attr_path)
    partition = read_partition_file(partition_path)
    for where, known, fix in (
        (partition_path, partition, 'the two files must list the same images'),
        (reader.where, reader.members, f'extract the complete {IMAGE_ZIP}')):
      missing = [f for f in filenames if f not in known]
      if missing:
        raise ValueError(f'{len(missing)} images listed in {attr_path} are '
                         f'missing from {where}, e.g. {missing[:3]}; {fix}.')
    codes = np.array([partition[f] for f in filenames], np.int8)
    # Stable: file order within each split's block.
    order = np.argsort(codes, kind='stable')
    examples = (
        (_preprocess(reader.read(filenames[i]),
                     f'{filenames[i]} in {reader.where}'), attributes[i])
        for i in order)
    _write_cache(
        path, [int(np.sum(codes == s)) for s in range(3)], examples,
        meta={'source': 'files', 'location': os.path.abspath(celeba_dir)},
        description='CelebA -> 64x64')
  _log.info('CelebA: cached %d images from %s in %s', len(filenames),
            celeba_dir, path)
  return path


# ------------------------------------------------------------------------ tfds
def default_tfds_data_dir() -> str:
  """TFDS's default: ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
  return (os.environ.get('TFDS_DATA_DIR')
          or os.path.expanduser('~/tensorflow_datasets'))


def _prepared_tfds_builder(data_dir: str):
  """The ``celeb_a`` builder if it is prepared in ``data_dir``, else None."""
  # Checked first: an absent dataset costs no TFDS import.
  if not os.path.isdir(os.path.join(data_dir, _TFDS_NAME)):
    return None
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(_TFDS_NAME, data_dir=data_dir)
  return builder if builder.is_prepared() else None


def _tfds_examples(builder, split_sizes: Sequence[int]
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields the preprocessed examples of all splits, in partition order.

  The JPEG bytes go undecoded through the same PIL path as the official
  files, so both sources give the same pixels.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  file_format = builder.info.file_format
  array_record = getattr(file_format, 'value', file_format) == 'array_record'
  decoders = {'image': tfds.decode.SkipDecoding()}
  if not array_record:  # TFRecord needs TensorFlow
    try:
      sources.import_tensorflow_cpu_only()
    except ImportError as e:
      raise ValueError(
          f'the TFDS {_TFDS_NAME} data is stored as TFRecord, which needs '
          'TensorFlow to read: install it (pip install "cmi-jax[tf]") or use '
          "source='files' with celeba_dir.") from e
  for split, expected in zip(_TFDS_SPLITS, split_sizes):
    if array_record:  # no TensorFlow involved
      examples = builder.as_data_source(split=split, decoders=decoders)
    else:
      examples = tfds.as_numpy(builder.as_dataset(
          split=split, shuffle_files=False, decoders=decoders))
    count = 0
    for count, example in enumerate(examples, 1):
      if count > expected:
        break
      yield (_preprocess(example['image'], f'{split} example {count - 1}'),
             np.array([example['attributes'][a] for a in CELEBA_ATTRIBUTES],
                      np.int8))
    if count != expected:
      raise ValueError(
          f'TFDS {_TFDS_NAME} split {split} in {builder.data_dir} does not '
          f'yield the {expected} examples of its metadata: prepare it again.')


# --------------------------------------------------------------------- loading
def _no_data_message(source: str, tfds_dir: str) -> str:
  """Why :func:`load_celeba` found no data, and the ways to provide it."""
  tfds_way = (
      f'the TFDS dataset {_TFDS_NAME} is not prepared in {tfds_dir} (looked '
      f'for {os.path.join(tfds_dir, _TFDS_NAME)}/<version>/dataset_info.json):'
      ' prepare it there (its images need a manual download) or set '
      'tfds_data_dir=<the data dir that holds it>; or ')
  return (f'no CelebA data found for source={source!r}: '
          + ('' if source == 'files' else tfds_way)
          + f"set celeba_dir=<dir> (with source 'auto' or 'files') where "
          f'<dir> holds {_LAYOUT}.')


def check_attributes(attributes: str | Sequence[str], minimum: int = 1
                     ) -> tuple[str, ...]:
  """The CelebA attribute names of ``attributes``, as a tuple.

  Accepts ``'Male,Smiling'``, ``('Male,Smiling',)`` and ``('Male',
  'Smiling')``. ValueError unless they are at least ``minimum`` (1 or 2)
  different valid names; an unknown name gets the close matches.
  """
  text = (attributes if isinstance(attributes, str)
          else ','.join(map(str, attributes)))
  names = tuple(part.strip() for part in text.split(',') if part.strip())
  unknown = [n for n in names if n not in CELEBA_ATTRIBUTES]
  if unknown:
    hint = '; '.join(
        f'{n!r}: did you mean {h}?' for n in unknown
        if (h := difflib.get_close_matches(n, CELEBA_ATTRIBUTES, 2, 0.6)))
    raise ValueError(
        f'unknown CelebA attributes {unknown}'
        f'{" (" + hint + ")" if hint else ""}; the valid names '
        f'(case-sensitive) are {list(CELEBA_ATTRIBUTES)}.')
  if len(names) < minimum or len(set(names)) != len(names):
    raise ValueError(
        f'attributes must name at least {("one", "two")[minimum - 1]} '
        f'different CelebA attributes, none twice; got {list(names)}.')
  return names


def _read_cache(path: str, attributes: tuple[str, ...]
                ) -> tuple[CelebASplit, CelebASplit, CelebASplit]:
  images = np.load(os.path.join(path, 'images.npy'), mmap_mode='r')
  columns = [CELEBA_ATTRIBUTES.index(a) for a in attributes]
  labels = np.load(os.path.join(path, 'attributes.npy'))[:, columns]
  bounds = np.cumsum([0] + _read_meta(path)['split_sizes'])
  return tuple(CelebASplit(images=np.array(images[lo:hi]),
                           labels=labels[lo:hi].astype(np.int32))
               for lo, hi in zip(bounds[:-1], bounds[1:]))


def load_celeba(attributes: str | Sequence[str] = ('Male', 'Smiling'),
                source: Literal['auto', 'tfds', 'files'] = 'auto',
                tfds_data_dir: str | os.PathLike | None = None,
                celeba_dir: str | os.PathLike | None = None,
                cache_dir: str | os.PathLike | None = None) -> CelebASplits:
  """Loads the official CelebA partition as 64x64 images and attribute labels.

  ``source='auto'`` tries, in this order, ``'tfds'``: the official TFDS
  ``celeb_a`` prepared in ``tfds_data_dir`` (default
  :func:`default_tfds_data_dir`; TFRecord files need TensorFlow, ArrayRecord
  does not), then ``'files'``: the official files in ``celeba_dir``. The
  first use of a source fills the cache in ``cache_dir`` (default
  :func:`default_cache_dir`). ``attributes`` names the K label columns.
  Without data, the ValueError names the paths tried and the arguments
  that point to the data.
  """
  attributes = check_attributes(attributes)
  validate.choice(source, 'source', ('auto', 'tfds', 'files'))
  tfds_dir = os.fspath(tfds_data_dir or default_tfds_data_dir())
  cache_dir = os.fspath(cache_dir or default_cache_dir())
  builder = None if source == 'files' else _prepared_tfds_builder(tfds_dir)
  if builder is None and (source == 'tfds' or celeba_dir is None):
    raise ValueError(_no_data_message(source, tfds_dir))
  if builder is not None:
    used, location = 'tfds', str(builder.data_dir)
    path = cache_path(cache_dir, 'tfds')
    split_sizes = [int(builder.info.splits[s].num_examples)
                   for s in _TFDS_SPLITS]
    if not _reuse_cache(path, 'split_sizes', split_sizes,
                        f'the TFDS data in {location}'):
      _write_cache(path, split_sizes, _tfds_examples(builder, split_sizes),
                   meta={'source': 'tfds', 'location': location},
                   description='TFDS celeb_a -> 64x64')
  else:
    used, location = 'files', os.path.abspath(os.fspath(celeba_dir))
    path = prepare_celeba(celeba_dir, cache_dir)
  train, val, test = _read_cache(path, attributes)
  _log.info('CelebA: source %s (%s, cache %s); train/val/test = %d/%d/%d; '
            'attributes %s', used, location, path, len(train), len(val),
            len(test), ', '.join(attributes))
  return CelebASplits(train=train, val=val, test=test, attributes=attributes,
                      source=used, location=location)
