"""Multi-process training on CPU: two processes x two devices == one process.

Two ``multihost_worker.py`` processes join one JAX run (Gloo collectives on
localhost), each feeding its half of the global batches to the sharded CMI
step; this process runs the same steps on a four-device mesh and on one
device. All three must agree.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import multihost_worker as worker
from cmi_jax import checkpoint
from cmi_jax import distributed
from cmi_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, 'tests', 'multihost_worker.py')
NUM_PROCESSES = 2
DEVICES_PER_PROCESS = 2
STEPS = 3
TIMEOUT_S = 400


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _start_workers(out: str) -> list[subprocess.Popen]:
  port = _free_port()
  flags = (f'--xla_force_host_platform_device_count={DEVICES_PER_PROCESS} '
           '--xla_backend_optimization_level=0')
  env = dict(os.environ, XLA_FLAGS=flags,
             JAX_PLATFORMS='cpu',
             PYTHONPATH=os.pathsep.join(
                 p for p in (REPO, os.environ.get('PYTHONPATH')) if p))
  procs = []
  for i in range(NUM_PROCESSES):
    log = open(os.path.join(out, f'log_{i}.txt'), 'wb')
    procs.append(subprocess.Popen(
        [sys.executable, WORKER, f'--out={out}',
         f'--num_processes={NUM_PROCESSES}', f'--process_id={i}',
         f'--coordinator=localhost:{port}',
         f'--devices={DEVICES_PER_PROCESS}', f'--steps={STEPS}'],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
  return procs


def _wait(procs: list[subprocess.Popen], out: str) -> None:
  try:
    codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  if any(codes):
    logs = []
    for i in range(NUM_PROCESSES):
      with open(os.path.join(out, f'log_{i}.txt'), errors='replace') as f:
        text = ''.join(line for line in f if '[Gloo]' not in line)
      logs.append(f'--- process {i} (exit {codes[i]}):\n{text[-3000:]}')
    pytest.fail('multi-process run failed:\n' + '\n'.join(logs))


def _reference(mesh_devices: int | None) -> dict[str, np.ndarray]:
  """The same run in this process: on a mesh of n devices, or on one device."""
  trainer = worker.make_trainer()
  example = worker.global_batch(0, 0)['image']
  state = trainer.init(jax.random.PRNGKey(0), example)
  if mesh_devices is None:
    step = trainer.jit_train_step
  else:
    mesh = distributed.data_mesh(jax.devices()[:mesh_devices])
    state = distributed.replicate_state(state, mesh)
    step = distributed.shard_map_train_step(trainer, mesh)
  metrics = []
  for t in range(STEPS):
    state, m = step(state, worker.global_batch(0, t))
    metrics.append(jax.device_get(m))
  return worker.summary(state, metrics)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('multihost'))
  procs = _start_workers(out)
  references = {'four_devices': _reference(4), 'one_device': _reference(None)}
  _wait(procs, out)
  with np.load(os.path.join(out, 'result.npz')) as f:
    result = dict(f)
  return {'out': out, 'two_processes': result, **references}


@pytest.mark.parametrize('reference', ['four_devices', 'one_device'])
def test_two_processes_match_single_process(runs, reference):
  got, want = runs['two_processes'], runs[reference]
  assert sorted(got) == sorted(want)
  assert any(k.startswith('metric:') for k in got)
  for name in sorted(want):
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5,
                               err_msg=name)


def test_training_moved_the_state(runs):
  trainer = worker.make_trainer()
  initial = jax.tree.leaves(trainer.init(
      jax.random.PRNGKey(0), worker.global_batch(0, 0)['image']))
  final = runs['two_processes']
  changed = [not np.allclose(np.asarray(a), final[f'leaf_{i}'])
             for i, a in enumerate(initial)]
  assert sum(changed) > len(changed) // 2


def test_each_process_fed_its_half(runs):
  rows = []
  for i in range(NUM_PROCESSES):
    with open(os.path.join(runs['out'], f'rows_{i}.json')) as f:
      rows.append(json.load(f))
  half = worker.GLOBAL_BATCH // NUM_PROCESSES
  assert [(r['start'], r['stop']) for r in rows] == [
      (i * half, (i + 1) * half) for i in range(NUM_PROCESSES)]
  for r in rows:
    assert r['processes'] == NUM_PROCESSES
    assert r['local_devices'] == DEVICES_PER_PROCESS
    assert r['devices'] == NUM_PROCESSES * DEVICES_PER_PROCESS


def test_checkpoint_written_by_both_processes_restores(runs):
  trainer = worker.make_trainer()
  like = trainer.init(jax.random.PRNGKey(1), worker.global_batch(0, 0)['image'])
  checkpoints = checkpoint.RunCheckpoints(os.path.join(runs['out'], 'run'))
  try:
    restored, meta = checkpoints.restore(checkpoint.LATEST, like)
  finally:
    checkpoints.close()
  assert meta == {'epoch': 1}
  for i, leaf in enumerate(jax.tree.leaves(restored)):
    np.testing.assert_array_equal(np.asarray(leaf),
                                  runs['two_processes'][f'leaf_{i}'])


def test_host_batch_slice_in_one_process_is_everything():
  assert distributed.host_batch_slice(32, distributed.data_mesh()) == slice(0, 32)
  assert distributed.is_main_process()
  with pytest.raises(ValueError, match='multiple of 4'):
    distributed.host_batch_slice(10, distributed.data_mesh(jax.devices()[:4]))


def test_make_global_batch_in_one_process_equals_input():
  mesh = distributed.data_mesh(jax.devices()[:4])
  batch = worker.global_batch(3, 1)
  out = distributed.make_global_batch(batch, mesh)
  for name, value in batch.items():
    assert out[name].shape == value.shape
    assert len(out[name].sharding.device_set) == 4
    np.testing.assert_array_equal(np.asarray(out[name]), value)
  with pytest.raises(ValueError, match='same number of rows'):
    distributed.make_global_batch(
        {'image': np.zeros((8, 3)), 'labels': np.zeros((4, 2), np.int32)}, mesh)
  with pytest.raises(ValueError, match='do not divide'):
    distributed.make_global_batch({'image': np.zeros((6, 3))}, mesh)


def test_initialize_errors_say_how_to_fix():
  with pytest.raises(ValueError, match='process_id'):
    distributed.initialize('localhost:1234', num_processes=2)
  jax.devices()  # the backends now exist
  with pytest.raises(RuntimeError, match='before any jax.numpy call'):
    distributed.initialize('localhost:1234', 2, 0, local_device_count=3)
