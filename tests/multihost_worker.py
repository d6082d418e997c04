"""One process of a multi-process training run (test_multihost.py starts two).

Every process builds the same trainer and state, generates the same global
batches from a seed, feeds its own rows (``distributed.host_batch_slice``) and
runs the sharded CMI step ``--steps`` times. Process 0 writes :func:`summary`
to ``<out>/result.npz``; every process writes the rows it fed to
``<out>/rows_<id>.json``, and all save the state together as an Orbax
checkpoint under ``<out>/run``. On a cluster, ``--auto`` lets JAX detect
SLURM / Open MPI / TPU pods (``--out`` must then be shared; docs/performance.md
shows both launches).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

GLOBAL_BATCH = 16
FEATURES = 3  # input dimensions per attribute
SUBSPACES = (2, 2)
NUM_CLASSES = (2, 2)


def global_batch(seed: int, step: int, size: int = GLOBAL_BATCH
                 ) -> dict[str, np.ndarray]:
  """Global batch ``step``: correlated binary labels and noisy inputs.

  Returns:
    ``{'image': float32 [size, 6], 'labels': int32 [size, 2]}``, a pure
    function of ``(seed, step)``.
  """
  rng = np.random.default_rng([seed, step])
  first = rng.integers(0, 2, size)
  flip = rng.random(size) < 0.2  # ~0.6 correlation between the two
  labels = np.stack([first, np.where(flip, 1 - first, first)], 1)
  signal = np.repeat(2.0 * labels - 1.0, FEATURES, axis=1)
  image = signal + rng.normal(size=signal.shape)
  return {'image': image.astype(np.float32), 'labels': labels.astype(np.int32)}


def make_trainer():
  """The small CMI trainer every process (and the test) builds."""
  from cmi_jax import models, train
  return train.make_trainer(
      models.MLPEncoder(sum(SUBSPACES), (16,)), 'cmi', SUBSPACES, NUM_CLASSES,
      train.OptimConfig(lr=1e-3, cls_lr=1e-3, d_lr=1e-3),
      adversary_hidden=(16,))


def summary(state, metrics: list[dict]) -> dict[str, np.ndarray]:
  """``leaf_<i>``: the state's leaves; ``metric:<name>``: ``[steps]`` values."""
  import jax
  result = {f'leaf_{i}': np.asarray(a)
            for i, a in enumerate(jax.device_get(jax.tree.leaves(state)))}
  for name in metrics[0]:
    result['metric:' + name.replace('/', ':')] = np.array(
        [m[name] for m in metrics])
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--out', required=True)
  parser.add_argument('--num_processes', type=int, default=1)
  parser.add_argument('--process_id', type=int, default=0)
  parser.add_argument('--coordinator', default=None)
  parser.add_argument('--auto', action='store_true',
                      help='Let JAX detect the cluster (SLURM, Open MPI, TPU).')
  parser.add_argument('--devices', type=int, default=None,
                      help='CPU devices of this process (CPU runs only).')
  parser.add_argument('--global_batch', type=int, default=GLOBAL_BATCH,
                      help='Rows of every global batch (a multiple of the '
                      'number of devices).')
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()

  import jax
  from cmi_jax import distributed
  if args.auto:
    distributed.initialize(local_device_count=args.devices)
  elif args.num_processes > 1:
    distributed.initialize(args.coordinator, args.num_processes,
                           args.process_id, local_device_count=args.devices)
  elif args.devices is not None:
    jax.config.update('jax_num_cpu_devices', args.devices)

  from cmi_jax import checkpoint, train
  trainer = make_trainer()
  mesh = distributed.data_mesh()
  size = args.global_batch
  example = global_batch(args.seed, 0, size)['image']
  state = distributed.replicate_state(
      trainer.init(jax.random.PRNGKey(args.seed), example), mesh)
  step = distributed.shard_map_train_step(trainer, mesh)
  rows = distributed.host_batch_slice(size, mesh)
  metrics = []
  for t in range(args.steps):
    local = {k: v[rows] for k, v in global_batch(args.seed, t, size).items()}
    state, m = step(state, distributed.make_global_batch(local, mesh))
    metrics.append(jax.device_get(m))

  with open(os.path.join(args.out, f'rows_{jax.process_index()}.json'),
            'w') as f:
    json.dump({'start': rows.start, 'stop': rows.stop,
               'devices': jax.device_count(),
               'local_devices': jax.local_device_count(),
               'processes': jax.process_count()}, f)
  # Every process takes part in the save; Orbax writes each array once.
  checkpoints = checkpoint.RunCheckpoints(os.path.join(args.out, 'run'))
  checkpoints.save(checkpoint.LATEST, 1, state, {'epoch': 1})
  checkpoints.close()
  if distributed.is_main_process():
    np.savez(os.path.join(args.out, 'result.npz'), **summary(state, metrics))


if __name__ == '__main__':
  main()
