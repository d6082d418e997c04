"""Training over many devices and hosts: the engine's step on a data mesh.

On one host, :func:`shard_map_train_step` / :func:`shard_map_train_epoch` run
:meth:`cmi_jax.train.Trainer.step` on a 1-D data mesh (:func:`data_mesh`):
the state replicated, the global batch split over the devices, the result
equal to the one-device step's. :func:`pmap_train_step` runs the same
per-device step through ``jax.pmap``.

On many hosts, one JAX process per host, every process runs the same
program, sees the *global* devices and holds the data of its *addressable*
(local) devices only::

  from cmi_jax import distributed
  distributed.initialize()                # first, before any JAX computation
  mesh = distributed.data_mesh()          # all devices of all processes
  step = distributed.shard_map_train_step(trainer, mesh)
  state = distributed.replicate_state(trainer.init(key, example), mesh)
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

import functools
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cmi_jax import epochs
from cmi_jax import programs
from cmi_jax import validate
from cmi_jax.data.base import Batch, DeviceDataset
from cmi_jax.train import Metrics, Trainer, TrainState

Step = Callable[[TrainState, Batch], tuple[TrainState, Metrics]]


def data_mesh(devices: Optional[Sequence[jax.Device]] = None,
              axis_name: str = 'data') -> Mesh:
  """A 1-D mesh over ``devices`` (default: all) with one named data axis."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (axis_name,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """The sharding that splits a first axis over the 1-D ``mesh``."""
  if len(mesh.axis_names) != 1:
    raise ValueError('expected a 1-D mesh (data_mesh, vmapped.sweep_mesh); '
                     f'got axes {mesh.axis_names}.')
  return NamedSharding(mesh, P(*mesh.axis_names))


def _check_divisible(rows: int, num_devices: int) -> None:
  if rows % num_devices:
    raise ValueError(f'the global batch of {rows} examples does not divide '
                     f'over {num_devices} devices; use a multiple of '
                     f'{num_devices}.')


def _sharded_step(trainer: Trainer, mesh: Mesh, state: TrainState,
                  batch: Batch) -> tuple[TrainState, Metrics]:
  """``trainer.step`` under ``jax.shard_map``: replicated state, split batch."""
  # At trace time, where the batch's shape is known.
  _check_divisible(batch['labels'].shape[0], mesh.size)
  (axis_name,) = mesh.axis_names
  return jax.shard_map(
      functools.partial(trainer.step, axis_name=axis_name), mesh=mesh,
      in_specs=(P(), P(axis_name)), out_specs=(P(), P()),
      # Outputs are replicated by construction (every device computes them
      # from the all-gathered batch), which the type system of varying axes
      # cannot see through all_gather.
      check_vma=False)(state, batch)


def _sharded_epoch(trainer: Trainer, mesh: Mesh, state: TrainState,
                   data: DeviceDataset, num_steps: Optional[int] = None
                   ) -> tuple[TrainState, Metrics]:
  # Before the batches are constrained to the mesh, which would fail first.
  _check_divisible(data.batch_size, mesh.size)
  return epochs.scan_epoch(functools.partial(_sharded_step, trainer, mesh),
                          state, data, num_steps, batch_sharding(mesh))


def shard_map_train_step(trainer: Trainer, mesh: Mesh) -> Step:
  """The step over a 1-D data mesh with ``jax.shard_map``.

  The returned function takes the replicated state and the *global* batch
  (split along its first axis over the mesh) and returns the replicated new
  state and metrics. The result equals the one-device step on the same batch.
  """
  return programs.compiled(_sharded_step, trainer, mesh, donate_argnums=(0,))


def shard_map_train_epoch(trainer: Trainer, mesh: Mesh
                          ) -> Callable[..., tuple[TrainState, Metrics]]:
  """A compiled epoch over a data mesh: ``(state, data, num_steps=None)``.

  Each global batch is generated on the device and split over the mesh; the
  step is :func:`shard_map_train_step`'s, so the result equals the one-device
  epoch. ``data.batch_size`` must divide by the number of devices.
  """
  return programs.compiled(_sharded_epoch, trainer, mesh, static_argnums=(2,),
                           donate_argnums=(0,))


def pmap_train_step(trainer: Trainer, axis_name: str = 'data') -> Step:
  """The same step through ``jax.pmap``, for codebases built on it.

  ``jax.pmap`` is in maintenance mode upstream: prefer
  :func:`shard_map_train_step` / :func:`shard_map_train_epoch`, which run the
  same per-device step over a mesh and give the same state. Takes a state
  replicated along a leading device axis (:func:`replicate_for_pmap`) and a
  batch shaped ``[num_devices, B/n, ...]`` (:func:`split_for_pmap`); returns
  the replicated new state and metrics.
  """
  return programs.compiled(_pmapped_step, trainer, axis_name,
                           donate_argnums=(0,), pmap_axis=axis_name)


def _pmapped_step(trainer: Trainer, axis_name: str, state: TrainState,
                  batch: Batch) -> tuple[TrainState, Metrics]:
  return trainer.step(state, batch, axis_name=axis_name)


def replicate_for_pmap(state: TrainState, num_devices: int) -> TrainState:
  """Stacks ``num_devices`` copies of the state along a new leading axis."""
  return jax.tree.map(
      lambda a: jnp.broadcast_to(a, (num_devices,) + jnp.shape(a)), state)


def split_for_pmap(batch: Batch, num_devices: int) -> Batch:
  """Reshapes a global batch ``[B, ...]`` to ``[num_devices, B/n, ...]``."""
  _check_divisible(batch['labels'].shape[0], num_devices)
  return jax.tree.map(
      lambda a: a.reshape((num_devices, a.shape[0] // num_devices)
                          + a.shape[1:]), batch)


def replicate_state(state: TrainState, mesh: Mesh) -> TrainState:
  """Places a state on every device of ``mesh`` (fully replicated)."""
  return jax.device_put(state, NamedSharding(mesh, P()))


def shard_batch(batch: Batch, mesh: Mesh) -> Batch:
  """Splits a global batch along its first axis over the mesh."""
  _check_divisible(batch['labels'].shape[0], mesh.size)
  return jax.device_put(batch, batch_sharding(mesh))


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
    ValueError: for malformed arguments (JAX's message for the ranges of
      ``num_processes`` and ``process_id``).
    RuntimeError: if JAX already ran a computation in this process, or the
      run was initialised already.
  """
  given = {'coordinator_address': coordinator_address,
           'num_processes': num_processes, 'process_id': process_id}
  missing = [name for name, value in given.items() if value is None]
  if 0 < len(missing) < len(given):
    raise ValueError(f'initialize got no {", ".join(missing)}; pass all three '
                     'cluster arguments or none (JAX detects the cluster).')
  if jax.distributed.is_initialized():
    raise RuntimeError('the distributed run is initialised already; call '
                       'cmi_jax.distributed.initialize once per process.')
  try:
    if local_device_count is not None:
      jax.config.update('jax_num_cpu_devices', validate.integer(
          local_device_count, 'local_device_count', 1))
    # Explicit, so that a CPU run never goes without cross-process
    # collectives on a JAX version with another default.
    if jax.config.jax_cpu_collectives_implementation is None:
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  except RuntimeError as error:
    raise RuntimeError('JAX already ran a computation in this process; call '
                       'initialize before any jax.numpy call.') from error
  # JAX itself checks num_processes and process_id (in [0, num_processes)).
  jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_main_process() -> bool:
  """True on process 0, the one that writes logs and result files."""
  return jax.process_index() == 0


def host_batch_slice(global_batch_size: int, mesh: Optional[Mesh] = None
                     ) -> slice:
  """The rows of every global batch that this process's devices hold.

  Returns ``slice(start, stop)`` into the B = ``global_batch_size`` rows
  (B / num_processes of them on the usual one-process-per-host mesh; default
  mesh :func:`data_mesh`).

  Raises:
    ValueError: if B does not divide over the mesh, or this process's rows are
      not contiguous.
  """
  mesh = data_mesh() if mesh is None else mesh
  _check_divisible(validate.integer(global_batch_size, 'global_batch_size', 1),
                   mesh.size)
  index_map = batch_sharding(mesh).addressable_devices_indices_map(
      (global_batch_size,))
  rows = sorted({(s[0].start or 0, s[0].stop or global_batch_size)
                 for s in index_map.values()})
  if any(stop != start for (_, stop), (start, _) in zip(rows, rows[1:])):
    raise ValueError(f'process {jax.process_index()} holds non-contiguous '
                     f'rows {rows}; build the mesh with data_mesh().')
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
  sharding = batch_sharding(mesh)
  sizes = {name: np.shape(a)[0] if np.ndim(a) else None
           for name, a in local_batch.items()}
  if len(set(sizes.values())) != 1 or None in sizes.values():
    raise ValueError(f'local batch arrays need the same number of rows; got '
                     f'{sizes}.')
  if (rows := next(iter(sizes.values()))) % (local := len(mesh.local_devices)):
    raise ValueError(f'the local batch of {rows} rows do not divide over '
                     f'{local} local devices; see host_batch_slice.')
  return {name: jax.make_array_from_process_local_data(
      sharding, np.asarray(a), (rows * mesh.size // local,) + np.shape(a)[1:])
          for name, a in local_batch.items()}

