"""The training engine: state, optimisers, simultaneous updates, devices, eval.

Every trainer is built once (``trainer_for``) so that tests share its compiled
step; the full objectives x devices x paths matrix is marked slow.
"""

import dataclasses
import functools

import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cmi_jax import distributed, epochs, evaluation, losses, objectives, programs, train
from cmi_jax.data import synthetic
import tiny

SUBSPACES, NUM_CLASSES = tiny.SUBSPACES, tiny.NUM_CLASSES
BATCH_SIZE = 16
# Distinct rates and betas per player, so a setting routed to the wrong
# optimiser changes the result.
OPTIM = dict(lr=1e-2, cls_lr=3e-2, d_lr=5e-2, betas=(0.8, 0.99),
             d_betas=(0.5, 0.9))
DATA = synthetic.synthetic_dataset(0.8, batch_size=BATCH_SIZE,
                                   steps_per_epoch=3)
ADVERSARIAL = ('mi', 'cmi')

pytestmark = pytest.mark.usefixtures('fast_compiles')


def make_trainer(objective, **optim):
  return tiny.make_trainer(objective, train.OptimConfig(**{**OPTIM, **optim}))


@functools.cache
def trainer_for(objective):
  return make_trainer(objective)


def global_batch(seed=1):
  """A NumPy batch of ``BATCH_SIZE`` rows with some labels missing (-1)."""
  batch = jax.device_get(DATA.batch(jax.random.PRNGKey(seed), 0))
  labels = np.array(batch['labels'], np.int32)
  labels[::5, 0] = -1
  labels[2::7, 1] = -1
  return {'image': np.asarray(batch['image']), 'labels': labels}


BATCH = global_batch()


@functools.cache
def host_state(objective):
  """The initial state of ``trainer_for(objective)`` as NumPy arrays."""
  state = trainer_for(objective).init(jax.random.PRNGKey(0), BATCH['image'],
                                      disentangle_weight=0.7)
  return jax.device_get(state)


def fresh_state(objective):
  """New device buffers each call: the jitted steps donate their input."""
  return jax.device_put(host_state(objective))


@functools.cache
def one_device_step(objective):
  """``(new_state, metrics)`` of the jitted one-device step, on the host."""
  trainer = trainer_for(objective)
  return jax.device_get(trainer.jit_train_step(fresh_state(objective), BATCH))


def params_equal(a, b):
  return all(np.array_equal(x, y) for x, y in
             zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize('objective', ['base', 'cmi'])
def test_state_holds_every_player_and_its_optimiser(objective):
  state = host_state(objective)
  assert dataclasses.is_dataclass(state)
  assert type(state) is train.TrainState
  assert int(state.step) == 0 and state.key.shape == (2,)
  leaves, treedef = jax.tree.flatten(state)
  assert params_equal(jax.tree.unflatten(treedef, leaves), state)

  def hyper(opt, name):
    return float(opt.hyperparams[name])

  np.testing.assert_allclose(hyper(state.encoder_opt, 'learning_rate'),
                             OPTIM['lr'], rtol=1e-6)
  np.testing.assert_allclose(hyper(state.heads_opt, 'learning_rate'),
                             OPTIM['cls_lr'], rtol=1e-6)
  for opt in (state.encoder_opt, state.heads_opt):
    np.testing.assert_allclose([hyper(opt, 'b1'), hyper(opt, 'b2')],
                               OPTIM['betas'], rtol=1e-6)
  assert set(state.heads_params['params']) == {'head_0', 'head_1'}
  if objective == 'base':
    assert state.adversary_params is None and state.adversary_opt is None
  else:
    assert set(state.adversary_params['params']) == {'nets_0', 'nets_1'}
    np.testing.assert_allclose(
        hyper(state.adversary_opt, 'learning_rate'), OPTIM['d_lr'], rtol=1e-6)
    np.testing.assert_allclose(
        [hyper(state.adversary_opt, 'b1'), hyper(state.adversary_opt, 'b2')],
        OPTIM['d_betas'], rtol=1e-6)


def test_bad_trainer_settings_raise_one_clear_error():
  with pytest.raises(ValueError, match='objective .* unknown'):
    make_trainer('gan')
  with pytest.raises(ValueError, match='num_cls_steps must be >= 1'):
    make_trainer('base', num_cls_steps=0)
  with pytest.raises(ValueError, match=r'key must be uint32 \[n\].*PRNGKey'):
    trainer_for('base').init(jax.random.key(0), BATCH['image'])


def state_with_rates(**optim):
  """A base initial state whose optimiser states hold other rates."""
  trainer = make_trainer('base', **optim)
  return jax.device_get(
      trainer.init(jax.random.PRNGKey(0), BATCH['image'], 0.7))


@pytest.mark.parametrize('rate, frozen, trained', [
    ('lr', 'encoder_params', 'heads_params'),
    ('cls_lr', 'heads_params', 'encoder_params')])
def test_a_zero_rate_freezes_only_its_player(rate, frozen, trained):
  old = state_with_rates(**{rate: 0.0})
  new, _ = trainer_for('base').jit_train_step(jax.device_put(old), BATCH)
  assert params_equal(getattr(new, frozen), getattr(old, frozen))
  assert not params_equal(getattr(new, trained), getattr(old, trained))
  assert int(new.step) == 1


def test_num_cls_steps_runs_that_many_head_updates_on_frozen_codes():
  trainer = make_trainer('base', num_cls_steps=3)
  old = host_state('base')  # num_cls_steps is not part of the state.
  new, _ = trainer.jit_train_step(fresh_state('base'), BATCH)
  one, _ = one_device_step('base')
  assert not params_equal(new.heads_params, one.heads_params)
  # The encoder's update does not depend on the head steps.
  tiny.assert_trees_close(new.encoder_params, one.encoder_params, 1e-6)

  @jax.jit
  def three_adam_steps(state):
    z = trainer.encoder.apply(state.encoder_params, BATCH['image'])
    tx = optax.adam(OPTIM['cls_lr'], *OPTIM['betas'])
    params, opt = state.heads_params, tx.init(state.heads_params)
    for _ in range(3):
      grads = jax.grad(lambda p: mean_head_ce(trainer, p, z, BATCH['labels']))(
          params)
      updates, opt = tx.update(grads, opt, params)
      params = optax.apply_updates(params, updates)
    return params

  tiny.assert_trees_close(new.heads_params, three_adam_steps(old), 1e-6)
  assert int(new.heads_opt.count) == 3


def mean_head_ce(trainer, heads_params, z, labels):
  """Mean over heads of the cross-entropy over labelled rows (by hand)."""
  terms = []
  for k, logits in enumerate(trainer.heads.apply(heads_params, z)):
    present = labels[:, k] >= 0
    rows = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.where(present, labels[:, k], 0))
    terms.append(jnp.sum(jnp.where(present, rows, 0.0))
                 / jnp.maximum(present.sum(), 1))
  return jnp.mean(jnp.stack(terms))


def reference_cmi_step(trainer, state, batch):
  """The three players' updates assembled by hand from the *old* state."""
  x, labels = batch['image'], batch['labels']
  key = jax.random.fold_in(
      jax.random.fold_in(state.key, train._LOSS_STREAM), state.step)

  def adversary(params):
    return lambda k, inputs: trainer.objective.adversary.apply(params, k, inputs)

  def encoder_loss(params):
    z = trainer.encoder.apply(params, x)
    term, _ = losses.cmi_losses(adversary(state.adversary_params), key, z,
                                labels, SUBSPACES, NUM_CLASSES)
    return (mean_head_ce(trainer, state.heads_params, z, labels)
            + state.disentangle_weight * term)

  def adam_step(lr, betas, loss, params, opt):
    grads = jax.grad(loss)(params)
    # The optimiser's own state, minus the hyperparameter wrapper.
    updates, _ = optax.adam(lr, *betas).update(grads, opt.inner_state, params)
    return optax.apply_updates(params, updates)

  z_old = trainer.encoder.apply(state.encoder_params, x)
  encoder = adam_step(OPTIM['lr'], OPTIM['betas'], encoder_loss,
                      state.encoder_params, state.encoder_opt)
  heads = adam_step(OPTIM['cls_lr'], OPTIM['betas'],
                    lambda p: mean_head_ce(trainer, p, z_old, labels),
                    state.heads_params, state.heads_opt)
  adv = adam_step(
      OPTIM['d_lr'], OPTIM['d_betas'],
      lambda p: losses.cmi_losses(adversary(p), key, z_old, labels, SUBSPACES,
                                  NUM_CLASSES)[1],
      state.adversary_params, state.adversary_opt)
  return encoder, heads, adv


def test_players_update_simultaneously_from_the_old_state():
  trainer = trainer_for('cmi')
  # From the state after one step, so Adam's moments (and hence the betas of
  # each optimiser) matter: the very first Adam step is sign(grad) * lr.
  state, _ = one_device_step('cmi')
  state = jax.device_put(state)
  batch = global_batch(seed=2)
  encoder, heads, adv = jax.jit(functools.partial(reference_cmi_step,
                                                  trainer))(state, batch)
  new, _ = trainer.jit_train_step(jax.tree.map(jnp.copy, state), batch)
  tiny.assert_trees_close(new.encoder_params, encoder, 1e-6)
  tiny.assert_trees_close(new.heads_params, heads, 1e-6)
  tiny.assert_trees_close(new.adversary_params, adv, 1e-6)
  assert int(new.step) == 2


@pytest.mark.parametrize('objective', objectives.names())
def test_every_objective_trains(objective):
  old = host_state(objective)
  new, metrics = one_device_step(objective)
  expected = {'loss/encoder', 'loss/ce', 'loss/disentangle', 'loss/adversary',
              'loss/ce_0', 'loss/ce_1', 'accuracy/attr_0', 'accuracy/attr_1'}
  if objective in ADVERSARIAL:
    expected |= {'adversary/acc_real', 'adversary/acc_fake'}
  assert set(metrics) == expected
  for name, value in metrics.items():
    assert np.shape(value) == () and np.isfinite(value), name
  assert not params_equal(new.encoder_params, old.encoder_params)
  assert not params_equal(new.heads_params, old.heads_params)
  if objective == 'base':
    assert metrics['loss/disentangle'] == 0.0
  else:
    assert metrics['loss/disentangle'] > 0.0
  if objective in ADVERSARIAL:
    assert not params_equal(new.adversary_params, old.adversary_params)
    assert metrics['loss/adversary'] > 0.0
  elif objective == 'circe':  # its fixed regressions, never trained
    assert params_equal(new.adversary_params, old.adversary_params)
    assert new.adversary_opt is None
  else:
    assert new.adversary_params is None


def test_missing_labels_leave_their_head_and_adversary_unchanged():
  trainer = trainer_for('cmi')
  old = host_state('cmi')
  batch = dict(BATCH, labels=BATCH['labels'].copy())
  batch['labels'][:, 0] = -1
  new, metrics = trainer.jit_train_step(fresh_state('cmi'), batch)
  # Adam turns a zero gradient into a zero update at the first step.
  heads, old_heads = new.heads_params['params'], old.heads_params['params']
  assert params_equal(heads['head_0'], old_heads['head_0'])
  assert not params_equal(heads['head_1'], old_heads['head_1'])
  adv, old_adv = new.adversary_params['params'], old.adversary_params['params']
  assert params_equal(adv['nets_0'], old_adv['nets_0'])
  assert not params_equal(adv['nets_1'], old_adv['nets_1'])
  assert float(metrics['loss/ce_0']) == 0.0
  assert float(metrics['loss/ce_1']) > 0.0


def run_shard_map(objective, num_devices):
  trainer = trainer_for(objective)
  mesh = distributed.data_mesh(jax.devices()[:num_devices])
  state = distributed.replicate_state(fresh_state(objective), mesh)
  return jax.device_get(distributed.shard_map_train_step(trainer, mesh)(
      state, distributed.shard_batch(BATCH, mesh)))


def run_pmap(objective, num_devices):
  trainer = trainer_for(objective)
  state = distributed.replicate_for_pmap(fresh_state(objective), num_devices)
  new, metrics = jax.device_get(distributed.pmap_train_step(trainer)(
      state, distributed.split_for_pmap(BATCH, num_devices)))
  first = jax.tree.map(lambda a: a[0], (new, metrics))
  for i in range(1, num_devices):
    tiny.assert_trees_close(jax.tree.map(lambda a: a[i], (new, metrics)), first,
                       0.0)
  return first


# The fast run covers each path once: shard_map with the objective whose
# shuffles depend most on the gathered batch, pmap with the cheapest one;
# and each kernel measure, which needs the whole gathered batch.
FAST_DEVICE_CASES = {('cmi', 'shard_map', 8), ('base', 'pmap', 4),
                     ('hsic_cmi', 'shard_map', 8), ('hscic', 'shard_map', 8),
                     ('circe', 'shard_map', 8)}


def device_cases():
  for objective in objectives.names():
    for path in ('shard_map', 'pmap'):
      for n in (1, 2, 4, 8):
        marks = () if (objective, path, n) in FAST_DEVICE_CASES else (
            pytest.mark.slow,)
        yield pytest.param(objective, path, n, marks=marks,
                           id=f'{objective}-{path}-{n}')


@pytest.mark.parametrize('objective,path,num_devices', list(device_cases()))
def test_step_does_not_depend_on_the_number_of_devices(objective, path,
                                                        num_devices):
  run = run_shard_map if path == 'shard_map' else run_pmap
  new, metrics = run(objective, num_devices)
  expected_state, expected_metrics = one_device_step(objective)
  tiny.assert_trees_close(new, expected_state, 1e-5)
  tiny.assert_trees_close(metrics, expected_metrics, 1e-5)


def test_indivisible_global_batch_raises_on_both_paths():
  trainer = trainer_for('base')
  mesh = distributed.data_mesh()
  odd = {k: v[:12] for k, v in BATCH.items()}
  state = distributed.replicate_state(fresh_state('base'), mesh)
  with pytest.raises(ValueError, match='12 examples does not divide over 8'):
    distributed.shard_map_train_step(trainer, mesh)(state, odd)
  with pytest.raises(ValueError, match='12 examples does not divide over 8'):
    distributed.shard_batch(odd, mesh)
  with pytest.raises(ValueError, match='12 examples does not divide over 8'):
    distributed.split_for_pmap(odd, 8)
  odd_data = dataclasses.replace(DATA, batch_size=12)
  with pytest.raises(ValueError, match='12 examples does not divide over 8'):
    distributed.shard_map_train_epoch(trainer, mesh)(state, odd_data)


def test_jit_train_epoch_traces_once_and_donates_the_state(monkeypatch):
  trainer = trainer_for('base')
  # From an empty cache, so an earlier compile cannot hide a retrace.
  trainer.jit_train_epoch.clear_cache()
  monkeypatch.setattr(epochs, 'scan_epoch',
                      chex.assert_max_traces(epochs.scan_epoch, n=1))
  state = fresh_state('base')
  for epoch in range(1, 4):
    old = state
    state, metrics = trainer.jit_train_epoch(state, DATA)
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(old))
    assert int(state.step) == epoch * DATA.steps_per_epoch
    assert metrics['loss/ce'].shape == (DATA.steps_per_epoch,)


def test_jit_train_step_donates_the_state():
  trainer = trainer_for('base')
  state = fresh_state('base')
  new, _ = trainer.jit_train_step(state, BATCH)
  assert all(leaf.is_deleted() for leaf in jax.tree.leaves(state))
  assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(new))


@pytest.mark.parametrize('objective', [
    'base', pytest.param('cmi', marks=pytest.mark.slow),
    pytest.param('mmd_cmi', marks=pytest.mark.slow)])
def test_sharded_epoch_equals_one_device_epoch(objective):
  trainer = trainer_for(objective)
  num_steps = DATA.steps_per_epoch
  expected = jax.device_get(
      trainer.jit_train_epoch(fresh_state(objective), DATA))
  mesh = distributed.data_mesh()
  state = distributed.replicate_state(fresh_state(objective), mesh)
  actual = jax.device_get(
      distributed.shard_map_train_epoch(trainer, mesh)(state, DATA))
  assert int(actual[0].step) == num_steps
  assert actual[1]['loss/ce'].shape == (num_steps,)
  tiny.assert_trees_close(actual, expected, 1e-5)


@flax.struct.dataclass
class PaddedDataset:
  """Fixed rows in order; the last batch is padded (mask 0) to full size."""
  images: jax.Array
  labels: jax.Array
  mask: jax.Array
  batch_size: int = flax.struct.field(pytree_node=False)

  @property
  def steps_per_epoch(self):
    return self.images.shape[0] // self.batch_size

  def epoch_plan(self, key):
    return key

  def batch(self, plan, step):
    take = lambda a: jax.lax.dynamic_slice_in_dim(
        a, step * self.batch_size, self.batch_size)
    return {'image': take(self.images), 'labels': take(self.labels),
            'mask': take(self.mask)}


def padded_dataset(num_real=45, batch_size=16):
  rng = np.random.default_rng(0)
  total = -(-num_real // batch_size) * batch_size
  labels = rng.integers(0, 2, (total, 2)).astype(np.int32)
  labels[rng.random((total, 2)) < 0.2] = -1
  # Padding rows carry valid-looking labels: only the mask may exclude them.
  labels[num_real:] = 1
  mask = (np.arange(total) < num_real).astype(np.float32)
  images = rng.normal(size=(total, 4)).astype(np.float32)
  return PaddedDataset(jnp.asarray(images), jnp.asarray(labels),
                       jnp.asarray(mask), batch_size), num_real


def test_evaluate_and_summarize_match_numpy():
  trainer = trainer_for('base')
  state = fresh_state('base')
  data, num_real = padded_dataset()
  stats = evaluation.evaluate(trainer, state, data)
  summary = evaluation.summarize(stats)

  images = np.asarray(data.images)[:num_real]
  labels = np.asarray(data.labels)[:num_real]
  z = np.asarray(trainer.encoder.apply(state.encoder_params, images))
  logits = [np.asarray(l) for l in trainer.heads.apply(state.heads_params, z)]
  preds = np.stack([l.argmax(-1) for l in logits], -1)
  np.testing.assert_array_equal(stats['preds'][:num_real], preds)
  np.testing.assert_allclose(stats['z'][:num_real], z, rtol=1e-5, atol=1e-6)
  assert stats['z'].shape[0] == len(data.images)

  present = labels >= 0
  log_softmax = [l - np.log(np.exp(l).sum(-1, keepdims=True)) for l in logits]
  ce = np.array([-log_softmax[k][present[:, k], labels[present[:, k], k]].sum()
                 for k in range(2)])
  count = present.sum(0)
  correct = ((preds == labels) & present).sum(0)
  np.testing.assert_allclose(stats['ce_sum'], ce, rtol=1e-5)
  np.testing.assert_array_equal(stats['count'], count)
  np.testing.assert_array_equal(stats['correct'], correct)

  full = present.all(1)
  confusion = np.zeros((4, 4))
  combo_correct, combo_count = np.zeros((4, 2)), np.zeros(4)
  for row in np.flatnonzero(full):
    true = 2 * labels[row, 0] + labels[row, 1]
    confusion[true, 2 * preds[row, 0] + preds[row, 1]] += 1
    combo_count[true] += 1
    combo_correct[true] += preds[row] == labels[row]
  np.testing.assert_array_equal(stats['confusion'], confusion)
  np.testing.assert_array_equal(stats['combo_count'], combo_count)

  assert summary['num_examples'] == num_real
  np.testing.assert_allclose(summary['loss'], np.mean(ce / count), rtol=1e-5)
  np.testing.assert_allclose(summary['accuracy_per_attribute'],
                             correct / count)
  np.testing.assert_allclose(summary['accuracy'], np.mean(correct / count))
  with np.errstate(invalid='ignore'):
    per_combination = combo_correct / combo_count[:, None]
  np.testing.assert_allclose(summary['accuracy_per_combination'],
                             per_combination)
  np.testing.assert_array_equal(summary['confusion'], confusion)
  np.testing.assert_allclose(summary['z_correlation'],
                             np.corrcoef(z, rowvar=False), atol=1e-5)


def test_eval_step_ignores_padding_rows():
  trainer = trainer_for('base')
  state = fresh_state('base')
  data, _ = padded_dataset(num_real=16 + 5)
  last = data.batch(None, 1)
  eval_step = programs.compiled(evaluation.eval_step, trainer)
  out = eval_step(state, last)
  unmasked = eval_step(state, dict(last, mask=jnp.ones(16)))
  labels = np.asarray(last['labels'])[:5]
  np.testing.assert_array_equal(out['count'], (labels >= 0).sum(0))
  assert float(np.sum(out['confusion'])) == float(
      np.all(labels >= 0, 1).sum())
  # Without the mask the padding rows (all labelled) would count.
  np.testing.assert_array_equal(unmasked['count'] - out['count'], [11, 11])
