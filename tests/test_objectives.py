"""The objective registry: a new objective is a class and a register call."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmi_jax import models, objectives, train
from cmi_jax.data import synthetic

pytestmark = pytest.mark.usefixtures('fast_compiles')


@dataclasses.dataclass(frozen=True)
class CrossCovariance(objectives.Objective):
  """docs/extending.md's example: squared cross-covariance of two subspaces."""
  name = 'cross_cov'

  def losses(self, adversary_params, key, z, labels, permutations):
    a = z[:, :self.subspaces[0]]
    b = z[:, self.subspaces[0]:sum(self.subspaces[:2])]
    cov = (a - a.mean(0)).T @ (b - b.mean(0)) / z.shape[0]
    return jnp.sum(cov ** 2), jnp.zeros((), z.dtype)


@pytest.fixture
def registry(monkeypatch):
  """A private copy of the registry, so tests' classes do not leak."""
  monkeypatch.setattr(objectives, '_REGISTRY', dict(objectives._REGISTRY))
  return objectives


def cross_covariance(trainer, state, batch):
  z = trainer.encoder.apply(state.encoder_params, batch['image'])
  return float(CrossCovariance((2, 2), (2, 2)).losses(
      None, None, z, None, None)[0])


def test_a_registered_objective_trains_by_name(registry):
  registry.register(CrossCovariance)
  assert 'cross_cov' in registry.names()
  # Strongly correlated attributes: base codes pick up the shared signal in
  # both subspaces; the penalty (lambda = 10) takes it out.
  data = synthetic.synthetic_dataset(0.9, batch_size=128, steps_per_epoch=20)
  batch = data.batch(data.epoch_plan(jax.random.PRNGKey(7)), 0)
  finals = {}
  for name, weight in (('base', 0.0), ('cross_cov', 10.0)):
    trainer = train.make_trainer(
        models.MLPEncoder(4, (16,)), name, (2, 2), (2, 2),
        train.OptimConfig(lr=1e-2, cls_lr=1e-2))
    state = trainer.init(jax.random.PRNGKey(0), batch['image'], weight)
    for _ in range(3):
      state, metrics = trainer.jit_train_epoch(state, data)
    assert np.all(np.isfinite(np.asarray(metrics['loss/disentangle'])))
    finals[name] = cross_covariance(trainer, state, batch)
  assert trainer.objective.adversary is None and state.adversary_params is None
  assert finals['cross_cov'] < 0.2 * finals['base'], finals


def test_an_objective_instance_needs_the_trainers_subspaces():
  with pytest.raises(ValueError, match='subspaces'):
    train.make_trainer(models.MLPEncoder(4, (8,)),
                       CrossCovariance((1, 3), (2, 2)), (2, 2), (2, 2))


def test_registry_errors_name_the_choices(registry):
  with pytest.raises(ValueError, match=r"'nope' is unknown.*'cmi'"):
    registry.make_objective('nope', (2, 2), (2, 2))

  @dataclasses.dataclass(frozen=True)
  class Clash(objectives.Objective):
    name = 'cmi'
  with pytest.raises(ValueError, match="'cmi' is already registered"):
    registry.register(Clash)


def test_create_takes_the_options_each_objective_needs():
  cmi = objectives.make_objective('cmi', (2, 2), (2, 3),
                                  adversary_hidden=(7,), mmd_bandwidths=(2.,))
  assert isinstance(cmi.adversary, models.Adversary)
  assert cmi.adversary.hidden == (7,)
  mmd = objectives.make_objective('mmd_cmi', (2, 2), (2, 3),
                                  adversary_hidden=(7,), mmd_bandwidths=(2.,))
  assert mmd.adversary is None and mmd.bandwidths == (2.0,)
  # Equal objectives compare equal, so equal trainers share compilations.
  assert cmi == objectives.make_objective('cmi', (2, 2), (2, 3),
                                          adversary_hidden=(7,))
