"""Synthetic correlated data made on the device (demos, tests, quickstart).

Each of K binary attributes ``s_k`` drives its own block of ``features``
input dimensions: ``x_k = (2 s_k - 1) * signal + noise * eps`` with
``eps ~ N(0, I)``. The attributes follow a joint table (the paper's
correlation matrix), so a model that reads attribute j's block to predict
``s_k`` is right on correlated data and wrong under correlation shift.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax.data import correlation
from cmi_jax.data.base import Batch


@flax.struct.dataclass
class SyntheticDataset:
  """Correlated Gaussian blobs ``[B, K * features]`` (see module doc).

  Attributes:
    table, noise, signal: float32 joint table ``(2,) * K`` and scales
      (leaves, so sweeps can vmap them).
    batch_size, steps_per_epoch, features: static sizes.
    seed: if not None, every epoch yields the same batches (evaluation).
  """
  table: jax.Array
  noise: jax.Array
  signal: jax.Array
  batch_size: int = flax.struct.field(pytree_node=False)
  steps_per_epoch: int = flax.struct.field(pytree_node=False)
  features: int = flax.struct.field(pytree_node=False, default=2)
  seed: int | None = flax.struct.field(pytree_node=False, default=None)

  def epoch_plan(self, key: jax.Array) -> jax.Array:
    """The epoch's key: ``key``, or a fixed one when ``seed`` is set."""
    return key if self.seed is None else jax.random.PRNGKey(self.seed)

  def batch(self, plan: jax.Array, step: jax.Array) -> Batch:
    """Batch ``step``: ``{'image': [B, K * features], 'labels': [B, K]}``."""
    k_labels, k_noise = jax.random.split(jax.random.fold_in(plan, step))
    labels = correlation.sample_combinations_jax(k_labels, self.table,
                                                 self.batch_size)
    sign = jnp.repeat(2.0 * labels - 1.0, self.features, axis=1)
    eps = jax.random.normal(k_noise, sign.shape)
    return {'image': sign * self.signal + self.noise * eps, 'labels': labels}


def synthetic_dataset(corr: float, num_attributes: int = 2,
                      batch_size: int = 100, steps_per_epoch: int = 10,
                      noise: float = 1.0, signal: float = 1.0,
                      features: int = 2, seed: int | None = None
                      ) -> SyntheticDataset:
  """A :class:`SyntheticDataset` with labels from ``joint_table(corr, K)``."""
  return SyntheticDataset(
      table=jnp.asarray(correlation.joint_table(corr, num_attributes),
                        jnp.float32),
      noise=jnp.asarray(noise, jnp.float32),
      signal=jnp.asarray(signal, jnp.float32),
      batch_size=batch_size, steps_per_epoch=steps_per_epoch,
      features=features, seed=seed)


def synthetic_splits(train_corr: float, num_attributes: int = 2,
                     batch_size: int = 100, steps_per_epoch: int = 10,
                     noise: float = 1.0, features: int = 2, seed: int = 0
                     ) -> tuple[SyntheticDataset, dict[str, SyntheticDataset]]:
  """``(train, eval)``: training data at ``train_corr``, fixed eval splits.

  ``eval`` holds ``val`` (train_corr), ``test_anti`` (-train_corr; 0 when
  K > 2) and ``test_uncorr`` (0).
  """
  anti = correlation.anti_correlation(train_corr, num_attributes)
  make = lambda corr, split_seed: synthetic_dataset(
      corr, num_attributes, batch_size, steps_per_epoch, noise,
      features=features, seed=split_seed)
  return make(train_corr, None), {'val': make(train_corr, seed + 1),
                                  'test_anti': make(anti, seed + 2),
                                  'test_uncorr': make(0.0, seed + 3)}


def materialize(dataset: SyntheticDataset) -> Batch:
  """All batches of a fixed dataset as NumPy arrays ``{image, labels}``."""
  plan = dataset.epoch_plan(jax.random.PRNGKey(0))
  batches = [dataset.batch(plan, i) for i in range(dataset.steps_per_epoch)]
  return {k: np.concatenate([np.asarray(b[k]) for b in batches])
          for k in batches[0]}
