"""The identical-channels fold of the encoders' first layer; PacGAN packs.

The fold must be the *same model* as the plain encoder on gray images made
3-channel: same parameters from the same key, same outputs, same gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmi_jax import models
from benchmarks import numpy_reference

pytestmark = pytest.mark.usefixtures('fast_compiles')

ENCODERS = {
    'mlp': lambda fold: models.MLPEncoder(10, (50, 50),
                                          identical_channels=fold),
    'conv': lambda fold: models.ConvEncoder(10, (8, 16), (20,),
                                            identical_channels=fold),
}


def _gray_batch():
  """A real multi-digit batch (3 identical channels), float32 [6, 32, 64, 3]."""
  rng = np.random.default_rng(0)
  digits = rng.integers(0, 256, (6, 2, 28, 28), dtype=np.uint8)
  fields = rng.random((6, 2, 4, 4), dtype=np.float32)
  return jnp.asarray(numpy_reference.compose(digits, fields, 0.4))


def _max_rel_diff(a, b):
  return max(jax.tree.leaves(jax.tree.map(
      lambda u, v: float(jnp.abs(u - v).max() / (jnp.abs(u).max() + 1e-12)),
      a, b)))


@pytest.mark.parametrize('name', sorted(ENCODERS))
def test_folded_encoder_is_the_same_model_on_gray_images(name):
  plain, folded = ENCODERS[name](False), ENCODERS[name](True)
  x = _gray_batch()
  key = jax.random.PRNGKey(3)
  params = plain.init(key, x)
  folded_params = folded.init(key, x)
  # Same tree, same shapes, same values: checkpoints move between the two.
  assert jax.tree.structure(params) == jax.tree.structure(folded_params)
  assert _max_rel_diff(params, folded_params) == 0.0
  np.testing.assert_allclose(folded.apply(params, x), plain.apply(params, x),
                             rtol=1e-5, atol=1e-5)

  def loss(model):
    return lambda p: jnp.sum(jnp.sin(model.apply(p, x)))

  grads = jax.grad(loss(plain))(params)
  folded_grads = jax.grad(loss(folded))(params)
  assert _max_rel_diff(grads, folded_grads) < 1e-5


@pytest.mark.parametrize('name', sorted(ENCODERS))
def test_folded_encoder_reads_only_the_first_channel(name):
  # On colour inputs the fold ignores channels 1-2 (CelebA refuses it).
  plain, folded = ENCODERS[name](False), ENCODERS[name](True)
  x = _gray_batch()
  colour = x.at[..., 1:].set(jax.random.uniform(jax.random.PRNGKey(1),
                                                x[..., 1:].shape))
  params = plain.init(jax.random.PRNGKey(0), x)
  np.testing.assert_allclose(folded.apply(params, colour),
                             folded.apply(params, x), rtol=1e-6, atol=1e-6)
  assert not np.allclose(plain.apply(params, colour), plain.apply(params, x),
                         atol=1e-3)


def test_folded_mlp_needs_a_channel_axis():
  with pytest.raises(ValueError, match='channel axis last'):
    models.MLPEncoder(identical_channels=True).init(
        jax.random.PRNGKey(0), jnp.zeros((2, 16)))


def test_stable_class_order_matches_a_stable_argsort():
  classes = jax.random.randint(jax.random.PRNGKey(2), (500,), 0, 4)
  order, position = models.stable_class_order(classes, 4)
  expected = np.argsort(np.asarray(classes), kind='stable')
  np.testing.assert_array_equal(order, expected)
  np.testing.assert_array_equal(np.asarray(position)[expected],
                                np.arange(500))


def _pac_inputs(key, batch, latent_dim, labels):
  z = jax.random.normal(key, (batch, latent_dim))
  return jnp.concatenate([z, jax.nn.one_hot(labels, 2)], -1)


def test_pac_adversary_scores_class_pure_packs():
  batch, pack = 300, 50
  labels = jax.random.bernoulli(jax.random.PRNGKey(3), 0.3, (batch,)).astype(
      jnp.int32)
  inputs = _pac_inputs(jax.random.PRNGKey(4), batch, 2, labels)
  adversary = models.PacAdversary(num_attributes=2, latent_dim=2,
                                  pack_size=pack)
  params = adversary.init(jax.random.PRNGKey(5), [inputs, inputs],
                          method=adversary.init_all)
  logits = adversary.apply(params, 1, inputs)
  assert logits.shape == (batch,)
  # The same logits by hand: stable sort by class, pack, score, unsort.
  order = np.argsort(np.asarray(labels), kind='stable')
  packs = np.asarray(inputs)[order].reshape(batch // pack, -1)
  pack_logits = adversary.apply(params, jnp.asarray(packs),
                                method=lambda m, p: m.nets[1](p)[:, 0])
  expected = np.empty(batch, np.float32)
  expected[order] = np.repeat(np.asarray(pack_logits), pack)
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
  # Every pack but the one across the class boundary is class-pure.
  pack_classes = np.asarray(labels)[order].reshape(-1, pack)
  mixed = np.sum(pack_classes.min(1) != pack_classes.max(1))
  assert mixed <= 1
  grad = jax.grad(lambda x: adversary.apply(params, 1, x).sum())(inputs)
  assert np.all(np.any(np.asarray(grad[:, :2]) != 0, axis=1))


def test_pac_adversaries_reject_batches_that_do_not_pack():
  inputs = _pac_inputs(jax.random.PRNGKey(6), 120, 2, jnp.zeros(120, jnp.int32))
  adversary = models.PacAdversary(2, 2, pack_size=50)
  with pytest.raises(ValueError, match='packs of 50'):
    adversary.init(jax.random.PRNGKey(0), [inputs, inputs],
                   method=adversary.init_all)
  with pytest.raises(ValueError, match='packs of 50'):
    models.PacUnconditionalAdversary(50).init(jax.random.PRNGKey(0),
                                              inputs[:, :2])


def test_unconditional_pac_adversary_packs_consecutive_rows():
  z = jax.random.normal(jax.random.PRNGKey(7), (100, 2))
  adversary = models.PacUnconditionalAdversary(pack_size=50)
  params = adversary.init(jax.random.PRNGKey(8), z)
  logits = np.asarray(adversary.apply(params, z))
  assert logits.shape == (100,)
  assert np.all(logits[:50] == logits[0]) and np.all(logits[50:] == logits[50])
  assert logits[0] != logits[50]
