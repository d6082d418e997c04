r"""Training throughput (samples/s) of the engine against the hardware roofline.

For every objective and batch size, on two-digit images 3x32x64 with the
paper's MLP encoder: ``<objective>`` (device epochs,
``trainer.jit_train_epoch``) and ``<objective>_host`` (NumPy batches fed to
``trainer.jit_train_step``), against the roofline on the same batches:
``data`` (generation alone), ``encoder`` (generation + the bare encoder
forward and backward, SGD) and ``matmul`` (GFLOP/s); with ``--ablations``,
``encoder_adam`` and ``cmi_no_accuracy``. Benches are timed in interleaved
rounds (:func:`measure`)::

  PYTHONPATH=. python benchmarks/train_throughput.py --out=/tmp/train.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import time
from typing import Any, Callable

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cmi_jax import models
from cmi_jax import train
from cmi_jax.objectives import AdversarialCMI
from cmi_jax.data import base as data_base
from cmi_jax.data import multi_digit as md
from cmi_jax.data import sources
from benchmarks import numpy_reference
from experiments import cli

_DEVICE = flags.DEFINE_enum('device', 'auto', ['auto', 'cpu', 'gpu', 'tpu'],
                            'Platform to run on (auto: JAX\'s default).')
_OBJECTIVES = flags.DEFINE_list('objectives', ['base', 'mi', 'cmi'],
                                'Objectives to time.')
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', ['100', '256', '1024'],
                                 'Batch sizes to time.')
_MIN_SECONDS = flags.DEFINE_float(
    'min_seconds', 3.0,
    'Time each measurement for about this long in all (over the rounds).')
_EPOCH_SIZE = flags.DEFINE_integer(
    'epoch_size', 9985,
    'Samples per epoch: the images of classes 3 and 8 among the first 50,000 '
    'MNIST training images (11,982 of all 60,000, times 50/60).')
_EPOCHS = flags.DEFINE_integer('epochs', 400,
                               'Epochs of a full run (the paper: 400).')
_NOISE = flags.DEFINE_float('noise', 0.4, 'Occlusion threshold.')
_CORR = flags.DEFINE_float('corr', 0.9, 'Training correlation.')
_HOST_POOL = flags.DEFINE_integer(
    'host_pool', 8, 'Distinct NumPy batches cycled through by the host path.')
_MATMUL_SIZE = flags.DEFINE_integer(
    'matmul_size', 0, 'Side of the roofline matmul (0: 2048 on CPU, 8192 '
    'on accelerators).')
_ROUNDS = flags.DEFINE_integer(
    'rounds', 3, 'Interleaved timing rounds (the best one is reported).')
_ABLATIONS = flags.DEFINE_bool(
    'ablations', True, 'Also time the encoder with Adam and the CMI step '
    'without its accuracy metrics.')
_PROFILE = flags.DEFINE_bool(
    'profile', False, 'Also time the parts of the CMI step against prototypes '
    'of cheaper formulations (see profile_benches).')
_OUT = flags.DEFINE_string('out', None, 'Write the results as JSON here.')
_IDENTICAL_CHANNELS = flags.DEFINE_bool(
    'identical_channels', True,
    'Encoder reads one of the 3 identical gray channels against the summed '
    'kernel (the multi-digit experiment default; the same model). False: '
    'the plain 3-channel first layer, as the paper code computes it.')

# The paper's learning rates for multi-digit MNIST (they do not change speed).
_OPTIM = {'base': train.OptimConfig(lr=1e-4, cls_lr=1e-3),
          'mi': train.OptimConfig(lr=1e-5, cls_lr=1e-4, d_lr=1e-4),
          'cmi': train.OptimConfig(lr=1e-5, cls_lr=1e-4, d_lr=1e-4)}
# The objectives with a term but no adversary train at CMI's rates.
_OPTIM.update({name: _OPTIM['cmi'] for name in
               ('mmd_mi', 'mmd_cmi', 'hsic_cmi', 'hscic', 'circe')})
SUBSPACES = (5, 5)
NUM_CLASSES = (2, 2)
TARGET_SAMPLES_PER_S = 32_000  # CMI loop on a 2-core CPU
TARGET_FRACTION = 0.70  # of the bare encoder fwd+bwd
REFERENCE_PYTORCH = '800-850 samples/s'


@dataclasses.dataclass(frozen=True)
class _CMIWithoutDiagnostics(AdversarialCMI):
  """The CMI objective minus the adversary-accuracy metrics (ablation)."""

  def diagnostics(self, adversary_params, key, z, labels, permutations):
    return {}


def paper_encoder() -> models.MLPEncoder:
  """The paper's MLP encoder 2x50, z_dim 10 (``--identical_channels`` fold)."""
  return models.MLPEncoder(10, (50, 50),
                           identical_channels=_IDENTICAL_CHANNELS.value)


def make_trainer(objective: str) -> train.Trainer:
  """The paper's multi-digit model: MLP 2x50, z_dim 10, adversaries 50-50.

  CIRCE's regressions are fitted on 10% of an epoch of held-out labels, as
  in the experiments (``config.circe_heldout``).
  """
  heldout = data_base.heldout_labels(make_dataset(100), NUM_CLASSES, 0.1)
  return train.make_trainer(paper_encoder(), objective,
                            SUBSPACES, NUM_CLASSES, _OPTIM[objective],
                            circe_heldout_labels=heldout)


def make_dataset(batch_size: int) -> md.MultiDigitDataset:
  """Multi-digit training set whose epoch has ``--epoch_size`` samples.

  The offline MNIST's images are repeated up to that size, which changes
  the bank's memory but not the work per batch.
  """
  digits = sources.load_digits('mnist', source='embedded')
  keep = np.isin(digits.train_labels, (3, 8))
  images, labels = digits.train_images[keep], digits.train_labels[keep]
  reps = -(-_EPOCH_SIZE.value // len(images))
  images = np.concatenate([images] * reps)[:_EPOCH_SIZE.value]
  labels = np.concatenate([labels] * reps)[:_EPOCH_SIZE.value]
  return md.make_multi_digit_dataset(
      images, labels, classes=(3, 8), corr=_CORR.value, noise=_NOISE.value,
      batch_size=batch_size)


Bench = tuple[Callable[[], Any], int]  # (one call, samples per call)


def measure(benches: dict[str, Bench], rounds: int,
            seconds_per_round: float) -> dict[str, dict[str, float]]:
  """Times every bench in interleaved rounds; robust on a shared machine.

  Each bench is called once to compile (``first_call_s``); then every round
  calls each bench in turn for about ``seconds_per_round``, so load hits all
  alike. ``samples_per_s`` is the best round, ``median_samples_per_s`` the
  median; ``samples_per_cpu_s`` divides by this process's CPU time, which
  other processes' load hardly changes.
  """
  stats = {}
  for name, (call, _) in benches.items():
    start = time.perf_counter()
    jax.block_until_ready(call())
    stats[name] = {'first_call_s': time.perf_counter() - start, 'rates': [],
                   'cpu_rates': []}
  for _ in range(rounds):
    for name, (call, samples) in benches.items():
      calls, start, cpu = 0, time.perf_counter(), time.process_time()
      while calls < 1 or time.perf_counter() - start < seconds_per_round:
        jax.block_until_ready(call())
        calls += 1
      stats[name]['rates'].append(
          calls * samples / (time.perf_counter() - start))
      stats[name]['cpu_rates'].append(
          calls * samples / (time.process_time() - cpu))
  for s in stats.values():
    rates, cpu_rates = s.pop('rates'), s.pop('cpu_rates')
    s.update(samples_per_s=max(rates),
             median_samples_per_s=float(np.median(rates)),
             samples_per_cpu_s=float(np.median(cpu_rates)),
             rounds=len(rates))
  return stats


def _zeros_batch(data: md.MultiDigitDataset) -> jax.Array:
  return jnp.zeros((data.batch_size, md.IMAGE_SIZE,
                    md.IMAGE_SIZE * data.num_digits, md.NUM_CHANNELS))


def device_epoch_bench(trainer: train.Trainer,
                       data: md.MultiDigitDataset) -> Bench:
  """One scanned epoch of ``trainer.jit_train_epoch`` (state donated)."""
  box = [trainer.init(jax.random.PRNGKey(0), _zeros_batch(data))]

  def call():
    box[0], metrics = trainer.jit_train_epoch(box[0], data)
    return metrics
  return call, data.steps_per_epoch * data.batch_size


def host_steps_bench(trainer: train.Trainer, data: md.MultiDigitDataset,
                     generate: bool = False) -> Bench:
  """An epoch of NumPy batches fed one by one to ``trainer.jit_train_step``.

  ``generate=False`` cycles ``--host_pool`` batches made before timing (the
  bound of an ideal background loader); ``generate=True`` makes each batch
  in the loop, as a simple loader would.
  """
  rng = np.random.default_rng(0)
  bank, counts = np.asarray(data.bank), np.asarray(data.counts)
  table, noise = np.asarray(data.table), float(data.noise)
  make = lambda: numpy_reference.sample_batch(
      rng, bank, counts, table, noise, data.patch, data.batch_size)
  pool = [make() for _ in range(1 if generate else _HOST_POOL.value)]
  box = [trainer.init(jax.random.PRNGKey(0), pool[0]['image'])]
  steps = data.steps_per_epoch

  def call():  # blocked on at the end of the epoch only, as a loader would
    metrics = None
    for i in range(steps):
      batch = make() if generate else pool[i % len(pool)]
      box[0], metrics = trainer.jit_train_step(box[0], batch)
    return metrics
  return call, steps * data.batch_size


def _scan_over_batches(body: Callable[[Any, Any], Any],
                       data: md.MultiDigitDataset) -> Callable[[Any], Any]:
  """jit(carry -> carry) that runs ``body(carry, batch)`` over one epoch."""
  @jax.jit
  def run(carry):
    plan = data.epoch_plan(jax.random.PRNGKey(1))

    def step(carry, i):
      return body(carry, data.batch(plan, i)), None
    return jax.lax.scan(step, carry, jnp.arange(data.steps_per_epoch))[0]
  return run


def data_only_bench(data: md.MultiDigitDataset) -> Bench:
  """Batch generation alone; a checksum keeps XLA from skipping it."""
  run = _scan_over_batches(
      lambda total, b: total + b['image'].mean() + b['labels'].sum(), data)
  return lambda: run(jnp.float32(0)), data.steps_per_epoch * data.batch_size


def encoder_bench(data: md.MultiDigitDataset, adam: bool = False) -> Bench:
  """Generation + the bare encoder forward+backward + an SGD update.

  The update makes each step depend on the last, as in training; ``adam``:
  the engine's Adam instead of SGD.
  """
  encoder = paper_encoder()
  params = encoder.init(jax.random.PRNGKey(0), _zeros_batch(data))
  tx = train.adam(1e-5, (0.9, 0.999)) if adam else None
  box = [(params, tx.init(params) if adam else None)]

  def body(carry, batch):
    params, opt = carry
    grads = jax.grad(
        lambda p: jnp.sum(encoder.apply(p, batch['image']) ** 2))(params)
    if not adam:
      return jax.tree.map(lambda p, g: p - 1e-6 * g, params, grads), opt
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt
  run = _scan_over_batches(body, data)

  def call():
    box[0] = run(box[0])
    return box[0]
  return call, data.steps_per_epoch * data.batch_size


def matmul_bench(size: int) -> Bench:
  """A ``size`` x ``size`` float32 matmul; "samples" are its 2 n^3 flops."""
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
  b = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
  matmul = jax.jit(lambda a, b: (a @ b) * (1.0 / size))
  return lambda: matmul(a, b), 2 * size**3


def profile_benches(batch_size: int, steps: int) -> dict[str, Bench]:
  """The parts of the CMI step at ``batch_size``, scanned ``steps`` times.

  Each part against a prototype of a cheaper formulation, on fixed inputs:
  z ``[B, 10]``, two binary attributes, discriminators 12 -> 50 -> 50 -> 1.
  """
  from cmi_jax import losses, shuffle  # Local: only the profile needs them.
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  z = jax.random.normal(keys[0], (batch_size, sum(SUBSPACES)))
  labels = jax.random.bernoulli(keys[1], 0.5, (batch_size, 2)).astype(
      jnp.int32)
  adversary = models.Adversary(2, (50, 50))
  inputs = [jnp.zeros((batch_size, sum(SUBSPACES) + c)) for c in NUM_CLASSES]
  params = adversary.init(keys[2], inputs, method=adversary.init_all)
  samples = steps * batch_size

  def scanned(body):
    # body(key, scale) -> scalar; scale (~1) makes each step depend on the last.
    @jax.jit
    def run(total):
      def step(total, i):
        key = jax.random.fold_in(jax.random.PRNGKey(1), i)
        return total + 1e-9 * body(key, 1.0 + 1e-9 * total), None
      return jax.lax.scan(step, total, jnp.arange(steps))[0]
    return lambda: run(jnp.float32(0)), samples

  def permutations(permute):
    def body(key, scale):
      k0, k1 = jax.random.split(key)
      rows = [permute(k0, labels[:, 0]), permute(k1, labels[:, 1])]
      return sum(jnp.sum(z[r] * scale) for r in rows)
    return body

  def adversary_loss(p, codes, fused):
    # Real and fake (reversed rows) codes through both discriminators.
    onehots = [jax.nn.one_hot(labels[:, k], 2) for k in range(2)]
    batches = [jnp.concatenate([c, onehots[k]], -1)
               for k in range(2) for c in (codes, codes[::-1])]
    if not fused:  # the engine: 2K separate calls
      return sum(adversary.apply(p, k // 2, x).sum()
                 for k, x in enumerate(batches))
    # One vmapped MLP over the K stacked discriminators, real+fake as rows.
    nets = jax.tree.map(lambda *a: jnp.stack(a),
                        *[p['params'][f'nets_{k}'] for k in range(2)])
    rows = jnp.stack([jnp.concatenate(batches[2 * k:2 * k + 2])
                      for k in range(2)])
    mlp = models.MLP((50, 50, 1))
    return jax.vmap(lambda q, x: mlp.apply({'params': q}, x).sum())(
        nets, rows).sum()

  def adversary_grads(fused):
    def body(key, scale):
      del key
      codes = z * scale
      grad_z = jax.grad(adversary_loss, 1)(params, codes, fused)
      grad_p = jax.grad(adversary_loss)(params, codes, fused)
      return grad_z.sum() + sum(g.sum() for g in jax.tree.leaves(grad_p))
    return body

  def cmi_grads(key, scale):
    # The encoder's term w.r.t. z and the adversaries' loss w.r.t. their
    # parameters, shuffles included.
    conditional = lambda p: (lambda k, x: adversary.apply(p, k, x))
    codes = z * scale
    grad_z = jax.grad(lambda c: losses.cmi_losses(
        conditional(params), key, c, labels, SUBSPACES, NUM_CLASSES)[0])(codes)
    grad_p = jax.grad(lambda p: losses.cmi_losses(
        conditional(p), key, codes, labels, SUBSPACES, NUM_CLASSES)[1])(params)
    return grad_z.sum() + sum(g.sum() for g in jax.tree.leaves(grad_p))

  def encoder(channels):
    net = models.MLPEncoder(10, (50, 50))
    x = jax.random.uniform(keys[0], (batch_size, md.IMAGE_SIZE,
                                     2 * md.IMAGE_SIZE, channels))
    p = net.init(keys[1], x)

    def body(key, scale):
      del key
      grads = jax.grad(lambda p: jnp.sum(net.apply(p, x * scale) ** 2))(p)
      return sum(g.sum() for g in jax.tree.leaves(grads))
    return body

  return {
      'cmi_loss_grads': scanned(cmi_grads),
      # The engine's (num_groups known: one sort) vs the generic three sorts.
      'permutation_engine': scanned(permutations(
          lambda k, g: shuffle.group_permutation(k, g, 2))),
      'permutation_three_sorts': scanned(permutations(
          shuffle.group_permutation)),
      'adversary_separate': scanned(adversary_grads(False)),
      'adversary_fused': scanned(adversary_grads(True)),
      'encoder_3_channels': scanned(encoder(3)),
      'encoder_1_channel': scanned(encoder(1)),
  }


def program_stats(trainer: train.Trainer, data: md.MultiDigitDataset
                  ) -> dict[str, float]:
  """Size of the compiled step: fusions, sorts, XLA's flop count."""
  example = md.materialize(data, max_batches=1)
  state = trainer.init(jax.random.PRNGKey(0), example['image'])
  compiled = jax.jit(trainer.step).lower(state, example).compile()
  text = compiled.as_text()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return {'fusions': text.count(' fusion('),
          'sorts': text.count(' sort('),
          'instructions': sum(1 for line in text.splitlines()
                              if ' = ' in line),
          'flops_per_step': float(cost.get('flops', float('nan')))}


def _load() -> str:
  try:
    return ' '.join(f'{x:.2f}' for x in os.getloadavg())
  except OSError:
    return 'unknown'


def main(argv):
  del argv
  device = (jax.devices()[0] if _DEVICE.value == 'auto'
            else jax.devices(_DEVICE.value)[0])
  batch_sizes = [int(b) for b in _BATCH_SIZES.value]
  objectives = list(_OBJECTIVES.value)
  unknown = sorted(set(objectives) - set(_OPTIM))
  if unknown:
    raise app.UsageError(f'unknown objectives {unknown}; choose from '
                         f'{sorted(_OPTIM)}.')
  matmul_size = _MATMUL_SIZE.value or (2048 if device.platform == 'cpu'
                                       else 8192)
  rounds, per_round = _ROUNDS.value, _MIN_SECONDS.value / _ROUNDS.value
  results: dict[str, Any] = {
      'config': {'objectives': objectives, 'batch_sizes': batch_sizes,
                 'epoch_size': _EPOCH_SIZE.value, 'epochs': _EPOCHS.value,
                 'noise': _NOISE.value, 'corr': _CORR.value,
                 'min_seconds': _MIN_SECONDS.value, 'rounds': rounds,
                 'encoder': 'MLP 2x50, z_dim 10',
                 'identical_channels': _IDENTICAL_CHANNELS.value,
                 'input': '3x32x64 (two digits)'},
      'platform': device.platform, 'device': device.device_kind,
      'host': {'cpus': os.cpu_count(), 'machine': platform.machine(),
               'load_before': _load()},
      'jax': jax.__version__, 'runs': []}
  with jax.default_device(device):
    matmul = measure({'matmul': matmul_bench(matmul_size)}, rounds,
                     per_round)['matmul']
    results['matmul'] = {'size': matmul_size,
                         'gflop_per_s': matmul['samples_per_s'] / 1e9,
                         'gflop_per_cpu_s': matmul['samples_per_cpu_s'] / 1e9,
                         'first_call_s': matmul['first_call_s'],
                         'median_gflop_per_s':
                             matmul['median_samples_per_s'] / 1e9}
    print(f"matmul {matmul_size}: {results['matmul']['gflop_per_s']:.1f} "
          'GFLOP/s', flush=True)
    for index, batch_size in enumerate(batch_sizes):
      data = make_dataset(batch_size)
      benches = {'data': data_only_bench(data),
                 'encoder': encoder_bench(data)}
      if _ABLATIONS.value:
        benches['encoder_adam'] = encoder_bench(data, adam=True)
      for objective in objectives:
        trainer = make_trainer(objective)
        benches[objective] = device_epoch_bench(trainer, data)
        benches[f'{objective}_host'] = host_steps_bench(trainer, data)
        if objective == 'cmi':
          benches['cmi_host_numpy'] = host_steps_bench(trainer, data, True)
      if 'cmi' in objectives and _ABLATIONS.value:
        ablation = _CMIWithoutDiagnostics.create(SUBSPACES, NUM_CLASSES)
        benches['cmi_no_accuracy'] = device_epoch_bench(
            dataclasses.replace(make_trainer('cmi'), objective=ablation), data)
      row = {'batch_size': batch_size,
             'steps_per_epoch': data.steps_per_epoch,
             **measure(benches, rounds, per_round)}
      if _PROFILE.value:
        row['profile'] = measure(
            profile_benches(batch_size, max(10, 20_000 // batch_size)),
            rounds, per_round)
      if index == 0:  # the compiled program hardly depends on B
        row['programs'] = {o: program_stats(make_trainer(o), data)
                           for o in objectives}
      results['runs'].append(row)
      print(f"B={batch_size}: " + ', '.join(
          f"{name} {row[name]['samples_per_s']:,.0f}/s" for name in benches),
            flush=True)
  results['host']['load_after'] = _load()
  results['peak_host_memory_mb'] = (
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
  print(summarize(results))
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      json.dump(results, f, indent=2)


def summarize(results: dict[str, Any]) -> str:
  """Adds derived numbers (fractions, run times); returns a Markdown report."""
  epochs = results['config']['epochs']
  epoch_size = results['config']['epoch_size']
  header = ('| B | what | samples/s (best) | median | of encoder fwd+bwd | '
            'samples per CPU-s | of encoder (CPU) | '
            f'epoch (s) | {epochs} epochs (min) | first call (s) |')
  lines = [header, '|' + '---|' * (header.count('|') - 1)]
  labels = {'data': '*data generation only*',
            'encoder': '*encoder fwd+bwd (roofline)*',
            'encoder_adam': '*encoder fwd+bwd + Adam*',
            'cmi_host_numpy': 'cmi, host-fed steps, NumPy batches made in '
                              'the loop',
            'cmi_no_accuracy': '*cmi without accuracy metrics*'}
  for row in results['runs']:
    encoder = row['encoder']['samples_per_s']
    names = ['data', 'encoder', 'encoder_adam']
    for objective in results['config']['objectives']:
      names += [objective, f'{objective}_host']
    names += ['cmi_host_numpy', 'cmi_no_accuracy']
    for name in names:
      if name not in row:
        continue
      r = row[name]
      rate = r['samples_per_s']
      r['fraction_of_encoder'] = rate / encoder
      r['cpu_fraction_of_encoder'] = (
          r['samples_per_cpu_s'] / row['encoder']['samples_per_cpu_s'])
      r['epoch_s'] = epoch_size / rate
      r['run_minutes'] = epochs * r['epoch_s'] / 60
      label = labels.get(name, name.replace('_host', ', host-fed steps '
                                            '(batches made beforehand)')
                         if name.endswith('_host') else
                         f'{name}, device epoch')
      lines.append(
          f"| {row['batch_size']} | {label} | {rate:,.0f} | "
          f"{r['median_samples_per_s']:,.0f} | "
          f"{r['fraction_of_encoder']:.0%} | {r['samples_per_cpu_s']:,.0f} | "
          f"{r['cpu_fraction_of_encoder']:.0%} | {r['epoch_s']:.2f} | "
          f"{r['run_minutes']:.1f} | {r['first_call_s']:.1f} |")
  matmul = results['matmul']
  lines.append(
      f"\nmatmul {matmul['size']}x{matmul['size']} float32: "
      f"{matmul['gflop_per_s']:.1f} GFLOP/s (best round; median "
      f"{matmul['median_gflop_per_s']:.1f}; {matmul['gflop_per_cpu_s']:.1f} "
      f"per CPU-s) on {results['platform']} "
      f"({results['device']}, {results['host']['cpus']} CPUs); load average "
      f"{results['host']['load_before']} -> {results['host']['load_after']}; "
      f"peak host memory {results['peak_host_memory_mb']:.0f} MB.")
  if 'cmi' in results['config']['objectives']:
    for row in results['runs']:
      r = row['cmi']
      lines.append(
          f"CMI at B={row['batch_size']}: {r['samples_per_s']:,.0f} samples/s "
          f"wall (best round; target {TARGET_SAMPLES_PER_S:,}, reference "
          f"PyTorch {REFERENCE_PYTORCH}); {r['samples_per_cpu_s']:,.0f} per "
          f"CPU-s, {r['cpu_fraction_of_encoder']:.0%} of the bare encoder "
          f"fwd+bwd in CPU time ({r['fraction_of_encoder']:.0%} wall; target "
          f"{TARGET_FRACTION:.0%}).")
  for row in results['runs']:
    if 'profile' not in row:
      continue
    b = row['batch_size']
    lines.append(f'Profile at B={b} (CPU time per step, median of rounds): '
                 + ', '.join(f"{name} {1e6 * b / r['samples_per_cpu_s']:.0f} us"
                             for name, r in row['profile'].items()))
  programs = results['runs'][0].get('programs', {})
  if programs:
    lines.append('Compiled step (B=%d): ' % results['runs'][0]['batch_size']
                 + '; '.join(f"{o} {p['fusions']} fusions, {p['sorts']} sorts, "
                             f"{p['flops_per_step'] / 1e6:.0f} MFLOP"
                             for o, p in programs.items()))
  return '\n'.join(lines)


if __name__ == '__main__':
  cli.run_main(main)
