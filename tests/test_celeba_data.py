"""Tests of the CelebA data path (cmi_jax/data/celeba.py)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

import celeba_fixture
import jax
import numpy as np
from PIL import Image
import pytest

from cmi_jax.data import celeba
from cmi_jax.data import celeba_files
from cmi_jax.data import host
from cmi_jax.data.base import ArrayDataset
from cmi_jax.data.correlation import exact_subsample_counts
from cmi_jax.data.correlation import joint_counts
from cmi_jax.data.correlation import joint_table
from cmi_jax.data.correlation import labels_to_combination

NUM_FAKE = celeba_fixture.NUM_FAKE


def _crop_resize(image):
  """Centre 128 crop of a 178x218 image, bilinear resize to 64."""
  return np.asarray(image.convert('RGB').crop((25, 45, 153, 173)).resize(
      (64, 64), Image.Resampling.BILINEAR))


def _cache_files(cache_dir):
  return sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []


@pytest.fixture(scope='module')
def loaded(fake_celeba, tmp_path_factory):
  return celeba_files.load_celeba(
      ('Male', 'Smiling'), source='files', celeba_dir=fake_celeba,
      cache_dir=tmp_path_factory.mktemp('cache'))


def test_attribute_names_match_the_tfds_builder():
  from tensorflow_datasets.datasets.celeb_a import celeb_a_dataset_builder
  assert celeba_files.CELEBA_ATTRIBUTES == tuple(
      celeb_a_dataset_builder.ATTR_HEADINGS)
  assert len(celeba_files.CELEBA_ATTRIBUTES) == 40


def test_fixture_writes_the_official_format(fake_celeba):
  header, names, _, partition = celeba_fixture.read_official(fake_celeba)
  assert tuple(header) == celeba_files.CELEBA_ATTRIBUTES
  assert names[0] == '000001.jpg' and len(names) == NUM_FAKE
  path = os.path.join(fake_celeba, 'img_align_celeba', names[0])
  with Image.open(path) as im:
    assert im.format == 'JPEG' and im.size == (178, 218)
  assert set(np.unique(partition)) == {0, 1, 2}


def test_unknown_attribute_lists_the_valid_names(fake_celeba, tmp_path):
  with pytest.raises(ValueError, match='Smilling') as info:
    celeba_files.load_celeba(('Male', 'Smilling'), celeba_dir=fake_celeba,
                             cache_dir=tmp_path)
  assert '5_o_Clock_Shadow' in str(info.value)
  assert 'Smiling' in str(info.value) and 'Young' in str(info.value)
  with pytest.raises(ValueError, match='twice'):
    celeba_files.load_celeba(('Male', 'Male'), celeba_dir=fake_celeba,
                             cache_dir=tmp_path)
  assert _cache_files(tmp_path) == []  # failed before any work


def _cached_arrays(path):
  return {f: np.load(os.path.join(path, f + '.npy'))
          for f in ('images', 'attributes', 'partition')}


def test_prepare_gives_the_official_data(fake_celeba, tmp_path):
  _, names, attributes, partition = celeba_fixture.read_official(fake_celeba)
  arrays = _cached_arrays(celeba_files.prepare_celeba(fake_celeba, tmp_path))
  images = arrays['images']
  assert images.dtype == np.uint8 and images.shape == (NUM_FAKE, 64, 64, 3)
  assert arrays['attributes'].dtype == np.int8
  # Splits are contiguous blocks, in file order within each split.
  order = np.argsort(partition, kind='stable')
  np.testing.assert_array_equal(arrays['partition'], partition[order])
  np.testing.assert_array_equal(arrays['attributes'], attributes[order])
  for row in (0, 123, NUM_FAKE - 1):
    jpeg = os.path.join(fake_celeba, 'img_align_celeba', names[order[row]])
    with Image.open(jpeg) as image:
      np.testing.assert_array_equal(images[row], _crop_resize(image))


def test_zip_archive_gives_the_same_cache(tmp_path):
  as_dir = celeba_fixture.write_fake_celeba(tmp_path / 'dir', 24, seed=5)
  as_zip = celeba_fixture.write_fake_celeba(tmp_path / 'zip', 24, seed=5,
                                            zipped=True)
  assert sorted(os.listdir(as_zip)) == [
      'img_align_celeba.zip', 'list_attr_celeba.txt',
      'list_eval_partition.txt']
  from_dir = _cached_arrays(celeba_files.prepare_celeba(as_dir, tmp_path / 'a'))
  from_zip = _cached_arrays(celeba_files.prepare_celeba(as_zip, tmp_path / 'b'))
  for name, array in from_dir.items():
    np.testing.assert_array_equal(array, from_zip[name])


def test_load_celeba_files(loaded, fake_celeba):
  _, _, attributes, partition = celeba_fixture.read_official(fake_celeba)
  assert loaded.source == 'files'
  assert loaded.attributes == ('Male', 'Smiling')
  columns = [celeba_files.CELEBA_ATTRIBUTES.index(a) for a in loaded.attributes]
  for code, split in enumerate((loaded.train, loaded.val, loaded.test)):
    assert split.images.shape == (np.sum(partition == code), 64, 64, 3)
    assert split.images.dtype == np.uint8
    assert split.labels.dtype == np.int32
    np.testing.assert_array_equal(split.labels,
                                  attributes[partition == code][:, columns])


def test_attribute_order_follows_the_request(loaded, fake_celeba, tmp_path):
  swapped = celeba_files.load_celeba(('Smiling', 'Male', 'Young'),
                                     celeba_dir=fake_celeba, cache_dir=tmp_path,
                                     tfds_data_dir=tmp_path / 'no_tfds')
  np.testing.assert_array_equal(swapped.train.labels[:, :2],
                                loaded.train.labels[:, ::-1])
  np.testing.assert_array_equal(swapped.test.images, loaded.test.images)


def test_cache_is_reused_without_preparing(fake_celeba, tmp_path, monkeypatch):
  path = celeba_files.prepare_celeba(fake_celeba, tmp_path)
  stamps = {f: os.stat(os.path.join(path, f)).st_mtime_ns
            for f in os.listdir(path)}

  def fail(*args, **kwargs):
    raise AssertionError('the cache was prepared again')

  monkeypatch.setattr(celeba_files, '_preprocess', fail)
  monkeypatch.setattr(celeba_files, '_write_cache', fail)
  assert celeba_files.prepare_celeba(fake_celeba, tmp_path) == path
  splits = celeba_files.load_celeba(celeba_dir=fake_celeba, cache_dir=tmp_path,
                                    tfds_data_dir=tmp_path / 'no_tfds')
  assert len(splits.train) + len(splits.val) + len(splits.test) == NUM_FAKE
  assert stamps == {f: os.stat(os.path.join(path, f)).st_mtime_ns
                    for f in os.listdir(path)}
  assert _cache_files(tmp_path) == [os.path.basename(path)]


@pytest.mark.parametrize('missing', ['list_attr_celeba.txt',
                                     'list_eval_partition.txt',
                                     'img_align_celeba'])
def test_missing_file_names_it_and_leaves_no_cache(tmp_path, missing):
  root = celeba_fixture.write_fake_celeba(tmp_path / 'data', num_images=24)
  target = os.path.join(root, missing)
  shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
  cache = tmp_path / 'cache'
  with pytest.raises(ValueError, match=missing) as info:
    celeba_files.prepare_celeba(root, cache)
  assert 'list_eval_partition.txt' in str(info.value)  # the expected layout
  assert _cache_files(cache) == []


@pytest.mark.parametrize('corrupt', [False, True])
def test_missing_or_corrupt_image_is_named_and_leaves_no_cache(tmp_path,
                                                               corrupt):
  root = celeba_fixture.write_fake_celeba(tmp_path / 'data', num_images=24)
  jpeg = os.path.join(root, 'img_align_celeba', '000007.jpg')
  os.remove(jpeg)
  if corrupt:
    with open(jpeg, 'wb') as f:
      f.write(b'not a jpeg at all')
  with pytest.raises(ValueError, match='000007.jpg'):
    celeba_files.prepare_celeba(root, tmp_path / 'cache')
  assert _cache_files(tmp_path / 'cache') == []


def test_interrupted_prepare_leaves_no_cache(tmp_path, monkeypatch):
  root = celeba_fixture.write_fake_celeba(tmp_path / 'data', num_images=24)
  cache = tmp_path / 'cache'
  original = celeba_files._preprocess
  calls = []

  def crash_after_five(*args):
    calls.append(1)
    if len(calls) > 5:
      raise KeyboardInterrupt
    return original(*args)

  monkeypatch.setattr(celeba_files, '_preprocess', crash_after_five)
  with pytest.raises(KeyboardInterrupt):
    celeba_files.prepare_celeba(root, cache)
  assert _cache_files(cache) == []
  monkeypatch.setattr(celeba_files, '_preprocess', original)
  path = celeba_files.prepare_celeba(root, cache)
  assert np.load(os.path.join(path, 'images.npy')).shape[0] == 24


def test_files_path_does_not_import_tensorflow(fake_celeba, tmp_path):
  code = (
      'import sys\n'
      'from cmi_jax.data import celeba, celeba_files\n'
      f'celeba_files.load_celeba(celeba_dir={str(fake_celeba)!r}, '
      f'cache_dir={str(tmp_path)!r}, tfds_data_dir={str(tmp_path)!r})\n'
      "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n")
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-2000:]


def test_foreign_directory_at_the_cache_path_is_refused(fake_celeba, tmp_path):
  os.makedirs(os.path.join(celeba_files.cache_path(tmp_path, 'files'), 'junk'))
  with pytest.raises(ValueError, match='not a complete CelebA cache'):
    celeba_files.prepare_celeba(fake_celeba, tmp_path)


def test_cache_of_other_data_is_refused(tmp_path):
  small = celeba_fixture.write_fake_celeba(tmp_path / 'a', num_images=24)
  other = celeba_fixture.write_fake_celeba(tmp_path / 'b', num_images=28)
  celeba_files.prepare_celeba(small, tmp_path / 'cache')
  with pytest.raises(ValueError, match='delete'):
    celeba_files.prepare_celeba(other, tmp_path / 'cache')


def test_no_source_error_lists_both_ways(tmp_path):
  tfds_dir = str(tmp_path / 'tfds')
  with pytest.raises(ValueError) as info:
    celeba_files.load_celeba(tfds_data_dir=tfds_dir, cache_dir=tmp_path)
  message = str(info.value)
  assert 'tfds_data_dir=' in message
  assert 'celeba_dir=' in message
  assert os.path.join(tfds_dir, 'celeb_a') in message
  assert 'list_attr_celeba.txt' in message
  with pytest.raises(ValueError, match='not prepared in'):
    celeba_files.load_celeba(source='tfds', tfds_data_dir=tfds_dir,
                             cache_dir=tmp_path)
  with pytest.raises(ValueError, match='source must be'):
    celeba_files.load_celeba(source='web', cache_dir=tmp_path)


def _mock_reference(data_dir, split, num, file_format):
  """JPEG bytes and (Male, Smiling) of the mocked records.

  The mock draws different examples for the two readers, so this reads the
  way the loader must for ``file_format``.
  """
  import tensorflow as tf
  import tensorflow_datasets as tfds
  tf.config.set_visible_devices([], 'GPU')
  builder = tfds.builder('celeb_a', data_dir=data_dir)
  decoders = {'image': tfds.decode.SkipDecoding()}
  if file_format == 'array_record':
    source = builder.as_data_source(split=split, decoders=decoders)
    examples = [source[i] for i in range(num)]
  else:
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders=decoders)
    examples = list(tfds.as_numpy(ds.take(num)))
  jpegs, labels = [], []
  for ex in examples:
    jpegs.append(ex['image'])
    labels.append([ex['attributes']['Male'], ex['attributes']['Smiling']])
  return jpegs, np.array(labels, np.int32)


@pytest.mark.parametrize('file_format', ['tfrecord', 'array_record'])
def test_tfds_source_with_mock_data(tmp_path, fake_celeba, file_format):
  import tensorflow_datasets as tfds
  num = 8
  data_dir = str(tmp_path / 'tfds')
  celeba_fixture.write_celeba_tfds_metadata(data_dir, num, file_format)
  with tfds.testing.mock_data(num_examples=num, data_dir=data_dir,
                              policy=tfds.testing.MockPolicy.USE_FILES):
    # 'auto' prefers a prepared TFDS over the official files.
    splits = celeba_files.load_celeba(
        ('Male', 'Smiling'), source='auto', tfds_data_dir=data_dir,
        celeba_dir=fake_celeba, cache_dir=tmp_path / 'cache')
    ref_jpegs, ref_labels = _mock_reference(data_dir, 'validation', num,
                                            file_format)
  assert splits.source == 'tfds'
  assert os.path.isdir(celeba_files.cache_path(tmp_path / 'cache', 'tfds'))
  assert not os.path.isdir(celeba_files.cache_path(tmp_path / 'cache', 'files'))
  for split in (splits.train, splits.val, splits.test):
    assert split.images.shape == (num, 64, 64, 3)
    assert split.images.dtype == np.uint8
    assert split.labels.dtype == np.int32
  np.testing.assert_array_equal(splits.val.labels, ref_labels)
  # The same JPEG bytes, decoded by PIL as the official files are.
  expected = np.stack([_crop_resize(Image.open(io.BytesIO(jpeg)))
                       for jpeg in ref_jpegs])
  np.testing.assert_array_equal(splits.val.images, expected)
  # TF's decoder agrees up to its IDCT rounding (random-noise images make
  # that rounding as large as it gets).
  import tensorflow as tf
  decoded = np.stack([tf.io.decode_jpeg(jpeg).numpy() for jpeg in ref_jpegs])
  assert decoded.shape == (num, 218, 178, 3)
  by_tf = np.stack([_crop_resize(Image.fromarray(im)) for im in decoded])
  assert np.abs(splits.val.images.astype(int) - by_tf).mean() < 2.0


def test_auto_falls_back_to_files(fake_celeba, tmp_path):
  os.makedirs(tmp_path / 'tfds' / 'celeb_a')  # present but not prepared
  splits = celeba_files.load_celeba(tfds_data_dir=tmp_path / 'tfds',
                                    celeba_dir=fake_celeba, cache_dir=tmp_path)
  assert splits.source == 'files'


def _labels_with_counts(counts, seed=0):
  """Shuffled [N, K] labels with the given (2,)*K combination counts."""
  counts = np.asarray(counts)
  flat = np.repeat(np.arange(counts.size), counts.ravel())
  flat = np.random.default_rng(seed).permutation(flat)
  shifts = np.arange(counts.ndim - 1, -1, -1)
  return ((flat[:, None] >> shifts) & 1).astype(np.int32)


def test_subsample_hand_computed():
  # Table c=0.6: [[.4, .1], [.1, .4]]; the binding combinations allow 100.
  labels = _labels_with_counts([[50, 10], [30, 40]])
  index = celeba.correlated_subsample(labels, joint_table(0.6), seed=0)
  np.testing.assert_array_equal(joint_counts(labels[index]),
                                [[40, 10], [10, 40]])


@pytest.mark.parametrize('num_attributes,corr', [(2, 0.0), (2, 0.6),
                                                 (2, -0.8), (3, 0.5),
                                                 (4, 0.9)])
def test_subsample_follows_the_table(num_attributes, corr):
  rng = np.random.default_rng(num_attributes)
  probs = rng.dirichlet(np.ones(2**num_attributes) * 3)
  counts = rng.multinomial(6000, probs).reshape((2,) * num_attributes) + 5
  labels = _labels_with_counts(counts, seed=1)
  table = joint_table(corr, num_attributes)
  index = celeba.correlated_subsample(labels, table, seed=3)
  assert np.all(np.diff(index) > 0)  # sorted, no repeats
  assert index.min() >= 0 and index.max() < len(labels)
  got = joint_counts(labels[index])
  np.testing.assert_array_equal(got, exact_subsample_counts(counts, table))
  total = got.sum()
  assert np.all(np.abs(got / total - table) <= table.size / total)
  # Largest: one more example of the table's shape would not fit.
  assert np.any((total + table.size) * table > counts)


def test_subsample_seeds():
  labels = _labels_with_counts([[500, 300], [200, 400]])
  a = celeba.correlated_subsample(labels, joint_table(0.4), seed=1)
  b = celeba.correlated_subsample(labels, joint_table(0.4), seed=1)
  c = celeba.correlated_subsample(labels, joint_table(0.4), seed=2)
  np.testing.assert_array_equal(a, b)
  assert len(a) == len(c) and not np.array_equal(a, c)


def test_subsample_names_the_empty_combination():
  labels = _labels_with_counts([[50, 10], [0, 40]])
  with pytest.raises(ValueError, match='Male=1, Smiling=0'):
    celeba.correlated_subsample(labels, joint_table(0.2), 0,
                                names=('Male', 'Smiling'))
  # c=1 puts no mass on the mixed combinations: no error then.
  index = celeba.correlated_subsample(labels, joint_table(1.0), 0)
  np.testing.assert_array_equal(joint_counts(labels[index]),
                                [[40, 0], [0, 40]])


def test_subsample_names_a_combination_left_with_zero():
  # At c=0.9 the binding count allows 10 examples: 0.025 * 10 < 1.
  labels = _labels_with_counts([[5, 100], [100, 5]])
  with pytest.raises(ValueError, match='left with zero examples') as info:
    celeba.correlated_subsample(labels, joint_table(0.9), 0,
                                names=('Male', 'Smiling'))
  assert 'Male=0, Smiling=1' in str(info.value)


def test_subsample_rejects_bad_input():
  labels = _labels_with_counts([[5, 5], [5, 5]])
  with pytest.raises(ValueError, match='shape'):
    celeba.correlated_subsample(labels, joint_table(0.5, 3), 0)
  labels[0, 0] = -1
  with pytest.raises(ValueError, match='missing'):
    celeba.correlated_subsample(labels, joint_table(0.5), 0)
  with pytest.raises(ValueError, match='seed'):
    celeba.correlated_subsample(labels, joint_table(0.5), -1)


def test_remove_labels_exact_fraction():
  labels = np.random.default_rng(0).integers(0, 2, (1001, 3)).astype(np.int32)
  weak = celeba.remove_labels(labels, 0.75, seed=4)
  assert weak.dtype == np.int32 and weak.shape == labels.shape
  missing = weak == -1
  np.testing.assert_array_equal(missing.sum(0), [751] * 3)  # round(750.75)
  np.testing.assert_array_equal(weak[~missing], labels[~missing])
  assert not np.array_equal(missing[:, 0], missing[:, 1])
  # Independent columns: both missing for about 0.75**2 of the rows.
  assert 450 < np.sum(missing[:, 0] & missing[:, 1]) < 680
  np.testing.assert_array_equal(weak, celeba.remove_labels(labels, 0.75, 4))
  assert not np.array_equal(weak, celeba.remove_labels(labels, 0.75, 5))
  np.testing.assert_array_equal(celeba.remove_labels(labels, 0.0, 1), labels)
  assert labels.min() == 0  # the input is not modified


@pytest.mark.parametrize('fraction', [1.0, -0.1, 1.5])
def test_remove_labels_rejects_bad_fraction(fraction):
  with pytest.raises(ValueError, match=r'\[0, 1\)'):
    celeba.remove_labels(np.zeros((10, 2), np.int32), fraction, 0)


def test_occlusion_masks():
  keep_all = celeba.occlusion_masks(5, 64, 64, 0.0, seed=1)
  assert keep_all.dtype == np.uint8 and np.all(keep_all == 1)
  assert np.all(celeba.occlusion_masks(5, 64, 64, 1.0, seed=1) == 0)
  low = celeba.occlusion_masks(50, 64, 64, 0.3, seed=1)
  high = celeba.occlusion_masks(50, 64, 64, 0.6, seed=1)
  assert np.all(high <= low)  # a higher threshold occludes a superset
  assert 1.0 > low.mean() > high.mean() > 0.0
  # Blobs, not salt-and-pepper: most neighbours agree.
  assert np.mean(high[:, :, 1:] == high[:, :, :-1]) > 0.9
  np.testing.assert_array_equal(
      high, celeba.occlusion_masks(50, 64, 64, 0.6, seed=1))
  assert not np.array_equal(
      high, celeba.occlusion_masks(50, 64, 64, 0.6, seed=2))
  with pytest.raises(ValueError, match='noise'):
    celeba.occlusion_masks(5, 64, 64, 1.2)
  with pytest.raises(ValueError, match='patch'):
    celeba.occlusion_masks(5, 64, 64, 0.5, patch=0)


def test_occlude_multiplies_by_the_mask():
  images = np.random.default_rng(0).integers(
      1, 256, (6, 64, 64, 3)).astype(np.uint8)
  out = celeba.occlude(images, 0.5, patch=4, seed=7)
  mask = celeba.occlusion_masks(6, 64, 64, 0.5, patch=4, seed=7)
  assert out.dtype == np.uint8 and out.shape == images.shape
  np.testing.assert_array_equal(out, images * mask[..., None])
  np.testing.assert_array_equal(celeba.occlude(images, 0.0, seed=7), images)


def _synthetic_splits(attributes=('Male', 'Smiling'),
                      sizes=(1500, 500, 500), corr=None):
  """CelebASplits whose pixel [0, 0, 0] encodes the row's combination.

  Labels are coin flips, or with ``corr`` two attributes of that correlation.
  """
  rng = np.random.default_rng(0 if corr is None else 1)
  parts = []
  for n in sizes:
    if corr is None:
      labels = rng.integers(0, 2, (n, len(attributes))).astype(np.int32)
    else:
      first = rng.integers(0, 2, n)
      same = rng.random(n) < (1 + corr) / 2
      labels = np.stack([first, np.where(same, first, 1 - first)],
                        1).astype(np.int32)
    images = np.full((n, 64, 64, 3), 200, np.uint8)
    images[:, 0, 0, 0] = labels_to_combination(labels) * 10
    parts.append(celeba_files.CelebASplit(images=images, labels=labels))
  return celeba_files.CelebASplits(*parts, attributes=tuple(attributes),
                                   source='synthetic', location='')


def test_celeba_splits_tables_counts_and_weak_labels():
  splits = _synthetic_splits()
  out = celeba.celeba_splits(splits, train_corr=0.6, weak_supervision=0.5,
                             batch_size=32, seed=1)
  expected_tables = {'train': joint_table(0.6), 'train_eval': joint_table(0.6),
                     'val': joint_table(0.6), 'test_anti': joint_table(-0.6),
                     'test_uncorr': joint_table(0.0)}
  assert out['attributes'] == ('Male', 'Smiling')
  for key, table in expected_tables.items():
    np.testing.assert_array_equal(out['tables'][key], table)
    data = out[key]
    labels = np.asarray(data.labels)
    assert labels.dtype == np.int32
    assert data.batch_size == 32
    assert data.shuffle == (key == 'train')
    assert data.steps_per_epoch == len(labels) // 32
    np.testing.assert_array_equal(out['joint_counts'][key],
                                  joint_counts(labels))
    if key == 'train':
      continue
    counts = joint_counts(labels)
    total = counts.sum()
    assert total == len(labels)
    assert np.all(np.abs(counts / total - table) <= table.size / total)
    np.testing.assert_array_equal(np.asarray(data.images)[:, 0, 0, 0],
                                  labels_to_combination(labels) * 10)
  train = np.asarray(out['train'].labels)
  full = np.asarray(out['train_eval'].labels)
  assert out['train'].images is out['train_eval'].images
  np.testing.assert_array_equal((train == -1).sum(0),
                                [round(0.5 * len(full))] * 2)
  np.testing.assert_array_equal(train[train >= 0], full[train >= 0])
  assert np.all(full >= 0)
  batch = out['val'].batch(out['val'].epoch_plan(jax.random.key(0)), 1)
  assert batch['image'].dtype == np.float32 and batch['image'].shape == (
      32, 64, 64, 3)
  # Evaluation sets are read in order: batch 1 is rows 32..63.
  np.testing.assert_array_equal(batch['labels'],
                                np.asarray(out['val'].labels)[32:64])


def test_celeba_splits_seeds_and_noise():
  splits = _synthetic_splits()
  a = celeba.celeba_splits(splits, 0.4, batch_size=50, seed=3)
  b = celeba.celeba_splits(splits, 0.4, batch_size=50, seed=3)
  c = celeba.celeba_splits(splits, 0.4, batch_size=50, seed=4)
  for key in ('train', 'val', 'test_anti', 'test_uncorr'):
    np.testing.assert_array_equal(a[key].images, b[key].images)
    np.testing.assert_array_equal(a[key].labels, b[key].labels)
  assert not np.array_equal(a['train'].labels, c['train'].labels)
  assert np.all(np.asarray(a['test_uncorr'].images)[:, 1:] == 200)
  noisy = celeba.celeba_splits(splits, 0.4, noise=0.5, batch_size=50, seed=3)
  zeros = np.mean(np.asarray(noisy['test_uncorr'].images)[:, 1:] == 0)
  assert 0.2 < zeros < 0.8
  np.testing.assert_array_equal(noisy['test_uncorr'].labels,
                                a['test_uncorr'].labels)


def test_celeba_splits_more_attributes_use_uncorrelated_anti_table():
  splits = _synthetic_splits(('Male', 'Smiling', 'Young'))
  out = celeba.celeba_splits(splits, 0.5, batch_size=20)
  np.testing.assert_array_equal(out['tables']['test_anti'],
                                joint_table(0.0, 3))
  np.testing.assert_array_equal(out['tables']['val'], joint_table(0.5, 3))
  assert out['joint_counts']['test_anti'].shape == (2, 2, 2)


def test_celeba_splits_rejects_bad_arguments():
  splits = _synthetic_splits(sizes=(400, 100, 100))
  with pytest.raises(ValueError, match='batch_size'):
    celeba.celeba_splits(splits, 0.6, batch_size=1000)
  with pytest.raises(ValueError, match='weak_supervision'):
    celeba.celeba_splits(splits, 0.6, weak_supervision=1.0)
  with pytest.raises(ValueError, match='noise'):
    celeba.celeba_splits(splits, 0.6, noise=-0.1)
  with pytest.raises(ValueError, match='outside'):
    celeba.celeba_splits(splits, 1.5)
  one = celeba_files.CelebASplits(splits.train, splits.val, splits.test,
                                  attributes=('Male',), source='x', location='')
  with pytest.raises(ValueError, match='K >= 2'):
    celeba.celeba_splits(one, 0.6)


def test_fake_celeba_end_to_end(loaded):
  out = celeba.celeba_splits(loaded, train_corr=0.2, weak_supervision=0.5,
                             noise=0.2, batch_size=10, seed=0)
  for key in ('train', 'train_eval', 'val', 'test_anti', 'test_uncorr'):
    assert out[key].steps_per_epoch >= 1
    assert out[key].images.shape[1:] == (64, 64, 3)


def test_celeba_splits_on_the_host_hold_the_device_rows():
  splits = _synthetic_splits()
  on_device = celeba.celeba_splits(splits, 0.6, weak_supervision=0.5,
                                   batch_size=32, seed=1)
  on_host = celeba.celeba_splits(splits, 0.6, weak_supervision=0.5,
                                 batch_size=32, seed=1, placement='host')
  assert on_device['placement'] == 'device'
  assert on_host['placement'] == 'host'
  for key in ('train', 'train_eval', 'val', 'test_anti', 'test_uncorr'):
    want, got = on_device[key], on_host[key]
    assert isinstance(want, ArrayDataset), key
    assert isinstance(got, host.HostDataset), key
    assert isinstance(got.images, np.ndarray) and got.images.dtype == np.uint8
    np.testing.assert_array_equal(got.images, np.asarray(want.images))
    np.testing.assert_array_equal(got.labels, np.asarray(want.labels))
    assert (got.batch_size, got.shuffle, got.steps_per_epoch) == (
        want.batch_size, want.shuffle, want.steps_per_epoch), key
    plan = got.epoch_plan(jax.random.key(7))
    np.testing.assert_array_equal(
        jax.device_get(got.batch(plan, 1))['image'],
        jax.device_get(want.batch(want.epoch_plan(jax.random.key(7)), 1))[
            'image'])
  # One host copy of the train images, as on the device.
  assert on_host['train'].images is on_host['train_eval'].images
  for name in ('tables', 'joint_counts'):
    for key, value in on_device[name].items():
      np.testing.assert_array_equal(on_host[name][key], value)


def test_celeba_splits_auto_placement_logs_its_choice(monkeypatch):
  splits = _synthetic_splits(sizes=(400, 100, 100))
  lines = []
  monkeypatch.setattr(celeba._log, 'info',
                      lambda fmt, *args: lines.append(fmt % args))
  # The CPU has no device memory apart from the host's: device.
  out = celeba.celeba_splits(splits, 0.6, batch_size=20, placement='auto')
  assert out['placement'] == 'device'
  assert isinstance(out['train'], ArrayDataset)
  placement_lines = [l for l in lines if 'placement' in l]
  assert len(placement_lines) == 1
  assert placement_lines[0].startswith('CelebA data placement: device (auto')

  class SmallDevice:  # an accelerator with 1 MiB of memory
    platform, id = 'gpu', 0

    def memory_stats(self):
      return {'bytes_limit': 2**20, 'bytes_in_use': 0}

  monkeypatch.setattr(host, '_default_device', SmallDevice)
  lines.clear()
  out = celeba.celeba_splits(splits, 0.6, batch_size=20, placement='auto')
  assert out['placement'] == 'host'
  assert isinstance(out['val'], host.HostDataset)
  (line,) = [l for l in lines if 'placement' in l]
  assert line.startswith('CelebA data placement: host (auto: ')
  assert '> 0.5 x 1.0 MiB of gpu device 0' in line


@pytest.mark.parametrize('placement', ['gpu', 'HOST', None])
def test_celeba_splits_rejects_an_unknown_placement(placement):
  splits = _synthetic_splits(sizes=(400, 100, 100))
  with pytest.raises(ValueError, match=r"one of \('auto', 'device', 'host'\)"):
    celeba.celeba_splits(splits, 0.6, batch_size=20, placement=placement)


def test_natural_mode_keeps_the_official_splits_and_subsamples_test():
  splits = _synthetic_splits(('Blond_Hair', 'Male'), (2000, 600, 600), 0.7)
  out = celeba.celeba_splits(splits, train_corr=0.0, batch_size=50, seed=2,
                             correlation_mode='natural')
  # Train and val are the official splits, every row in its order.
  np.testing.assert_array_equal(out['train_eval'].labels, splits.train.labels)
  np.testing.assert_array_equal(out['val'].labels, splits.val.labels)
  measured = np.corrcoef(splits.train.labels.T.astype(float))[0, 1]
  assert out['natural_corr'] == pytest.approx(measured)
  assert 0.6 < out['natural_corr'] < 0.8
  np.testing.assert_allclose(
      out['tables']['train'],
      joint_counts(splits.train.labels) / len(splits.train.labels))
  # The test split is sub-sampled to the negated natural correlation and 0.
  np.testing.assert_allclose(out['tables']['test_anti'],
                             joint_table(-out['natural_corr']))
  for key in ('test_anti', 'test_uncorr'):
    labels = np.asarray(out[key].labels)
    counts = joint_counts(labels)
    assert np.all(np.abs(counts / counts.sum() - out['tables'][key])
                  <= 4 / counts.sum())
  assert out['correlation_mode'] == 'natural'
  with pytest.raises(ValueError, match='correlation_mode'):
    celeba.celeba_splits(splits, 0.0, batch_size=50, correlation_mode='nat')
