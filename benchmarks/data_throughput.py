r"""Throughput of batch feeding: multi-digit generation and CelebA's two paths.

Multi-digit: a whole epoch generated on the device in one scan, against the
NumPy reference ``benchmarks/numpy_reference.sample_batch`` with and without
``jax.device_put``. CelebA, on synthetic uint8 64x64x3 images: batches
gathered on the device (``celeba_device_gather``), prefetched from host
memory (``celeba_host_prefetch``) or copied without the thread
(``celeba_host_sync``), and with ``--celeba_train`` the training steps/s of
the paper's CelebA model on both paths. Each batch is reduced to a checksum
so that nothing is copied back::

  PYTHONPATH=. python benchmarks/data_throughput.py --out /tmp/throughput.json
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import epochs
from cmi_jax import models
from cmi_jax import train
from cmi_jax.data import host
from cmi_jax.data import multi_digit as md
from cmi_jax.data import sources
from cmi_jax.data.base import ArrayDataset
from benchmarks import numpy_reference
from experiments import cli

PATHS = ('multi_digit', 'celeba')

_DATASET = flags.DEFINE_enum('dataset', 'mnist', list(sources.DATASETS),
                             'Base digit dataset.')
_SOURCE = flags.DEFINE_enum('source', 'auto', list(sources.SOURCES),
                            'Where the digits come from (see load_digits).')
_TFDS_DATA_DIR = flags.DEFINE_string('tfds_data_dir', None,
                                     'TFDS data dir (prepared data, cache).')
_MANUAL_DIR = flags.DEFINE_string('manual_dir', None, 'Folder of IDX files.')
_CLASSES = flags.DEFINE_list('classes', ['3', '8'], 'The two classes.')
_NUM_DIGITS = flags.DEFINE_integer('num_digits', 2, 'Digits per sample (K).')
_CORR = flags.DEFINE_float('corr', 0.9, 'Training correlation.')
_NOISE = flags.DEFINE_float('noise', 0.4, 'Occlusion threshold in [0, 1].')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 100, 'Batch size.')
_DEVICE_BATCHES = flags.DEFINE_integer(
    'device_batches', 1000,
    'Time at least this many device batches (whole epochs, rounded up).')
_HOST_BATCHES = flags.DEFINE_integer('host_batches', 50,
                                     'Timed host (NumPy) batches.')
_OUT = flags.DEFINE_string('out', None, 'Write the results as JSON here.')
_PATHS = flags.DEFINE_list('paths', list(PATHS),
                           f'Which benchmarks to run, out of {PATHS}.')
_CELEBA_IMAGES = flags.DEFINE_integer(
    'celeba_images', 80_000,
    'Rows of the synthetic CelebA train split (the order of the correlated '
    'train sub-sample of CelebA; 12 KiB each).')
_CELEBA_BATCHES = flags.DEFINE_integer('celeba_batches', 500,
                                       'Timed batches per CelebA path.')
_CELEBA_PREFETCH = flags.DEFINE_integer('celeba_prefetch',
                                        host.DEFAULT_PREFETCH,
                                        'Prefetch depth of the host path.')
_CELEBA_TRAIN = flags.DEFINE_bool(
    'celeba_train', True, 'Also time training steps on both CelebA paths.')


def _epoch_checksum(dataset: md.MultiDigitDataset, key: jax.Array
                    ) -> jax.Array:
  """Generates one epoch inside a scan; returns a float32 checksum ``[]``."""
  plan = dataset.epoch_plan(key)

  def step(total, i):
    batch = dataset.batch(plan, i)
    # Depends on every pixel and label, so XLA cannot skip the generation.
    return total + batch['image'].mean() + batch['labels'].sum(), None

  total, _ = jax.lax.scan(step, jnp.float32(0),
                          jnp.arange(dataset.steps_per_epoch))
  return total


def _rate(batches: int, seconds: float, batch_size: int, **extra) -> dict:
  return {'batches': batches, 'seconds': seconds,
          'batches_per_s': batches / seconds,
          'samples_per_s': batches * batch_size / seconds, **extra}


def benchmark_device(dataset: md.MultiDigitDataset, min_batches: int) -> dict:
  """Times whole scanned epochs (>= ``min_batches`` batches) after a warm-up."""
  epochs = -(-min_batches // dataset.steps_per_epoch)
  run = jax.jit(_epoch_checksum)
  start = time.perf_counter()
  run(dataset, jax.random.key(0)).block_until_ready()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for epoch in range(epochs):
    checksum = run(dataset, jax.random.key(epoch + 1))
  checksum.block_until_ready()
  return _rate(epochs * dataset.steps_per_epoch, time.perf_counter() - start,
               dataset.batch_size, epochs=epochs, first_call_s=compile_s)


def benchmark_host(dataset: md.MultiDigitDataset, num_batches: int,
                   to_device: bool) -> dict:
  """Times the NumPy path (optionally plus the host-to-device copy)."""
  bank, counts = np.asarray(dataset.bank), np.asarray(dataset.counts)
  table, noise = np.asarray(dataset.table), float(dataset.noise)
  rng = np.random.default_rng(0)

  def one():
    batch = numpy_reference.sample_batch(rng, bank, counts, table, noise,
                                         dataset.patch, dataset.batch_size)
    if to_device:
      batch = jax.block_until_ready(jax.device_put(batch))
    return batch

  one()  # warm-up (allocations, device_put path)
  start = time.perf_counter()
  for _ in range(num_batches):
    one()
  return _rate(num_batches, time.perf_counter() - start, dataset.batch_size)


def _celeba_arrays(num_images: int) -> tuple[np.ndarray, np.ndarray]:
  """Synthetic uint8 ``[N, 64, 64, 3]`` images and int32 ``[N, 2]`` labels."""
  rng = np.random.default_rng(0)
  images = np.empty((num_images, 64, 64, 3), np.uint8)
  for start in range(0, num_images, 8192):  # bounds the temporaries
    block = images[start:start + 8192]
    block[...] = rng.integers(0, 256, block.shape, dtype=np.uint8)
  return images, rng.integers(0, 2, (num_images, 2)).astype(np.int32)


def _checksum(total: jax.Array, images: jax.Array,
              labels: jax.Array) -> jax.Array:
  """Reads every pixel and label of a uint8 batch (cheap on any backend).

  Integer sums: a float ``mean`` would cost several times the gather on a
  CPU and hide the feeding cost.
  """
  return total + images.astype(jnp.int32).sum() + labels.sum()


def _gather_checksum(dataset: ArrayDataset, key: jax.Array,
                     num_steps: int) -> jax.Array:
  """``num_steps`` batches gathered on the device inside a scan; a checksum.

  The gather of ``ArrayDataset.batch`` without its scaling to float, as the
  host path's batches stay uint8.
  """
  plan = dataset.epoch_plan(key)
  size = dataset.batch_size

  def step(total, i):
    index = jax.lax.dynamic_slice_in_dim(
        plan, (i % dataset.steps_per_epoch) * size, size)
    return _checksum(total, dataset.images[index],
                     dataset.labels[index]), None

  total, _ = jax.lax.scan(step, jnp.int32(0), jnp.arange(num_steps))
  return total


@jax.jit
def _batch_checksum(total: jax.Array, batch: dict) -> jax.Array:
  """The host path's consumer: :func:`_checksum` of one prefetched batch."""
  return _checksum(total, batch['image'], batch['labels'])


def benchmark_celeba(num_images: int, batch_size: int, num_batches: int,
                     depth: int, with_training: bool) -> dict:
  """Times CelebA's device-gather and host paths (see module doc)."""
  images, labels = _celeba_arrays(num_images)
  on_host = host.HostDataset(images, labels, batch_size=batch_size,
                             prefetch_depth=depth)
  on_device = ArrayDataset(jnp.asarray(images), jnp.asarray(labels),
                           batch_size=batch_size)
  results = {'config': {'images': num_images, 'batch_size': batch_size,
                        'image_bytes': int(images.nbytes),
                        'prefetch_depth': depth,
                        'steps_per_epoch': on_host.steps_per_epoch}}

  gather = jax.jit(_gather_checksum, static_argnums=2)
  start = time.perf_counter()
  gather(on_device, jax.random.key(0), num_batches).block_until_ready()
  first = time.perf_counter() - start
  start = time.perf_counter()
  gather(on_device, jax.random.key(1), num_batches).block_until_ready()
  results['celeba_device_gather'] = _rate(
      num_batches, time.perf_counter() - start, batch_size, first_call_s=first)

  plan = on_host.epoch_plan(jax.random.key(1))
  total = _batch_checksum(jnp.int32(0), jax.device_put(
      on_host.host_batch(plan, 0)))  # compiles
  total.block_until_ready()
  start = time.perf_counter()
  with on_host.prefetch(plan, num_batches) as batches:
    for batch in batches:
      total = _batch_checksum(total, batch)
  total.block_until_ready()
  results['celeba_host_prefetch'] = _rate(
      num_batches, time.perf_counter() - start, batch_size)

  steps = on_host.steps_per_epoch
  start = time.perf_counter()
  for i in range(num_batches):
    batch = jax.device_put(on_host.host_batch(plan, i % steps))
    total = _batch_checksum(total, batch)
    total.block_until_ready()  # no overlap: the next gather waits
  results['celeba_host_sync'] = _rate(
      num_batches, time.perf_counter() - start, batch_size)

  if with_training:
    results.update(_benchmark_celeba_training(on_device, on_host,
                                              num_batches))
  return results


def _benchmark_celeba_training(on_device: ArrayDataset,
                               on_host: host.HostDataset,
                               num_steps: int) -> dict:
  """Training steps/s of the paper's CelebA model on both paths."""
  trainer = train.make_trainer(
      models.MLPEncoder(10, (50, 50)), 'cmi', (5, 5), (2, 2),
      train.OptimConfig(lr=1e-5, cls_lr=1e-4, d_lr=1e-4))
  example = jax.device_get(on_host.batch(np.arange(on_host.batch_size), 0))
  state = jax.device_get(trainer.init(jax.random.PRNGKey(0),
                                      example['image'], 10.0))
  out = {}
  for name, epoch in (
      ('celeba_train_device',
       lambda s, n: trainer.jit_train_epoch(s, on_device, n)),
      ('celeba_train_host',
       lambda s, n: epochs.train_epoch(trainer, s, on_host, n))):
    start = time.perf_counter()
    warm, _ = epoch(jax.device_put(state), num_steps)  # compiles
    jax.block_until_ready(warm)
    first = time.perf_counter() - start
    start = time.perf_counter()
    done, _ = epoch(warm, num_steps)
    jax.block_until_ready(done)
    out[name] = _rate(num_steps, time.perf_counter() - start,
                      on_host.batch_size, first_call_s=first)
  return out


def _multi_digit() -> dict:
  """The multi-digit results."""
  digits = sources.load_digits(_DATASET.value, _SOURCE.value,
                               _TFDS_DATA_DIR.value, _MANUAL_DIR.value)
  classes = tuple(int(c) for c in _CLASSES.value)
  dataset = md.make_multi_digit_dataset(
      digits.train_images, digits.train_labels, classes=classes,
      num_digits=_NUM_DIGITS.value, corr=_CORR.value, noise=_NOISE.value,
      batch_size=_BATCH_SIZE.value)
  results = {
      'config': {'dataset': digits.dataset, 'source': digits.source,
                 'classes': classes, 'num_digits': _NUM_DIGITS.value,
                 'corr': _CORR.value, 'noise': _NOISE.value,
                 'batch_size': dataset.batch_size,
                 'steps_per_epoch': dataset.steps_per_epoch},
      'backend': jax.default_backend(),
      'device': str(jax.devices()[0].device_kind),
      'device_scan': benchmark_device(dataset, _DEVICE_BATCHES.value),
      'host_numpy': benchmark_host(dataset, _HOST_BATCHES.value, False),
      'host_numpy_to_device': benchmark_host(dataset, _HOST_BATCHES.value,
                                             True),
  }
  results['speedup_device_vs_host'] = (
      results['device_scan']['samples_per_s']
      / results['host_numpy_to_device']['samples_per_s'])
  print(f"{'path':<24}{'batches/s':>12}{'samples/s':>14}")
  for path in ('device_scan', 'host_numpy', 'host_numpy_to_device'):
    r = results[path]
    print(f"{path:<24}{r['batches_per_s']:>12.1f}{r['samples_per_s']:>14.0f}")
  print(f"device vs host+copy: {results['speedup_device_vs_host']:.1f}x on "
        f"{results['backend']} ({results['device']}); source "
        f"{digits.source}")
  return results


def main(argv):
  del argv
  unknown = sorted(set(_PATHS.value) - set(PATHS))
  if unknown:
    raise app.UsageError(f'--paths: unknown {unknown}; choose from {PATHS}.')
  results = {}
  if 'multi_digit' in _PATHS.value:
    results.update(_multi_digit())
  if 'celeba' in _PATHS.value:
    celeba = benchmark_celeba(_CELEBA_IMAGES.value, _BATCH_SIZE.value,
                              _CELEBA_BATCHES.value, _CELEBA_PREFETCH.value,
                              _CELEBA_TRAIN.value)
    results['celeba'] = celeba
    results.setdefault('backend', jax.default_backend())
    results.setdefault('device', str(jax.devices()[0].device_kind))
    print(f"\nCelebA, {celeba['config']['images']} synthetic 64x64x3 uint8 "
          f"images ({celeba['config']['image_bytes'] / 2**30:.2f} GiB), "
          f"batch {celeba['config']['batch_size']}, prefetch depth "
          f"{celeba['config']['prefetch_depth']}:")
    print(f"{'path':<24}{'batches/s':>12}{'samples/s':>14}")
    for path, r in celeba.items():
      if path != 'config':
        print(f"{path:<24}{r['batches_per_s']:>12.1f}"
              f"{r['samples_per_s']:>14.0f}")
  results['load_average'] = os.getloadavg()
  print(f"on {results['backend']} ({results['device']}); load average "
        f"{', '.join(f'{x:.2f}' for x in results['load_average'])}")
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  cli.run_main(main)
