"""The identical-channels fold of the encoders' first layer.

It must be the *same model* as the plain encoder on gray images made
3-channel: same parameters from the same key, same outputs, same gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmi_jax import models
import numpy_reference

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
