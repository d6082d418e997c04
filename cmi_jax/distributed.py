"""Training on many hosts: one JAX process per host, each feeding its rows.

Every process runs the same program, sees the *global* devices and holds the
data of its *addressable* (local) devices only::

  from cmi_jax import distributed, train
  distributed.initialize()                # first, before any JAX computation
  mesh = train.data_mesh()                # all devices of all processes
  step = train.shard_map_train_step(trainer, mesh)
  state = train.replicate_state(trainer.init(key, example), mesh)
  rows = distributed.host_batch_slice(global_batch_size, mesh)
  for global_batch in batches:            # the same stream on every process
    batch = distributed.make_global_batch(
        {k: v[rows] for k, v in global_batch.items()}, mesh)
    state, metrics = step(state, batch)
  if distributed.is_main_process():
    ...                                   # logs, results files

Every process must build the same state (same key) and call the same compiled
functions in the same order; Orbax checkpoints are saved by all processes
together. Launch commands: ``docs/performance.md`` ("Multi-host").
"""

from __future__ import annotations

from typing import Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cmi_jax.data.base import Batch


def initialize(coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None,
               local_device_count: Optional[int] = None) -> None:
  """Joins this process to a multi-process JAX run (call it first).

  Wraps :func:`jax.distributed.initialize`. With every argument None, JAX
  detects the cluster (SLURM, Open MPI, Cloud TPU pods). On CPU it selects
  the Gloo collectives unless another implementation was chosen.

  Args:
    coordinator_address: ``'host:port'`` of process 0, reachable by every
      process.
    process_id: this process's index in ``[0, num_processes)``.
    local_device_count: number of CPU devices this process exposes
      (``jax_num_cpu_devices``; accelerators ignore it).

  Raises:
    ValueError: for malformed arguments; the message names the fix.
    RuntimeError: if JAX already ran a computation in this process, or the
      run was initialised already.
  """
  given = {'coordinator_address': coordinator_address,
           'num_processes': num_processes, 'process_id': process_id}
  if any(v is None for v in given.values()) and any(
      v is not None for v in given.values()):
    missing = sorted(k for k, v in given.items() if v is None)
    raise ValueError(
        'initialize got only some of the cluster arguments '
        f'({", ".join(missing)} missing); pass coordinator_address, '
        'num_processes and process_id together, or none of them to let JAX '
        'detect SLURM / Open MPI / TPU.')
  if num_processes is not None and num_processes < 1:
    raise ValueError(f'num_processes must be >= 1; got {num_processes}.')
  if process_id is not None and not 0 <= process_id < num_processes:
    raise ValueError(f'process_id must lie in [0, {num_processes}); got '
                     f'{process_id}. Give each process a distinct id.')
  if local_device_count is not None and local_device_count < 1:
    raise ValueError('local_device_count must be >= 1; got '
                     f'{local_device_count}.')
  if jax.distributed.is_initialized():
    raise RuntimeError('the distributed run is initialised already; call '
                       'cmi_jax.distributed.initialize once per process.')
  try:
    if local_device_count is not None:
      jax.config.update('jax_num_cpu_devices', int(local_device_count))
    # Explicit, so that a CPU run never goes without cross-process
    # collectives on a JAX version with another default.
    if jax.config.jax_cpu_collectives_implementation is None:
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  except RuntimeError as error:
    raise RuntimeError(
        'JAX already ran a computation in this process, so its devices can no '
        'longer join a distributed run; call cmi_jax.distributed.initialize '
        'right after the imports, before any jax.numpy call.') from error
  jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_main_process() -> bool:
  """True on process 0, the one that writes logs and result files."""
  return jax.process_index() == 0


def _batch_sharding(mesh: Mesh) -> NamedSharding:
  if len(mesh.axis_names) != 1:
    raise ValueError(f'expected a 1-D data mesh (train.data_mesh); got axes '
                     f'{mesh.axis_names}.')
  return NamedSharding(mesh, P(mesh.axis_names[0]))


def host_batch_slice(global_batch_size: int, mesh: Optional[Mesh] = None
                     ) -> slice:
  """The rows of every global batch that this process's devices hold.

  Returns ``slice(start, stop)`` into the B = ``global_batch_size`` rows
  (B / num_processes of them on the usual one-process-per-host mesh; default
  mesh :func:`cmi_jax.train.data_mesh`).

  Raises:
    ValueError: if B does not divide over the mesh, or this process's rows are
      not contiguous.
  """
  from cmi_jax import train  # Local: train need not load for a launcher.
  mesh = train.data_mesh() if mesh is None else mesh
  if global_batch_size < 1 or global_batch_size % mesh.size:
    raise ValueError(
        f'the global batch of {global_batch_size} rows does not divide over '
        f'the {mesh.size} devices of the mesh; use a multiple of {mesh.size}.')
  index_map = _batch_sharding(mesh).addressable_devices_indices_map(
      (global_batch_size,))
  rows = sorted({(s[0].start or 0, s[0].stop or global_batch_size)
                 for s in index_map.values()})
  for (_, stop), (start, _) in zip(rows, rows[1:]):
    if stop != start:
      raise ValueError(
          f'process {jax.process_index()} holds non-contiguous rows {rows} of '
          'the global batch; build the mesh with each process\'s devices '
          'next to each other (train.data_mesh() does).')
  return slice(rows[0][0], rows[-1][1])


def make_global_batch(local_batch: Batch, mesh: Mesh) -> Batch:
  """The global batch from every process's rows (no copy across hosts).

  Args:
    local_batch: this process's rows (:func:`host_batch_slice`) of the global
      batch, ``{name: [B / P, ...]}``.
    mesh: the 1-D data mesh.

  Returns:
    ``{name: jax.Array [B, ...]}`` split along the first axis over the mesh.

  Raises:
    ValueError: for a malformed local batch; the message names the fix.
  """
  sharding = _batch_sharding(mesh)
  sizes = {name: np.shape(a)[0] if np.ndim(a) else None
           for name, a in local_batch.items()}
  if len(set(sizes.values())) != 1 or None in sizes.values():
    raise ValueError(f'every array of the local batch needs the same number '
                     f'of rows; got {sizes}.')
  local_devices = len(mesh.local_devices)
  rows = next(iter(sizes.values()))
  if rows % local_devices:
    raise ValueError(
        f'the local batch has {rows} rows, which do not divide over this '
        f'process\'s {local_devices} devices; feed global_batch_size / '
        'num_processes rows (see host_batch_slice).')
  global_rows = rows * mesh.size // local_devices
  return {name: jax.make_array_from_process_local_data(
      sharding, np.asarray(a), (global_rows,) + np.shape(a)[1:])
          for name, a in local_batch.items()}

