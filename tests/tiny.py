"""The tests' tiny model: two binary attributes on 2 + 2 latent dimensions.

Compiling dominates tests of models this small, so :func:`trainer` keeps one
trainer per objective and every test that uses it shares its compiled
programs (the ``tiny_trainer`` / ``tiny_state`` fixtures of conftest.py hand
them out). Import as ``import tiny`` (pytest puts ``tests/`` on the path).
"""

import functools

import jax
import numpy as np

from cmi_jax import models, train

SUBSPACES = NUM_CLASSES = (2, 2)
FEATURES = 4  # the input width of the synthetic data
OPTIM = train.OptimConfig(lr=1e-2, cls_lr=1e-2, d_lr=1e-2)


def make_trainer(objective, optim=OPTIM, hidden=(8,), **options):
  """A fresh tiny trainer: MLP ``hidden``, adversaries ``hidden``."""
  return train.make_trainer(
      models.MLPEncoder(latent_dim=sum(SUBSPACES), hidden=hidden), objective,
      SUBSPACES, NUM_CLASSES, optim, adversary_hidden=hidden, **options)


@functools.cache
def trainer(objective):
  """The shared tiny trainer of ``objective`` (lr 1e-2 for every player)."""
  return make_trainer(objective)


@functools.cache
def host_state(objective, disentangle_weight=0.5):
  """The initial state of :func:`trainer` as NumPy arrays (seed 0)."""
  return jax.device_get(trainer(objective).init(
      jax.random.PRNGKey(0), np.zeros((16, FEATURES), np.float32),
      disentangle_weight=disentangle_weight))
