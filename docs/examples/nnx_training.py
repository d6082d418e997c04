r"""The CMI loss inside a ``flax.nnx`` training loop.

``cmi_jax.cmi_losses`` takes any callable ``adversary(k, inputs) -> logits
[B]``, so it needs nothing from Linen: here the encoder, the heads and the
two discriminators are NNX modules, each player has its own
``nnx.Optimizer``, and all three are updated simultaneously from one batch
(every gradient taken at the pre-update parameters), as in the paper.

Data: correlated Gaussian blobs (``cmi_jax.data.synthetic``), two binary
attributes at training correlation 0.8.

  PYTHONPATH=. python docs/examples/nnx_training.py   # prints the accuracies
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import cmi_jax
from cmi_jax.data import synthetic

SUBSPACES, CLASSES = (2, 2), (2, 2)


class Encoder(nnx.Module):
  """x [B, F] -> z [B, 4]: a two-layer MLP."""

  def __init__(self, features: int, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(features, 32, rngs=rngs)
    self.out = nnx.Linear(32, sum(SUBSPACES), rngs=rngs)

  def __call__(self, x):
    return self.out(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))


class Heads(nnx.Module):
  """One linear head per attribute, reading only its own subspace."""

  def __init__(self, rngs: nnx.Rngs):
    self.heads = nnx.List([nnx.Linear(size, classes, rngs=rngs)
                           for size, classes in zip(SUBSPACES, CLASSES)])

  def __call__(self, z):
    z_parts = jnp.split(z, np.cumsum(SUBSPACES)[:-1], axis=-1)
    return [head(part) for head, part in zip(self.heads, z_parts)]


class Discriminators(nnx.Module):
  """``D_k([z, onehot(s_k)]) -> logit``, one MLP per attribute."""

  def __init__(self, rngs: nnx.Rngs):
    width = sum(SUBSPACES)
    self.nets = nnx.List([
        nnx.Sequential(nnx.Linear(width + c, 32, rngs=rngs), nnx.relu,
                       nnx.Linear(32, 1, rngs=rngs)) for c in CLASSES])

  def __call__(self, k: int, inputs):
    return self.nets[k](inputs)[:, 0]


def head_loss(heads, z, labels):
  logits = heads(z)
  return sum(cmi_jax.masked_cross_entropy(l, labels[:, k])
             for k, l in enumerate(logits)) / len(logits)


@nnx.jit
def train_step(encoder, heads, discriminators, optimizers, batch, key,
               weight):
  """One simultaneous update of the three players; returns their losses."""
  enc_opt, head_opt, disc_opt = optimizers
  x, labels = batch['image'], batch['labels']

  def encoder_objective(encoder):
    z = encoder(x)
    adversarial, _ = cmi_jax.cmi_losses(discriminators, key, z, labels,
                                        SUBSPACES, CLASSES)
    return head_loss(heads, z, labels) + weight * adversarial

  def disc_objective(discriminators):
    z = jax.lax.stop_gradient(encoder(x))
    return cmi_jax.cmi_losses(discriminators, key, z, labels, SUBSPACES,
                              CLASSES)[1]

  def heads_objective(heads):
    return head_loss(heads, jax.lax.stop_gradient(encoder(x)), labels)

  # Every gradient at the pre-update parameters, then all updates.
  enc_value, enc_grads = nnx.value_and_grad(encoder_objective)(encoder)
  disc_value, disc_grads = nnx.value_and_grad(disc_objective)(discriminators)
  head_value, head_grads = nnx.value_and_grad(heads_objective)(heads)
  enc_opt.update(encoder, enc_grads)
  disc_opt.update(discriminators, disc_grads)
  head_opt.update(heads, head_grads)
  return {'encoder': enc_value, 'adversary': disc_value, 'heads': head_value}


@nnx.jit
def accuracy(encoder, heads, batch):
  logits = heads(encoder(batch['image']))
  return jnp.mean(jnp.stack([
      jnp.argmax(l, -1) == batch['labels'][:, k]
      for k, l in enumerate(logits)]))


def main(steps: int = 300, weight: float = 1.0, seed: int = 0
         ) -> dict[str, float]:
  """Trains with CMI; returns the last adversary loss and test accuracies."""
  # seed=None: a fresh batch for every key.
  train = synthetic.synthetic_dataset(0.8, batch_size=128, steps_per_epoch=1)
  test = {c: synthetic.synthetic_dataset(c, batch_size=512,
                                         steps_per_epoch=1, seed=seed + 1)
          for c in (-0.8, 0.0)}
  rngs = nnx.Rngs(seed)
  example = train.batch(train.epoch_plan(jax.random.key(0)), 0)['image']
  encoder = Encoder(int(np.prod(example.shape[1:])), rngs)
  heads, discriminators = Heads(rngs), Discriminators(rngs)
  optimizers = (nnx.Optimizer(encoder, optax.adam(3e-3), wrt=nnx.Param),
                nnx.Optimizer(heads, optax.adam(1e-2), wrt=nnx.Param),
                nnx.Optimizer(discriminators, optax.adam(3e-3),
                              wrt=nnx.Param))
  key = jax.random.key(seed)
  losses = None
  for step in range(steps):
    key, data_key, shuffle_key = jax.random.split(key, 3)
    batch = train.batch(train.epoch_plan(data_key), 0)
    losses = train_step(encoder, heads, discriminators, optimizers, batch,
                        shuffle_key, weight)
  result = {'adversary_loss': float(losses['adversary'])}
  for corr, data in test.items():
    batch = data.batch(data.epoch_plan(jax.random.key(1)), 0)
    result[f'accuracy_at_{corr:g}'] = float(accuracy(encoder, heads, batch))
  return result


if __name__ == '__main__':
  print(main())
