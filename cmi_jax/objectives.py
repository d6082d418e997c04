"""Training objectives: the encoder's disentanglement term and its adversary.

An objective owns what differs between base training, adversarial MI / CMI
and their MMD variants; the engine (:mod:`cmi_jax.train`) calls only its
methods, so a new objective is one :class:`Objective` subclass passed to
:func:`register` (docs/extending.md). The encoder minimises ``mean CE +
lambda * encoder_term``; an adversary minimises ``adversary_loss`` on
``stop_gradient(z)``. Objectives are frozen dataclasses, so they can key
compilation caches.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import attributes
from cmi_jax import kernels
from cmi_jax import losses
from cmi_jax import models
from cmi_jax import shuffle
from cmi_jax import validate

Pair = tuple[jax.Array, jax.Array]


@dataclasses.dataclass(frozen=True)
class Objective:
  """Base training: the heads' cross-entropy only (no term, no adversary).

  Attributes:
    subspaces: K latent subspace sizes, summing to ``D``.
    num_classes: K class counts (0: a continuous attribute).
    block_size: rows per block of close values of a continuous attribute,
      for the conditional objectives (None:
      :func:`cmi_jax.shuffle.default_block_size` of the batch).
  """
  subspaces: tuple[int, ...]
  num_classes: tuple[int, ...]
  block_size: Optional[int] = dataclasses.field(default=None, kw_only=True)

  name: ClassVar[str] = 'base'

  @classmethod
  def create(cls, subspaces: Sequence[int], num_classes: Sequence[int],
             **options: Any) -> 'Objective':
    """Builds the objective, ignoring ``options`` it does not use.

    The engine passes ``adversary`` (a module, None for the default),
    ``adversary_hidden`` (the default's widths) and ``mmd_bandwidths``.
    """
    del options
    return cls(tuple(subspaces), tuple(num_classes))

  @property
  def adversary(self) -> Optional[nn.Module]:
    """The trained adversary module, or None."""
    return None

  def init_adversary(self, key: jax.Array, z: jax.Array) -> Any:
    """The state for codes shaped like ``z`` ``[B, D]`` (or None).

    The adversary's parameters, or fixed arrays that ``losses`` reads (the
    engine trains them only when :attr:`adversary` is a module).
    """
    del key, z
    return None

  def fake_permutations(self, key: jax.Array, labels: jax.Array
                        ) -> Optional[jax.Array]:
    """The step's fake row permutations, int32 ``[K, B]``, or None."""
    del key, labels
    return None

  def losses(self, adversary_params: Any, key: jax.Array, z: jax.Array,
             labels: jax.Array, permutations: Optional[jax.Array]) -> Pair:
    """``(encoder_term, adversary_loss)``, float scalars (zeros here)."""
    del adversary_params, key, labels, permutations
    zero = jnp.zeros((), z.dtype)
    return zero, zero

  def diagnostics(self, adversary_params: Any, key: jax.Array, z: jax.Array,
                  labels: jax.Array, permutations: Optional[jax.Array]
                  ) -> dict[str, jax.Array]:
    """Scalar metrics of the adversary on this batch (none here)."""
    del adversary_params, key, z, labels, permutations
    return {}


@dataclasses.dataclass(frozen=True)
class _Adversarial(Objective):
  """Shared by the objectives that train an adversary module."""
  adversary_module: Optional[nn.Module] = None

  @classmethod
  def create(cls, subspaces, num_classes, *, adversary=None,
             adversary_hidden=(50, 50), **options):
    del options
    if adversary is None:
      adversary = cls.default_adversary(tuple(subspaces), adversary_hidden)
    return cls(tuple(subspaces), tuple(num_classes), adversary)

  @classmethod
  def default_adversary(cls, subspaces: tuple[int, ...],
                        hidden: Sequence[int]) -> nn.Module:
    """The module ``create`` builds when no ``adversary`` is given."""
    raise NotImplementedError

  @property
  def adversary(self) -> nn.Module:
    return self.adversary_module

  def diagnostics(self, adversary_params, key, z, labels, permutations):
    real, fake = self.adversary_accuracy(adversary_params, key, z, labels,
                                         permutations)
    return {'adversary/acc_real': real, 'adversary/acc_fake': fake}

  def adversary_accuracy(self, adversary_params: Any, key: jax.Array,
                         z: jax.Array, labels: jax.Array,
                         permutations: Optional[jax.Array]) -> Pair:
    """The adversary's accuracy on (real, fake) rows, float scalars."""
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class AdversarialCMI(_Adversarial):
  """Adversarial CMI, an adversary per attribute (:func:`losses.cmi_losses`)."""
  name: ClassVar[str] = 'cmi'

  @classmethod
  def default_adversary(cls, subspaces, hidden):
    return models.Adversary(len(subspaces), tuple(hidden))

  def _apply(self, params: Any) -> losses.ConditionalAdversary:
    return lambda k, inputs: self.adversary_module.apply(params, k, inputs)

  def init_adversary(self, key, z):
    inputs = [jnp.concatenate([z, jnp.zeros(
        (z.shape[0], attributes.head_width(c)), z.dtype)], -1)
              for c in self.num_classes]
    return self.adversary_module.init(
        key, inputs, method=self.adversary_module.init_all)

  def fake_permutations(self, key, labels):
    return shuffle.conditional_permutations(key, labels, self.num_classes,
                                            self.block_size)

  def losses(self, adversary_params, key, z, labels, permutations):
    return losses.cmi_losses(self._apply(adversary_params), key, z, labels,
                             self.subspaces, self.num_classes,
                             permutations=permutations,
                             block_size=self.block_size)

  def adversary_accuracy(self, adversary_params, key, z, labels, permutations):
    return losses.cmi_adversary_accuracy(
        self._apply(adversary_params), key, z, labels, self.subspaces,
        self.num_classes, permutations=permutations,
        block_size=self.block_size)


@dataclasses.dataclass(frozen=True)
class AdversarialMI(_Adversarial):
  """Adversarial MI, one unconditional adversary (:func:`losses.mi_losses`)."""
  name: ClassVar[str] = 'mi'

  @classmethod
  def default_adversary(cls, subspaces, hidden):
    return models.UnconditionalAdversary(tuple(hidden))

  def _apply(self, params: Any) -> losses.Adversary:
    return functools.partial(self.adversary_module.apply, params)

  def init_adversary(self, key, z):
    return self.adversary_module.init(key, z)

  def fake_permutations(self, key, labels):
    return shuffle.marginal_permutations(key, labels.shape[0],
                                         len(self.subspaces))

  def losses(self, adversary_params, key, z, labels, permutations):
    del labels
    return losses.mi_losses(self._apply(adversary_params), key, z,
                            self.subspaces, permutations=permutations)

  def adversary_accuracy(self, adversary_params, key, z, labels, permutations):
    del labels
    return losses.mi_adversary_accuracy(
        self._apply(adversary_params), key, z, self.subspaces,
        permutations=permutations)


@dataclasses.dataclass(frozen=True)
class _TermOnly(Objective):
  """Shared by the objectives with a term and no adversary (loss 0)."""

  def term(self, state: Any, key: jax.Array, z: jax.Array,
           labels: jax.Array) -> jax.Array:
    """The encoder's term, a scalar; ``state`` is :meth:`init_adversary`'s."""
    raise NotImplementedError

  def losses(self, adversary_params, key, z, labels, permutations):
    del permutations
    return (self.term(adversary_params, key, z, labels),
            jnp.zeros((), z.dtype))


@dataclasses.dataclass(frozen=True)
class _MMD(_TermOnly):
  """Shared by the MMD objectives (no adversary; RBF bandwidths)."""
  bandwidths: tuple[float, ...] = (1.0,)

  @classmethod
  def create(cls, subspaces, num_classes, *, mmd_bandwidths=(1.0,), **options):
    del options
    return cls(tuple(subspaces), tuple(num_classes), tuple(mmd_bandwidths))


@dataclasses.dataclass(frozen=True)
class MMDCMI(_MMD):
  """Conditional MMD, no adversary (:func:`cmi_jax.losses.cmi_mmd_loss`)."""
  name: ClassVar[str] = 'mmd_cmi'

  def term(self, state, key, z, labels):
    del state
    return losses.cmi_mmd_loss(key, z, labels, self.subspaces,
                               self.num_classes, self.bandwidths,
                               self.block_size)


@dataclasses.dataclass(frozen=True)
class MMDMI(_MMD):
  """Unconditional MMD, no adversary (:func:`cmi_jax.losses.mi_mmd_loss`)."""
  name: ClassVar[str] = 'mmd_mi'

  def term(self, state, key, z, labels):
    del state, labels
    return losses.mi_mmd_loss(key, z, self.subspaces, self.bandwidths)


@dataclasses.dataclass(frozen=True)
class _KernelMeasure(_TermOnly):
  """Shared by the kernel measures of conditional independence (no adversary).

  Attributes:
    sigma2: bandwidth of the Gaussian kernel on the codes, in squared units
      of ``z`` (None: the batch's median heuristic, per subspace).
    label_sigma2: bandwidth of the Gaussian kernel on one-hot labels.
    ridge: ridge of the kernel regressions on the labels.
  """
  sigma2: Optional[float] = None
  label_sigma2: float = 1.0
  ridge: float = 0.1

  @classmethod
  def create(cls, subspaces, num_classes, *, kernel_sigma2=None,
             kernel_label_sigma2=1.0, kernel_ridge=0.1, **options):
    del options
    return cls(tuple(subspaces), tuple(num_classes), kernel_sigma2,
               float(kernel_label_sigma2), float(kernel_ridge))

  @property
  def kernel(self) -> kernels.Kernel:
    """The kernel on codes."""
    return functools.partial(kernels.gaussian, sigma2=self.sigma2)

  @property
  def label_kernel(self) -> kernels.Kernel:
    """The kernel on one-hot labels."""
    return functools.partial(kernels.gaussian, sigma2=self.label_sigma2)


@dataclasses.dataclass(frozen=True)
class HSICCMI(_KernelMeasure):
  """Class-conditional HSIC (:func:`cmi_jax.losses.hsic_cmi_loss`)."""
  name: ClassVar[str] = 'hsic_cmi'

  def term(self, state, key, z, labels):
    del state, key
    return losses.hsic_cmi_loss(z, labels, self.subspaces, self.num_classes,
                                self.kernel, self.block_size)


@dataclasses.dataclass(frozen=True)
class HSCIC(_KernelMeasure):
  """HSCIC of each subspace and the rest (:func:`cmi_jax.losses.hscic_loss`)."""
  name: ClassVar[str] = 'hscic'

  def term(self, state, key, z, labels):
    del state, key
    return losses.hscic_loss(z, labels, self.subspaces, self.num_classes,
                             ridge=self.ridge, kernel=self.kernel,
                             label_kernel=self.label_kernel)


@dataclasses.dataclass(frozen=True)
class CIRCE(_KernelMeasure):
  """CIRCE of each subspace and the other attributes given its own.

  :func:`cmi_jax.losses.circe_loss`. Its regressions are fitted once, at
  ``init_adversary``, on ``heldout_labels`` (rows ``[M][K]`` of classes, or
  values of a continuous attribute; a tuple so the objective stays hashable) and live in the train state's adversary
  slot as arrays, untouched by any optimiser.
  """
  heldout_labels: tuple[tuple[float, ...], ...] = ()
  name: ClassVar[str] = 'circe'

  @classmethod
  def create(cls, subspaces, num_classes, *, circe_heldout_labels=None,
             **options):
    if circe_heldout_labels is None:
      raise ValueError('objective circe needs held-out labels: pass '
                       'circe_heldout_labels, int [M, K] rows drawn apart from '
                       'the training batches.')
    base = super().create(subspaces, num_classes, **options)
    return dataclasses.replace(base, heldout_labels=tuple(
        map(tuple, np.asarray(circe_heldout_labels, attributes.label_dtype(
            num_classes)).tolist())))

  def init_adversary(self, key, z):
    del key
    fitted = losses.circe_regressions(
        np.array(self.heldout_labels, attributes.label_dtype(
            self.num_classes)), self.num_classes,
        ridge=self.ridge, label_kernel=self.label_kernel)
    # Arrays only: the kernels belong to the objective, not to the state.
    return [{'y': r.y_heldout, 'z': r.z_heldout, 'w1': r.w1, 'w2': r.w2}
            for r in fitted]

  def term(self, state, key, z, labels):
    del key
    regressions = [kernels.CirceRegression(
        r['y'], r['z'], r['w1'], r['w2'], self.label_kernel, self.label_kernel)
                   for r in state]
    return losses.circe_loss(z, labels, regressions, self.subspaces,
                             self.num_classes, self.kernel)


_REGISTRY: dict[str, type[Objective]] = {}


def register(cls: type[Objective]) -> type[Objective]:
  """Adds an :class:`Objective` subclass under its ``name`` (a decorator)."""
  if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
    raise ValueError(f'an objective named {cls.name!r} is already '
                     'registered; give the new class another name.')
  _REGISTRY[cls.name] = cls
  return cls


for _cls in (Objective, AdversarialMI, AdversarialCMI, MMDMI, MMDCMI, HSICCMI,
             HSCIC, CIRCE):
  register(_cls)


def names() -> tuple[str, ...]:
  """The registered objective names, in registration order."""
  return tuple(_REGISTRY)


def make_objective(name: str, subspaces: Sequence[int],
                   num_classes: Sequence[int], **options: Any) -> Objective:
  """The registered objective ``name`` (options: see :meth:`Objective.create`).

  Example::

    >>> cmi = make_objective('cmi', (2, 2), (2, 2), adversary_hidden=(16,))
    >>> cmi.name, type(cmi.adversary).__name__, cmi.adversary.hidden
    ('cmi', 'Adversary', (16,))
    >>> make_objective('mmd_mi', (2, 2), (2, 2)).adversary is None
    True
  """
  if name not in _REGISTRY:
    raise ValueError(f'objective {name!r} is unknown; choose one of '
                     f'{names()}.')
  block_size = options.pop('block_size', None)
  if block_size is not None:
    validate.integer(block_size, 'block_size', 2,
                     hint='None: round(sqrt(batch size)).')
  return dataclasses.replace(
      _REGISTRY[name].create(subspaces, num_classes, **options),
      block_size=block_size)
