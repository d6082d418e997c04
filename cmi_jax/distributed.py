"""Training on many hosts: one JAX process per host, each feeding its rows.

JAX runs multi-host programs as one process per host (multi-controller): every
process runs the same program, sees the *global* devices, and holds the data
of its *addressable* (local) devices only. A run then looks like this::

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
functions in the same order. :func:`cmi_jax.run.fit` already logs from process
0 only, and Orbax checkpoints are written cooperatively by all processes (call
``save`` on every process). See ``docs/performance.md`` ("Multi-host") for the
launch commands.
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
  detects the cluster (SLURM, Open MPI, Cloud TPU pods); elsewhere pass the
  coordinator address and this process's place in the run. On CPU, processes
  exchange data through the Gloo TCP collectives, selected here unless another
  CPU collectives implementation was chosen already.

  Args:
    coordinator_address: ``'host:port'`` of process 0, reachable by every
      process (any free port; all processes must agree on it).
    num_processes: number of processes in the run (one per host).
    process_id: this process's index in ``[0, num_processes)``.
    local_device_count: number of CPU devices this process exposes (the
      ``jax_num_cpu_devices`` option; for CPU runs and tests). Accelerators
      are one device per chip and ignore it.

  Raises:
    ValueError: if only some of ``coordinator_address``, ``num_processes``,
      ``process_id`` are given, or a count is out of range.
    RuntimeError: if JAX already ran a computation in this process (the
      backends then exist and can no longer join a distributed run), or the
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
    # Gloo is JAX's default today; set it explicitly so that a CPU run does
    # not silently run without cross-process collectives on other versions.
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
  """The rows of every global batch that this process feeds.

  Derived from the sharding itself, so it holds for any device order of the
  mesh: it is the union of the rows held by this process's devices.

  Args:
    global_batch_size: B, rows of the global batch (all processes together).
    mesh: the 1-D data mesh (default :func:`cmi_jax.train.data_mesh`).

  Returns:
    ``slice(start, stop)`` into the global batch, ``stop - start = B /
    num_processes`` for the usual one-process-per-host mesh.

  Raises:
    ValueError: if B does not divide over the mesh, or this process's rows are
      not contiguous (a mesh that interleaves the processes' devices).
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
    local_batch: this process's rows of the global batch, ``{name: [B / P,
      ...]}`` (NumPy or JAX), the rows :func:`host_batch_slice` names.
    mesh: the 1-D data mesh.

  Returns:
    ``{name: jax.Array [B, ...]}`` split along the first axis over the mesh,
    the input of :func:`cmi_jax.train.shard_map_train_step`.

  Raises:
    ValueError: if the arrays disagree on the number of rows, or that number
      does not divide over this process's devices.
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

