"""The adversarial and MMD losses: values, masking, gradients, statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import cmi_jax
from cmi_jax import losses, models

pytestmark = pytest.mark.usefixtures('fast_compiles')

LOG2 = np.log(2.0)


def softplus(x):
  return np.logaddexp(0.0, x)


def bce(logit, target):
  return target * softplus(-logit) + (1 - target) * softplus(logit)


def linear_adversary(weights):
  """adversary(k, inputs) = inputs @ weights[k]: easy to evaluate by hand."""
  return lambda k, inputs: inputs @ weights[k]


def small_batch():
  z = jnp.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-0.5, 1.0, 1.0],
                 [2.0, 0.5, 0.0], [0.0, -2.0, 0.5]], jnp.float32)
  labels = jnp.array([[0, 1], [1, 1], [0, -1], [1, 0], [-1, 0]], jnp.int32)
  weights = [jnp.array([1.0, -0.5, 0.25, 0.3, -0.2]),
             jnp.array([-0.4, 0.6, 0.1, 0.5, -0.1])]
  return z, labels, (1, 2), (2, 2), weights


def expected_cmi_losses(key, z, labels, subspaces, num_classes, weights):
  """The documented formula, evaluated row by row in NumPy."""
  fakes = np.asarray(cmi_jax.conditional_shuffle(key, z, labels, subspaces,
                                                 num_classes))
  z, labels = np.asarray(z), np.asarray(labels)
  enc = adv = 0.0
  for k, classes in enumerate(num_classes):
    w = np.asarray(weights[k])
    for c in range(classes):
      rows = np.flatnonzero(labels[:, k] == c)
      if not len(rows):
        continue
      onehot = np.eye(classes)[c]
      real = np.array([np.concatenate([z[i], onehot]) @ w for i in rows])
      fake = np.array([np.concatenate([fakes[k][i], onehot]) @ w
                       for i in rows])
      # The reference adds the real and the fake mean of every group.
      adv += np.mean(bce(real, 1)) + np.mean(bce(fake, 0))
      enc += np.mean(bce(fake, 1)) + np.mean(bce(real, 0))
  return enc, adv


def test_cmi_losses_match_hand_computation():
  z, labels, subspaces, num_classes, weights = small_batch()
  key = jax.random.key(7)
  enc, adv = cmi_jax.cmi_losses(linear_adversary(weights), key, z, labels,
                                subspaces, num_classes)
  want_enc, want_adv = expected_cmi_losses(key, z, labels, subspaces,
                                           num_classes, weights)
  np.testing.assert_allclose(enc, want_enc, rtol=1e-5)
  np.testing.assert_allclose(adv, want_adv, rtol=1e-5)
  jitted = jax.jit(cmi_jax.cmi_losses, static_argnums=(0, 4, 5))
  np.testing.assert_allclose(
      jitted(linear_adversary(weights), key, z, labels, subspaces,
             num_classes), (enc, adv), rtol=1e-6)


def test_chance_adversary_scores_2log2_per_present_group():
  z, labels, subspaces, num_classes, _ = small_batch()
  zero = lambda k, x: jnp.zeros(x.shape[0])
  enc, adv = cmi_jax.cmi_losses(zero, jax.random.key(0), z, labels,
                                subspaces, num_classes)
  # Attribute 0: classes 0 and 1 present; attribute 1: classes 0 and 1.
  np.testing.assert_allclose([enc, adv], [8 * LOG2] * 2, rtol=1e-6)
  one_class = labels.at[:, 1].set(jnp.where(labels[:, 1] >= 0, 1, -1))
  enc, _ = cmi_jax.cmi_losses(zero, jax.random.key(0), z, one_class,
                              subspaces, num_classes)
  np.testing.assert_allclose(enc, 6 * LOG2, rtol=1e-6)


def test_mi_losses_match_hand_computation():
  z, _, subspaces, _, weights = small_batch()
  key = jax.random.key(3)
  w = weights[0][:3]
  enc, adv = cmi_jax.mi_losses(lambda x: x @ w, key, z, subspaces)
  fake = np.asarray(cmi_jax.marginal_shuffle(key, z, subspaces))
  real_logits, fake_logits = np.asarray(z) @ np.asarray(w), fake @ np.asarray(w)
  np.testing.assert_allclose(
      adv, np.mean(bce(real_logits, 1)) + np.mean(bce(fake_logits, 0)),
      rtol=1e-5)
  np.testing.assert_allclose(
      enc, np.mean(bce(fake_logits, 1)) + np.mean(bce(real_logits, 0)),
      rtol=1e-5)
  chance = cmi_jax.mi_losses(lambda x: jnp.zeros(x.shape[0]), key, z,
                             subspaces)
  np.testing.assert_allclose(chance, [2 * LOG2] * 2, rtol=1e-6)


def test_summed_formula_by_hand_with_a_missing_label_and_an_absent_class():
  # Attribute 0: rows 0, 1, 3 in class 0, row 2 missing, class 1 absent.
  # Attribute 1: rows 0, 2, 3 in class 1, row 1 alone in class 0.
  z = jnp.array([[1.0, -1.0], [0.5, 2.0], [-2.0, 0.0], [0.0, 1.0]])
  labels = jnp.array([[0, 1], [0, 0], [-1, 1], [0, 1]], jnp.int32)
  # Within-group permutations (fake row i takes subspace k from row p[k, i]).
  perms = jnp.array([[1, 3, 2, 0], [2, 1, 3, 0]], jnp.int32)
  w = [np.array([1.0, 0.5, 0.2, -0.3]), np.array([-0.5, 1.0, 0.4, 0.1])]
  adversary = lambda k, x: x @ jnp.asarray(w[k], x.dtype)
  enc, adv = cmi_jax.cmi_losses(adversary, None, z, labels, (1, 1), (2, 2),
                                permutations=perms)
  zn = np.asarray(z)
  fake = [np.stack([zn[[1, 3, 2, 0], 0], zn[:, 1]], 1),
          np.stack([zn[:, 0], zn[[2, 1, 3, 0], 1]], 1)]
  want_enc = want_adv = 0.0
  groups = {0: [[0, 1, 3]], 1: [[1], [0, 2, 3]]}  # absent class 1 of attr 0
  for k, rows_per_class in groups.items():
    for rows in rows_per_class:
      c = int(labels[rows[0], k])
      onehot = np.eye(2)[c]
      r = np.array([np.concatenate([zn[i], onehot]) @ w[k] for i in rows])
      f = np.array([np.concatenate([fake[k][i], onehot]) @ w[k]
                    for i in rows])
      want_enc += np.mean(softplus(-f)) + np.mean(softplus(r))
      want_adv += np.mean(softplus(-r)) + np.mean(softplus(f))
  np.testing.assert_allclose([enc, adv], [want_enc, want_adv], rtol=1e-5)
  # Three present groups, each at least 2 log 2 away from a perfect score:
  # the value is on the reference's (summed) scale, not half of it.
  zero = lambda k, x: jnp.zeros(x.shape[0])
  np.testing.assert_allclose(
      cmi_jax.cmi_losses(zero, None, z, labels, (1, 1), (2, 2),
                         permutations=perms), [6 * LOG2] * 2, rtol=1e-6)


def test_encoder_gradient_is_the_paper_scale():
  # One row alone in its group: d/dz against the BCE's derivative by hand.
  z = jnp.array([[0.5, -1.0]], jnp.float32)
  labels = jnp.array([[0, 1]], jnp.int32)
  w = jnp.array([1.0, 2.0, 0.0, 0.0])
  adversary = lambda k, x: x @ w
  perms = jnp.zeros((2, 1), jnp.int32)
  grad = jax.grad(lambda z: cmi_jax.cmi_losses(
      adversary, None, z, labels, (1, 1), (2, 2), permutations=perms)[0])(z)
  # Real and fake are the same row: logit l = z @ w[:2] = -1.5; per
  # attribute d/dl [softplus(-l) + softplus(l)] = 2 sigmoid(l) - 1, and two
  # attributes each contribute it.
  l = -1.5
  dl = 2 * (2 / (1 + np.exp(-l)) - 1)
  np.testing.assert_allclose(grad, dl * np.array([[1.0, 2.0]]), rtol=1e-5)


def test_gradient_routing():
  z, labels, subspaces, num_classes, weights = small_batch()
  key = jax.random.key(1)

  def loss(weights, z, which):
    return cmi_jax.cmi_losses(linear_adversary(weights), key, z, labels,
                              subspaces, num_classes)[which]

  # The adversary's loss never reaches z; the encoder's does.
  assert float(jnp.abs(jax.grad(loss, 1)(weights, z, 1)).max()) == 0.0
  assert float(jnp.abs(jax.grad(loss, 1)(weights, z, 0)).max()) > 0.0
  assert all(float(jnp.abs(g).max()) > 0
             for g in jax.grad(loss, 0)(weights, z, 1))


@pytest.mark.parametrize('missing', ['all', 'one_attribute', 'one_class'])
def test_missing_labels_give_finite_values_and_gradients(missing):
  z, labels, subspaces, num_classes, weights = small_batch()
  if missing == 'all':
    labels = -jnp.ones_like(labels)
  elif missing == 'one_attribute':
    labels = labels.at[:, 0].set(-1)
  else:
    labels = labels.at[:, 1].set(jnp.where(labels[:, 1] == 0, -1,
                                           labels[:, 1]))
  fn = lambda z, w: sum(cmi_jax.cmi_losses(
      linear_adversary(w), jax.random.key(0), z, labels, subspaces,
      num_classes)) + cmi_jax.cmi_mmd_loss(jax.random.key(0), z, labels,
                                           subspaces, num_classes)
  value, grads = jax.value_and_grad(fn, (0, 1))(z, weights)
  assert np.isfinite(value)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  if missing == 'all':
    assert float(value) == 0.0


def test_check_grads_of_the_encoder_terms():
  z, labels, subspaces, num_classes, weights = small_batch()
  z = z.astype(jnp.float64) if jax.config.jax_enable_x64 else z
  key = jax.random.key(2)
  check_grads(lambda z: cmi_jax.cmi_losses(
      linear_adversary(weights), key, z, labels, subspaces, num_classes)[0],
              (z,), order=1, modes=('rev',), eps=1e-2, atol=2e-2, rtol=2e-2)
  check_grads(lambda z: cmi_jax.cmi_mmd_loss(
      key, z, labels, subspaces, num_classes, (1.0, 2.0)),
              (z,), order=1, modes=('rev',), eps=1e-2, atol=2e-2, rtol=2e-2)


def test_mmd_is_zero_for_identical_samples_and_positive_otherwise():
  x = jax.random.normal(jax.random.key(0), (32, 3))
  w = jnp.full((32,), 1 / 32)
  assert abs(float(losses.weighted_mmd2(x, x, w, (1.0,)))) < 1e-5
  assert float(losses.weighted_mmd2(x, x + 2.0, w, (1.0,))) > 0.1


def test_mmd_losses_see_dependence():
  key = jax.random.key(0)
  s = jax.random.normal(key, (256, 1))
  dependent = jnp.concatenate([s, s], 1)
  independent = jax.random.normal(jax.random.key(1), (256, 2))
  assert (cmi_jax.mi_mmd_loss(key, dependent, (1, 1)) >
          5 * cmi_jax.mi_mmd_loss(key, independent, (1, 1)))


def conditionally_independent_batch(key, size):
  """s ~ Bern(1/2); z1, z2 = shift(s) + independent noise, so z1 ⟂ z2 | s."""
  k_s, k_n = jax.random.split(key)
  s = jax.random.bernoulli(k_s, 0.5, (size,)).astype(jnp.int32)
  mean = (2.0 * s - 1.0)[:, None] * 1.5
  z = mean + 0.5 * jax.random.normal(k_n, (size, 2))
  return z, jnp.stack([s, s], 1)


def train_adversary(objective, steps=400, size=256):
  if objective == 'cmi':
    module = models.Adversary(2, (32, 32))
    params = module.init(jax.random.key(0), [jnp.zeros((1, 4))] * 2,
                         method=module.init_all)
  else:
    module = models.UnconditionalAdversary((32, 32))
    params = module.init(jax.random.key(0), jnp.zeros((1, 2)))
  tx = optax.adam(3e-3)

  def loss(params, key):
    k_data, k_shuffle = jax.random.split(key)
    z, labels = conditionally_independent_batch(k_data, size)
    if objective == 'cmi':
      return cmi_jax.cmi_losses(
          lambda k, x: module.apply(params, k, x), k_shuffle, z, labels,
          (1, 1), (2, 2))[1]
    return cmi_jax.mi_losses(lambda x: module.apply(params, x), k_shuffle,
                             z, (1, 1))[1]

  def step(carry, key):
    params, opt = carry
    grads = jax.grad(loss)(params, key)
    updates, opt = tx.update(grads, opt)
    return (optax.apply_updates(params, updates), opt), None

  keys = jax.random.split(jax.random.key(1), steps)
  (params, _), _ = jax.jit(lambda c, k: jax.lax.scan(step, c, k))(
      (params, tx.init(params)), keys)
  held_out = jax.vmap(lambda k: loss(params, k))(
      jax.random.split(jax.random.key(2), 8))
  return float(held_out.mean())


def test_conditional_adversary_cannot_beat_chance_but_unconditional_can():
  # Two attributes (both s), two groups each, 2 log 2 a group: chance 8 log 2.
  cmi_loss = train_adversary('cmi')
  assert cmi_loss > 8 * LOG2 * 0.97, cmi_loss
  mi_loss = train_adversary('mi')
  assert mi_loss < 2 * LOG2 * 0.85, mi_loss


def test_bad_inputs_name_the_argument():
  z, labels, subspaces, num_classes, weights = small_batch()
  adv = linear_adversary(weights)
  with pytest.raises(ValueError,
                     match=r'count per subspace \(1, 2\); got \(2,\)'):
    cmi_jax.cmi_losses(adv, jax.random.key(0), z, labels, subspaces, (2,))
  with pytest.raises(ValueError, match='subspaces'):
    cmi_jax.cmi_losses(adv, jax.random.key(0), z, labels, (1, 1),
                       num_classes)
  with pytest.raises(ValueError, match='labels must be integer'):
    cmi_jax.cmi_losses(adv, jax.random.key(0), z, labels[:3], subspaces,
                       num_classes)
  with pytest.raises(ValueError, match=r'logits \[B\] = \[5\]'):
    cmi_jax.mi_losses(lambda x: x[:, :1], jax.random.key(0), z, subspaces)
  for bad in (2, -2):
    with pytest.raises(ValueError, match=r'labels\[:, 1\] holds .* outside'):
      cmi_jax.cmi_losses(adv, jax.random.key(0), z, labels.at[0, 1].set(bad),
                         subspaces, num_classes)
    with pytest.raises(ValueError, match='outside'):
      cmi_jax.cmi_mmd_loss(jax.random.key(0), z, labels.at[0, 1].set(bad),
                           subspaces, num_classes)
  # Traced labels cannot be checked: the documented behaviour is that the
  # row joins no group, so the adversarial losses stay finite.
  traced = jax.jit(lambda l: cmi_jax.cmi_losses(
      adv, jax.random.key(0), z, l, subspaces, num_classes))(
          labels.at[0, 1].set(5))
  assert all(np.isfinite(v) for v in traced)


def test_modules_shapes():
  x = jnp.zeros((4, 32, 64, 3))
  z = models.ConvEncoder(10).init_with_output(jax.random.key(0), x)[0]
  assert z.shape == (4, 10)
  z = models.MLPEncoder(10).init_with_output(jax.random.key(0), x)[0]
  assert z.shape == (4, 10)
  heads, _ = models.AttributeHeads((5, 5), (2, 3)).init_with_output(
      jax.random.key(0), z)
  assert [h.shape for h in heads] == [(4, 2), (4, 3)]
  with pytest.raises(ValueError, match=r'needs z \[B, 6\].*\(4, 10\)'):
    models.AttributeHeads((3, 3), (2, 2)).init(jax.random.key(0), z)
  with pytest.raises(ValueError, match='ConvEncoder expects images'):
    models.ConvEncoder(10).init(jax.random.key(0), jnp.zeros((4, 7)))


def test_heads_read_only_their_subspace():
  z = jax.random.normal(jax.random.key(0), (4, 6))
  module = models.AttributeHeads((2, 4), (2, 2))
  params = module.init(jax.random.key(1), z)
  jac = jax.jacobian(lambda z: module.apply(params, z)[0])(z)
  assert float(jnp.abs(jac[..., 2:]).max()) == 0.0
  assert float(jnp.abs(jac[..., :2]).max()) > 0.0


def test_shared_permutations_give_the_keys_losses():
  z, labels, subspaces, num_classes, weights = small_batch()
  key = jax.random.key(5)
  adversary = lambda k, x: x @ jnp.concatenate(
      [weights[k], jnp.zeros(x.shape[1] - weights[k].shape[0])])
  perms = cmi_jax.shuffle.conditional_permutations(key, labels, num_classes)
  np.testing.assert_array_equal(
      cmi_jax.cmi_losses(adversary, key, z, labels, subspaces, num_classes),
      cmi_jax.cmi_losses(adversary, None, z, labels, subspaces, num_classes,
                         permutations=perms))
  marginal = cmi_jax.shuffle.marginal_permutations(key, z.shape[0], 2)
  mi_adversary = lambda x: x.sum(-1)
  np.testing.assert_array_equal(
      cmi_jax.mi_losses(mi_adversary, key, z, subspaces),
      cmi_jax.mi_losses(mi_adversary, None, z, subspaces,
                        permutations=marginal))
  with pytest.raises(ValueError, match=r'permutations must be integer \[2, '):
    cmi_jax.cmi_losses(adversary, None, z, labels, subspaces, num_classes,
                       permutations=perms[:1])


def numpy_biased_mmd2(x, y, bandwidths):
  """The biased estimator on two equal-size samples, from its definition."""
  def k(a, b):
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return sum(np.exp(-d2 / (2 * s**2)) for s in bandwidths)
  return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


@pytest.mark.parametrize('bandwidths', [(1.0,), losses.FULL_BANDWIDTHS])
def test_mmd_losses_minimise_the_root_per_group(bandwidths):
  z, labels, subspaces, num_classes, _ = small_batch()
  key = jax.random.key(4)
  fakes = np.asarray(cmi_jax.conditional_shuffle(key, z, labels, subspaces,
                                                 num_classes))
  zn, ln = np.asarray(z), np.asarray(labels)
  want = 0.0
  for k, classes in enumerate(num_classes):
    for c in range(classes):
      rows = np.flatnonzero(ln[:, k] == c)
      if len(rows):
        want += np.sqrt(max(numpy_biased_mmd2(zn[rows], fakes[k][rows],
                                              bandwidths), 0.0))
  got = cmi_jax.cmi_mmd_loss(key, z, labels, subspaces, num_classes,
                             bandwidths)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  fake = np.asarray(cmi_jax.marginal_shuffle(key, z, subspaces))
  np.testing.assert_allclose(
      cmi_jax.mi_mmd_loss(key, z, subspaces, bandwidths),
      np.sqrt(max(numpy_biased_mmd2(zn, fake, bandwidths), 0.0)),
      rtol=1e-4, atol=1e-6)


def test_mmd_root_has_a_finite_gradient_at_zero():
  # Identical rows: every fake equals the real batch, so MMD^2 = 0 (or a
  # rounding error below it) where the root's derivative is infinite.
  z = jnp.ones((6, 2))
  labels = jnp.array([[0, 1]] * 3 + [[1, 0]] * 3, jnp.int32)
  for fn in (lambda z: cmi_jax.cmi_mmd_loss(jax.random.key(0), z, labels,
                                            (1, 1), (2, 2)),
             lambda z: cmi_jax.mi_mmd_loss(jax.random.key(0), z, (1, 1))):
    value, grad = jax.value_and_grad(fn)(z)
    assert float(value) == pytest.approx(0.0, abs=1e-3)
    assert np.all(np.isfinite(grad))
  np.testing.assert_array_equal(
      losses.mmd_distance(jnp.array([-1e-7, 0.0, 4.0])), [0.0, 0.0, 2.0])


def test_continuous_attribute_fakes_match_the_conditional_not_the_marginal():
  # z_1 = s + e_1 and z_2 = s + e_2, independent given the real-valued s
  # (correlated 0.8 without it). Fakes permute within blocks of close s, so a
  # discriminator that sees [z, s] stays near chance (2 log 2 an attribute);
  # with one block over the whole batch the fakes break z_k's tie to s.
  module = models.Adversary(2, (32, 32))
  params = module.init(jax.random.key(0), [jnp.zeros((1, 3))] * 2,
                       method=module.init_all)
  tx = optax.adam(3e-3)

  def loss(params, key, block_size):
    k_s, k_e, k_shuffle = jax.random.split(key, 3)
    s = jax.random.normal(k_s, (256,))
    z = s[:, None] + 0.5 * jax.random.normal(k_e, (256, 2))
    labels = jnp.stack([s, s], 1).at[:8, 1].set(jnp.nan)  # some missing
    return cmi_jax.cmi_losses(lambda k, x: module.apply(params, k, x),
                              k_shuffle, z, labels, (1, 1), (0, 0),
                              block_size=block_size)[1]

  def trained_loss(block_size):
    def step(carry, key):
      params, opt = carry
      grads = jax.grad(loss)(params, key, block_size)
      updates, opt = tx.update(grads, opt)
      return (optax.apply_updates(params, updates), opt), None

    (trained, _), _ = jax.jit(lambda c, k: jax.lax.scan(step, c, k))(
        (params, tx.init(params)), jax.random.split(jax.random.key(1), 300))
    return float(jax.vmap(lambda k: loss(trained, k, block_size))(
        jax.random.split(jax.random.key(2), 8)).mean())

  assert trained_loss(None) > 4 * LOG2 * 0.95  # default blocks: sqrt(256)
  assert trained_loss(256) < 4 * LOG2 * 0.8
