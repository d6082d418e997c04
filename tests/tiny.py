"""The tests' tiny model (two binary attributes on 2 + 2 latent dimensions).

:func:`trainer` keeps one trainer per objective, so every test that uses it
shares its compiled programs. Also the helpers many test modules share: tree
comparisons, run files, a tiny multi-digit config. Import as ``import tiny``
(pytest puts ``tests/`` on the path).
"""

import functools
import json
import os

import jax
import numpy as np

from cmi_jax import models, train

SUBSPACES = NUM_CLASSES = (2, 2)
FEATURES = 4  # the input width of the synthetic data
OPTIM = train.OptimConfig(lr=1e-2, cls_lr=1e-2, d_lr=1e-2)


# CIRCE's held-out labels: the four groups, the agreeing ones 4 times as often.
HELDOUT_LABELS = np.array([[0, 0]] * 8 + [[1, 1]] * 8 + [[0, 1]] * 2
                          + [[1, 0]] * 2, np.int32)


def make_trainer(objective, optim=OPTIM, hidden=(8,), **options):
  """A fresh tiny trainer: MLP ``hidden``, adversaries ``hidden``."""
  options.setdefault('circe_heldout_labels', HELDOUT_LABELS)
  return train.make_trainer(
      models.MLPEncoder(latent_dim=sum(SUBSPACES), hidden=hidden), objective,
      SUBSPACES, NUM_CLASSES, optim, adversary_hidden=hidden, **options)


@functools.cache
def trainer(objective):
  """The shared tiny trainer of ``objective`` (lr 1e-2 for every player)."""
  return make_trainer(objective)


@functools.cache
def host_state(objective, disentangle_weight=0.5, shape=(16, FEATURES)):
  """NumPy copy of :func:`trainer`'s initial state (seed 0), inputs ``shape``.

  The jitted steps donate their input: each use takes a fresh ``device_put``.
  """
  return jax.device_get(trainer(objective).init(
      jax.random.PRNGKey(0), np.zeros(shape, np.float32),
      disentangle_weight=disentangle_weight))


def assert_trees_close(actual, expected, rtol=0.0, atol=None):
  """Same tree structure; every leaf within ``rtol``, ``atol`` (0: equal)."""
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  paths = jax.tree_util.tree_leaves_with_path(actual)
  for (path, a), e in zip(paths, jax.tree.leaves(expected)):
    np.testing.assert_allclose(
        np.asarray(a), np.asarray(e), rtol=rtol,
        atol=rtol if atol is None else atol,
        err_msg=jax.tree_util.keystr(path))


def multi_digit_config(**overrides):
  """The multi-digit experiment config of a 2-epoch run on embedded digits."""
  from experiments.configs import multi_digit  # pylint: disable=g-import-not-at-top
  config = multi_digit.get_config()
  config.update({'source': 'embedded', 'num_epochs': 2, 'epoch_size': 200,
                 'checkpoint_every': 1, 'progress': False,
                 'tensorboard': False, **overrides})
  return config


def read_json(*path):
  """The JSON file at ``os.path.join(*path)``."""
  with open(os.path.join(*path)) as f:
    return json.load(f)


def read_log(*workdir):
  """The records of ``<workdir>/log.jsonl``, read independently of logs.py."""
  with open(os.path.join(*workdir, 'log.jsonl')) as f:
    return [json.loads(line) for line in f]
