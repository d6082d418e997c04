"""Group-robust training: reweighting, GroupDRO, group-balanced epochs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmi_jax import attributes, distributed, groups, train
from cmi_jax.data import base, synthetic
import tiny

NUM_CLASSES = tiny.NUM_CLASSES
DATA = synthetic.synthetic_dataset(0.8, batch_size=16, steps_per_epoch=3)
FREQS = (0.45, 0.05, 0.05, 0.45)

pytestmark = pytest.mark.usefixtures('fast_compiles')


def softmax_ce(logits, label):
  logits = np.asarray(logits, np.float64)
  return float(np.logaddexp.reduce(logits) - logits[label])


def test_group_index_is_row_major_and_minus_one_when_a_label_is_missing():
  labels = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1], [-1, 1], [1, -1]])
  np.testing.assert_array_equal(groups.group_index(labels, (2, 2)),
                                [0, 1, 2, 3, -1, -1])
  np.testing.assert_array_equal(
      groups.group_index(jnp.array([[2, 1], [1, 0]]), (3, 2)), [5, 2])


def test_reweighted_loss_is_the_hand_computed_weighted_mean():
  logits = [jnp.array([[2.0, 0.0], [0.5, 0.3], [0.0, 1.0], [1.0, 1.0]]),
            jnp.array([[0.1, 0.2], [1.0, -1.0], [0.3, 0.3], [-2.0, 2.0]])]
  labels = jnp.array([[0, 0], [0, 1], [1, 1], [-1, 1]])
  weighting = groups.GroupWeighting('reweight', group_freqs=FREQS)
  loss, plain = groups.classification_loss(logits, labels, NUM_CLASSES,
                                           weighting)
  w = [1 / (4 * 0.45), 1 / (4 * 0.05), 1 / (4 * 0.45), 1.0]  # row 3: no group
  want = []
  for k in range(2):
    rows = [i for i in range(4) if labels[i, k] >= 0]
    ce = [softmax_ce(logits[k][i], int(labels[i, k])) for i in rows]
    want.append(sum(w[i] * c for i, c in zip(rows, ce))
                / sum(w[i] for i in rows))
  np.testing.assert_allclose(loss, np.mean(want), rtol=1e-6)
  unweighted = [np.mean([softmax_ce(logits[k][i], int(labels[i, k]))
                         for i in range(4) if labels[i, k] >= 0])
                for k in range(2)]
  np.testing.assert_allclose(plain, unweighted, rtol=1e-6)


def numpy_group_dro(ce_steps, group_steps, eta, adj, counts, num_groups):
  """Sagawa et al.'s online GroupDRO loss computation, transcribed.

  For each step: group losses (mean of the rows' losses per group, 0 for an
  absent group), adjusted by C / sqrt(n_g), q *= exp(eta * adjusted),
  normalised; the robust loss uses the updated q.
  """
  q = np.full(num_groups, 1.0 / num_groups)
  out = []
  for ce, g in zip(ce_steps, group_steps):
    loss_g = np.zeros(num_groups)
    for j in range(num_groups):
      rows = g == j
      if rows.any():
        loss_g[j] = ce[rows].mean()
    adjusted = loss_g + adj / np.sqrt(counts)
    q = q * np.exp(eta * adjusted)
    q = q / q.sum()
    out.append((q.copy(), float(loss_g @ q)))
  return out


def test_group_dro_weights_follow_the_published_algorithm():
  rng = np.random.default_rng(0)
  counts = np.array([400.0, 50.0, 30.0, 420.0])
  weighting = groups.GroupWeighting('groupdro', group_counts=tuple(counts),
                                    dro_step_size=0.3,
                                    dro_size_adjustment=2.0)
  q = jnp.full(4, 0.25)
  ce_steps, group_steps, got = [], [], []
  for step in range(5):
    labels = rng.integers(0, 2, (12, 2)).astype(np.int32)
    if step == 2:
      labels[:, 0] = 0  # groups 2 and 3 absent from this batch
    logits = [jnp.asarray(rng.normal(size=(12, 2)), jnp.float32)
              for _ in range(2)]
    ce, present = attributes.row_losses(logits, jnp.asarray(labels),
                                       NUM_CLASSES)
    losses_g = groups.group_losses(ce, present, jnp.asarray(labels),
                                   NUM_CLASSES)
    q = groups.dro_update(q, losses_g, weighting.dro_step_size,
                          weighting.dro_size_adjustment,
                          weighting.group_counts)
    loss, _ = groups.classification_loss(logits, jnp.asarray(labels),
                                         NUM_CLASSES, weighting, q)
    got.append((np.asarray(q), float(loss)))
    ce_steps.append(np.asarray(ce).mean(-1))
    group_steps.append(labels[:, 0] * 2 + labels[:, 1])
  want = numpy_group_dro(ce_steps, group_steps, 0.3, 2.0, counts, 4)
  for (q_got, loss_got), (q_want, loss_want) in zip(got, want):
    np.testing.assert_allclose(q_got, q_want, rtol=1e-5)
    np.testing.assert_allclose(loss_got, loss_want, rtol=1e-5)


@functools.cache
def dro_trainer(objective='cmi', eta=0.5):
  return tiny.make_trainer(
      objective, train.OptimConfig(lr=1e-2, cls_lr=3e-2, d_lr=1e-2),
      group_weighting=groups.GroupWeighting('groupdro', dro_step_size=eta))


def batch(seed=1):
  out = jax.device_get(DATA.batch(jax.random.PRNGKey(seed), 0))
  labels = np.array(out['labels'], np.int32)
  labels[::5, 0] = -1  # some rows in no group
  return {'image': np.asarray(out['image']), 'labels': labels}


def test_trainer_step_updates_q_from_the_pre_update_group_losses():
  trainer = dro_trainer()
  state = trainer.init(jax.random.PRNGKey(0), batch()['image'], 1.0)
  np.testing.assert_allclose(state.group_dro['q'], [0.25] * 4)
  for seed in (1, 2, 3):
    b = batch(seed)
    z = trainer.encoder.apply(state.encoder_params, b['image'])
    logits = trainer.heads.apply(state.heads_params, z)
    labels = b['labels']
    group = np.where((labels >= 0).all(-1), labels[:, 0] * 2 + labels[:, 1],
                     -1)
    ce = np.array([[softmax_ce(logits[k][i], max(int(labels[i, k]), 0))
                    for k in range(2)] for i in range(len(labels))]).mean(-1)
    loss_g = np.array([ce[group == j].mean() if (group == j).any() else 0.0
                       for j in range(4)])
    want = np.asarray(state.group_dro['q']) * np.exp(0.5 * loss_g)
    want /= want.sum()
    state, metrics = trainer.jit_train_step(state, b)
    np.testing.assert_allclose(state.group_dro['q'], want, rtol=1e-5)
    assert float(metrics['group_dro/max_weight']) == pytest.approx(want.max(),
                                                                   rel=1e-5)


def test_group_dro_step_does_not_depend_on_the_number_of_devices():
  trainer = dro_trainer()
  b = batch()
  host = jax.device_get(trainer.init(jax.random.PRNGKey(0), b['image'], 1.0))
  one, _ = jax.device_get(trainer.jit_train_step(jax.device_put(host), b))
  mesh = distributed.data_mesh(jax.devices()[:8])
  state = distributed.replicate_state(jax.device_put(host), mesh)
  eight, _ = jax.device_get(distributed.shard_map_train_step(trainer, mesh)(
      state, distributed.shard_batch(b, mesh)))
  tiny.assert_trees_close(eight, one, 1e-5)
  np.testing.assert_allclose(eight.group_dro['q'], one.group_dro['q'],
                             rtol=1e-6)


def test_group_dro_run_resumes_bit_for_bit(tmp_path):
  from cmi_jax import run  # pylint: disable=g-import-not-at-top
  trainer = dro_trainer('base')
  example = batch()['image']
  host = jax.device_get(trainer.init(jax.random.PRNGKey(0), example, 1.0))
  evals = {'val': synthetic.synthetic_dataset(0.8, batch_size=16,
                                              steps_per_epoch=2, seed=7)}

  def fit(workdir, epochs):
    return run.fit(trainer, jax.device_put(host), DATA, evals, str(workdir),
                   run.FitConfig(num_epochs=epochs, progress=False,
                                 tensorboard=False))
  whole = fit(tmp_path / 'whole', 3)
  fit(tmp_path / 'split', 1)
  resumed = fit(tmp_path / 'split', 3)
  tiny.assert_trees_close(resumed['state'], whole['state'])
  assert not np.allclose(whole['state'].group_dro['q'], 0.25)


def test_group_balanced_epochs_are_exactly_balanced():
  rng = np.random.default_rng(0)
  labels = np.concatenate([np.repeat([[0, 0]], 50, 0), np.repeat([[0, 1]], 7, 0),
                           np.repeat([[1, 0]], 9, 0), np.repeat([[1, 1]], 40, 0),
                           np.array([[-1, 1], [1, -1]])]).astype(np.int32)
  images = rng.integers(0, 255, (len(labels), 2, 2, 1)).astype(np.uint8)
  data = base.group_balanced(base.ArrayDataset(jnp.asarray(images),
                                               jnp.asarray(labels), 4),
                             NUM_CLASSES)
  assert data.steps_per_epoch == 4 * 7 // 4
  seen = []
  for seed in range(3):
    plan = data.epoch_plan(jax.random.PRNGKey(seed))
    rows = np.asarray(plan)
    assert len(set(rows.tolist())) == len(rows) == 28  # without replacement
    group = labels[rows, 0] * 2 + labels[rows, 1]
    np.testing.assert_array_equal(np.bincount(group, minlength=4), [7] * 4)
    assert (labels[rows] >= 0).all()  # rows in no group are never drawn
    batches = [jax.device_get(data.batch(plan, i))['labels']
               for i in range(data.steps_per_epoch)]
    np.testing.assert_array_equal(np.concatenate(batches), labels[rows])
    seen.append(tuple(rows))
  assert len(set(seen)) == 3  # a fresh draw every epoch
  with pytest.raises(ValueError, match='group 01 has no example'):
    base.group_balanced(base.ArrayDataset(
        jnp.asarray(images[:50]), jnp.asarray(labels[:50]), 4), NUM_CLASSES)


def test_a_sweep_varies_group_dro_step_size_like_separate_runs():
  from cmi_jax import vmapped  # pylint: disable=g-import-not-at-top
  trainer = dro_trainer('base')
  example = batch()['image']
  etas = [0.1, 0.5, 2.0]
  keys = vmapped.keys_from_seeds([0, 0, 0])
  states = vmapped.init_sweep(trainer, keys, example,
                              {'dro_step_size': etas})
  data = vmapped.stack_datasets([DATA] * 3)
  states, _ = vmapped.sweep_train_epoch(trainer)(states, data)
  for i, eta in enumerate(etas):
    alone = dro_trainer('base', eta)
    state = alone.init(jax.random.PRNGKey(0), example, 1.0)
    state, _ = alone.jit_train_epoch(state, DATA)
    np.testing.assert_allclose(vmapped.unstack(states)[i].group_dro['q'],
                               state.group_dro['q'], rtol=1e-5, atol=1e-6)
  q = np.asarray(states.group_dro['q'])
  assert np.abs(q - 0.25).max(1).tolist() == sorted(
      np.abs(q - 0.25).max(1).tolist())  # larger eta, larger departure
  with pytest.raises(ValueError,
                     match=r"\['dro_step_size'\].*dro_\* with GroupDRO"):
    vmapped.init_sweep(tiny.make_trainer('base', train.OptimConfig()), keys,
                       example, {'dro_step_size': etas})
