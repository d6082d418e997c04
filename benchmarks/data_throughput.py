r"""Throughput of multi-digit batch generation: device (JAX) vs host (NumPy).

Device path: one jitted ``lax.scan`` generates a whole epoch of batches from
the device-resident digit bank (what the training engine does); each batch is
reduced to a checksum so that nothing is copied back. Host path: the NumPy
reference :func:`cmi_jax.data.multi_digit.sample_host_batch`, alone and
followed by ``jax.device_put`` (the cost of feeding a device from the host).

Usage (from the repository root)::

  PYTHONPATH=. python benchmarks/data_throughput.py --out /tmp/throughput.json
  PYTHONPATH=. python benchmarks/data_throughput.py --dataset=fashion_mnist \
      --classes=0,9 --noise=0.8 --out /tmp/fashion.json
"""

from __future__ import annotations

import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax.data import multi_digit as md
from cmi_jax.data import sources

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
  seconds = time.perf_counter() - start
  batches = epochs * dataset.steps_per_epoch
  return {'batches': batches, 'seconds': seconds,
          'batches_per_s': batches / seconds,
          'samples_per_s': batches * dataset.batch_size / seconds,
          'epochs': epochs, 'first_call_s': compile_s}


def benchmark_host(dataset: md.MultiDigitDataset, num_batches: int,
                   to_device: bool) -> dict:
  """Times the NumPy path (optionally plus the host-to-device copy).

  ``first_call_s`` of the device result includes compilation; the host path
  needs none.
  """
  bank, counts = np.asarray(dataset.bank), np.asarray(dataset.counts)
  table, noise = np.asarray(dataset.table), float(dataset.noise)
  rng = np.random.default_rng(0)

  def one():
    batch = md.sample_host_batch(rng, bank, counts, table, noise,
                                 dataset.patch, dataset.batch_size)
    if to_device:
      batch = jax.block_until_ready(jax.device_put(batch))
    return batch

  one()  # warm-up (allocations, device_put path)
  start = time.perf_counter()
  for _ in range(num_batches):
    one()
  seconds = time.perf_counter() - start
  return {'batches': num_batches, 'seconds': seconds,
          'batches_per_s': num_batches / seconds,
          'samples_per_s': num_batches * dataset.batch_size / seconds}


def main(argv):
  del argv
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
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  app.run(main)
