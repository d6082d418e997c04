"""cmi-jax: robust disentanglement under correlation shift, in JAX.

The drop-in losses live at the top level::

  import cmi_jax
  encoder_loss, adversary_loss = cmi_jax.cmi_losses(
      adversary, key, z, labels, subspaces=(5, 5), num_classes=(2, 2))

Modules: :mod:`cmi_jax.shuffle` (permutations), :mod:`cmi_jax.losses`,
:mod:`cmi_jax.models` (Flax modules), :mod:`cmi_jax.train` (the engine),
:mod:`cmi_jax.data`, :mod:`cmi_jax.metrics`.
"""

from cmi_jax.losses import cmi_losses
from cmi_jax.losses import cmi_mmd_loss
from cmi_jax.losses import masked_cross_entropy
from cmi_jax.losses import mi_losses
from cmi_jax.losses import mi_mmd_loss
from cmi_jax.models import Adversary
from cmi_jax.models import AttributeHeads
from cmi_jax.models import ConvEncoder
from cmi_jax.models import MLPEncoder
from cmi_jax.models import UnconditionalAdversary
from cmi_jax.shuffle import conditional_shuffle
from cmi_jax.shuffle import group_permutation
from cmi_jax.shuffle import marginal_shuffle

__version__ = '0.1.0'

__all__ = [
    'Adversary',
    'AttributeHeads',
    'ConvEncoder',
    'MLPEncoder',
    'UnconditionalAdversary',
    'cmi_losses',
    'cmi_mmd_loss',
    'conditional_shuffle',
    'group_permutation',
    'marginal_shuffle',
    'masked_cross_entropy',
    'mi_losses',
    'mi_mmd_loss',
]
