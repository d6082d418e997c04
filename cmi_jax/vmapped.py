"""Hyper-parameter sweeps as one program: S runs of the same shapes, vmapped.

States and datasets are stacked along a leading *member* axis of size S and
the engine's epoch is ``jax.vmap``-ed over it. Members may differ in the
arrays of the pytrees (key, :data:`HPARAMS`, dataset fields such as
``noise`` and ``table``); the trainer and every shape are shared. Member
``i`` equals, up to float rounding, the separate run with ``keys[i]``,
member ``i``'s hyper-parameters and ``datasets[i]``.

Example::

  states = vmapped.init_sweep(trainer, keys, example_images, {
      'lr': [1e-5, 1e-5, 1e-4, 1e-4], 'disentangle_weight': [1., 10., 1., 10.]})
  datas = vmapped.stack_datasets([train_split] * 4)
  epoch = vmapped.sweep_train_epoch(trainer, vmapped.sweep_mesh(4))
  states, metrics = epoch(states, datas)          # metrics: [S, steps]
  stats = vmapped.sweep_evaluate(trainer, states, {'val': val_split})
  summaries = vmapped.summarize(stats['val'])     # one dict per member
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from cmi_jax import distributed
from cmi_jax import evaluation
from cmi_jax import loop
from cmi_jax import programs
from cmi_jax import validate
from cmi_jax.records import EpochHook
from cmi_jax.train import Metrics, Trainer, TrainState

HPARAMS = ('lr', 'cls_lr', 'd_lr', 'disentangle_weight', 'dro_step_size',
           'dro_size_adjustment')
_DRO_FIELDS = {'dro_step_size': 'step_size',
               'dro_size_adjustment': 'size_adjustment'}
_OPT_FIELDS = {'lr': 'encoder_opt', 'cls_lr': 'heads_opt',
               'd_lr': 'adversary_opt'}
SWEEP_AXIS = 'sweep'


def default_hparams(trainer: Trainer) -> dict[str, float]:
  """The trainer's own values of the sweepable hyper-parameters.

  ``d_lr`` is left out for objectives without an adversary, GroupDRO's
  ``dro_step_size`` / ``dro_size_adjustment`` without GroupDRO.
  """
  values = {'lr': trainer.optim.lr, 'cls_lr': trainer.optim.cls_lr,
            'disentangle_weight': 1.0}
  if trainer.objective.adversary is not None:
    values['d_lr'] = trainer.optim.d_lr
  if (weighting := trainer.group_weighting).method == 'groupdro':
    values.update(dro_step_size=weighting.dro_step_size,
                  dro_size_adjustment=weighting.dro_size_adjustment)
  return values


def _resolve_hparams(trainer: Trainer, hparams: Mapping[str, Any],
                     size: int) -> dict[str, jax.Array]:
  """float32 ``[S]`` arrays of every sweepable value (defaults filled in)."""
  defaults = default_hparams(trainer)
  if unknown := sorted(set(hparams) - set(defaults)):
    raise ValueError(f'unknown hyper-parameter(s) {unknown}; this trainer '
                     f'varies {sorted(defaults)} (no d_lr with no adversary, '
                     'dro_* with GroupDRO); build one per value of the others.')
  rates = sorted(set(hparams) & set(_OPT_FIELDS))
  if rates and trainer.optim.decay_step is not None:
    raise ValueError(f'{rates} cannot vary under a learning-rate schedule '
                     '(decay_step); build one trainer per rate.')
  counts = trainer.group_weighting.group_counts
  if 'dro_size_adjustment' in hparams and counts is None:
    raise ValueError('dro_size_adjustment needs GroupWeighting(group_counts).')
  resolved = {}
  for name, default in defaults.items():
    value = np.asarray(hparams.get(name, default), np.float32)
    value = np.full(size, value) if value.ndim == 0 else value
    may_be_zero = name in ('disentangle_weight', 'dro_size_adjustment')
    ok = np.isfinite(value) & (value >= 0 if may_be_zero else value > 0)
    if value.shape != (size,) or not np.all(ok):
      raise ValueError(f'hyper-parameter {name!r} has shape {value.shape}, '
                       f'values {value.tolist()}; give one finite value '
                       f'{">= 0" if may_be_zero else "(positive)"} per member, '
                       f'shape [{size}], or a scalar shared by all members.')
    resolved[name] = jnp.asarray(value)
  return resolved


def init_sweep(trainer: Trainer, keys: Any, example_input: Any,
               hparams: Optional[Mapping[str, Any]] = None) -> TrainState:
  """Stacked initial states of S members (every leaf ``[S, ...]``).

  Args:
    keys: uint32 ``[S, 2]`` raw keys, one per member.
    example_input: one batch of inputs ``[B, ...]`` (shapes only matter).
    hparams: ``{name: [S] values}`` for names in :data:`HPARAMS` (learning
      rates > 0; ``disentangle_weight`` and ``dro_size_adjustment`` >= 0).
      Missing names take :func:`default_hparams`; a scalar is shared.
  """
  keys = jnp.asarray(keys)
  if keys.dtype != jnp.uint32 or keys.ndim != 2 or keys.shape[1] != 2:
    raise ValueError(f'keys must be raw uint32 keys of shape [S, 2] '
                     f'(keys_from_seeds); got {keys.dtype} {keys.shape}.')
  resolved = _resolve_hparams(trainer, hparams or {}, keys.shape[0])
  return programs.compiled(_init_members, trainer)(
      keys, jnp.asarray(example_input), resolved)


def _init_members(trainer: Trainer, keys: jax.Array, example_input: jax.Array,
                  hparams: dict[str, jax.Array]) -> TrainState:
  def member(key, hparams):
    state = trainer.init(key, example_input, hparams['disentangle_weight'])
    updates = {}
    for name, field in _OPT_FIELDS.items():
      if name in hparams:  # The rate lives in the inject_hyperparams state.
        hyper = getattr(state, field).hyperparams
        rate = jnp.asarray(hparams[name], hyper['learning_rate'].dtype)
        updates[field] = getattr(state, field)._replace(
            hyperparams={**hyper, 'learning_rate': rate})
    if state.group_dro is not None:
      updates['group_dro'] = {**state.group_dro, **{
          leaf: hparams[name] for name, leaf in _DRO_FIELDS.items()}}
    return state.replace(**updates)
  return jax.vmap(member)(keys, hparams)


def sweep_size(tree: Any) -> int:
  """S, the length of the leading member axis of a stacked pytree."""
  # jnp (not np) shapes: typed PRNG key leaves have no NumPy view.
  sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None
           for leaf in jax.tree.leaves(tree)}
  if len(sizes) != 1 or None in sizes:
    raise ValueError(f'not a stacked pytree (leading sizes {sizes}); see '
                     'init_sweep, stack_datasets.')
  return sizes.pop()


def stack_datasets(datasets: Sequence[Any]) -> Any:
  """Stacks S device datasets of one type into one (leaves ``[S, ...]``).

  Static fields and array shapes must agree (one compiled program serves
  all members). Every array is copied, even arrays the members share; an
  evaluation split can reuse stacked arrays through :class:`Stacked`.
  """
  datasets = list(datasets)
  if not datasets:
    raise ValueError('stack_datasets needs at least one dataset.')
  first, kind = datasets[0], type(datasets[0]).__name__
  static = [f.name for f in dataclasses.fields(first)
            if not f.metadata.get('pytree_node', True)
            ] if dataclasses.is_dataclass(first) else []

  def signature(data):  # (path, static value or array dtype and shape)
    return [(f'.{name}', repr(getattr(data, name))) for name in static] + [
        (jax.tree_util.keystr(path), f'{jnp.result_type(a)} {jnp.shape(a)}')
        for path, a in jax.tree_util.tree_flatten_with_path(data)[0]]

  for i, data in enumerate(datasets[1:], 1):
    if type(data) is not type(first):
      raise ValueError(f'datasets[{i}] is no {kind}; a sweep stacks datasets '
                       'of one type.')
    for (path, want), (_, got) in zip(signature(first), signature(data)):
      if got != want:
        raise ValueError(f'datasets[{i}]{path} is {got}, not {want} as in '
                         'datasets[0]; static fields and shapes must agree.')
  return jax.tree.map(lambda *xs: jnp.stack(xs), *datasets)


def unstack(tree: Any) -> list[Any]:
  """The S members of a stacked pytree, e.g. to checkpoint one state."""
  return [jax.tree.map(lambda a, i=i: a[i], tree)
          for i in range(sweep_size(tree))]


def sweep_mesh(num_members: int,
               devices: Optional[Sequence[jax.Device]] = None,
               axis_name: str = SWEEP_AXIS) -> Mesh:
  """A 1-D mesh over the most devices that split ``num_members`` evenly.

  With 8 devices: 8 members -> 8 devices (one each), 12 -> 6, 5 -> 5, 7 -> 7.
  """
  devices = jax.devices() if devices is None else list(devices)
  validate.integer(num_members, 'num_members', 1)
  count = max(d for d in range(1, min(len(devices), num_members) + 1)
              if num_members % d == 0)
  return Mesh(np.asarray(devices[:count]), (axis_name,))


def _sweep_epoch(trainer: Trainer, sharding: Optional[NamedSharding],
                 states: TrainState, datas: Any, num_steps: Optional[int]
                 ) -> tuple[TrainState, Metrics]:
  out = jax.vmap(lambda s, d: trainer.train_epoch(s, d, num_steps))(states,
                                                                     datas)
  if sharding is not None:
    # Keeps every member's state and metrics on the device that trained it.
    out = jax.lax.with_sharding_constraint(out, sharding)
  return out


def sweep_train_epoch(trainer: Trainer, mesh: Optional[Mesh] = None
                      ) -> Callable[..., tuple[TrainState, Metrics]]:
  """A compiled epoch of every member: ``(states, datas, num_steps=None)``.

  ``mesh``: optional 1-D mesh (:func:`sweep_mesh`) whose n devices train
  S / n members each. ``states`` (donated) and ``datas`` have the same S;
  metrics are ``[S, num_steps]`` per name; ``num_steps`` defaults to one
  epoch.
  """
  def run(states: TrainState, datas: Any, num_steps: Optional[int] = None):
    if (size := sweep_size(states)) != (given := sweep_size(datas)):
      raise ValueError(f'{size} states but {given} datasets; stack one '
                       'dataset per member.')
    sharding = None
    if mesh is not None:
      if size % mesh.size:
        raise ValueError(f'{size} sweep members do not split over {mesh.size} '
                         f'devices; use sweep_mesh({size}).')
      sharding = distributed.batch_sharding(mesh)
      states, datas = jax.device_put((states, datas), sharding)
    return programs.compiled(_sweep_epoch, trainer, sharding,
                             static_argnums=(2,), donate_argnums=(0,))(
                                 states, datas, num_steps)
  return run


@dataclasses.dataclass(frozen=True)
class Stacked:
  """An evaluation split already stacked per member (leaves ``[S, ...]``).

  Lets a split reuse arrays of another stacked dataset, e.g.
  ``Stacked(train.replace(labels=stacked_labels, shuffle=False))``.
  """
  data: Any


EvalData = Union[Any, Sequence[Any], Stacked]


def _evaluate_members(trainer: Trainer, per_member: bool, states: TrainState,
                      data: Any) -> dict[str, jax.Array]:
  return jax.vmap(functools.partial(evaluation.scan_evaluate, trainer),
                  in_axes=(0, 0 if per_member else None))(states, data)


def sweep_evaluate(trainer: Trainer, states: TrainState,
                   eval_datas: Mapping[str, EvalData]
                   ) -> dict[str, dict[str, np.ndarray]]:
  """Evaluates every member on every split in one compiled call per split.

  ``eval_datas`` maps a split to one dataset shared by all members, a
  list/tuple of S datasets (stacked here), or :class:`Stacked`. Returns
  ``{split: stats}``, the NumPy statistics of
  :func:`cmi_jax.evaluation.evaluate` with a leading axis ``[S, ...]``.
  """
  size = sweep_size(states)
  results = {}
  for split, data in eval_datas.items():
    per_member = isinstance(data, (list, tuple, Stacked))
    if per_member:
      data = data.data if isinstance(data, Stacked) else stack_datasets(data)
      if (given := sweep_size(data)) != size:
        raise ValueError(f'eval split {split!r} is stacked for {given} members '
                         f'but the sweep has {size}; stack one per member.')
    results[split] = jax.tree.map(np.asarray, programs.compiled(
        _evaluate_members, trainer, per_member)(states, data))
  return results


def summarize(stats: Mapping[str, np.ndarray],
              group_weights: Optional[np.ndarray] = None
              ) -> list[dict[str, Any]]:
  """:func:`cmi_jax.evaluation.summarize` of every member, a list of S dicts.

  ``group_weights``: optional ``[S, C]`` training group counts per member.
  """
  return [evaluation.summarize(member, None if group_weights is None
                               else np.asarray(group_weights)[i])
          for i, member in enumerate(unstack(dict(stats)))]


def keys_from_seeds(seeds: Sequence[int]) -> np.ndarray:
  """uint32 ``[S, 2]`` keys ``PRNGKey(seed)``, one per member."""
  return np.stack([np.asarray(jax.random.PRNGKey(int(s))) for s in seeds])


def fit_sweep(trainer: Trainer, keys: Any, example_input: Any,
              train_data: Any, eval_datas: Mapping[str, EvalData],
              config: loop.FitConfig, *,
              hparams: Optional[Mapping[str, Any]] = None,
              hooks: Optional[Sequence[Optional[EpochHook]]] = None,
              mesh: Optional[Mesh] = None, name: str = 'sweep',
              checkpoint_dir: Optional[str] = None, log_dirs: Sequence[str] = ()
              ) -> tuple[TrainState, list[dict[str, Any]]]:
  """Trains S members with :func:`cmi_jax.loop.fit`, as S runs would train.

  Member ``i`` trains as the separate run with ``keys[i]`` on member ``i``
  of ``train_data`` (:func:`stack_datasets`), up to float rounding, and gets
  that run's records and, with ``log_dirs``, its ``log.jsonl``. With
  ``checkpoint_dir`` the group's stacked state is checkpointed there, so a
  restarted call resumes and ends with the same states, bit for bit.

  Args:
    keys: as :func:`init_sweep` takes them (:func:`keys_from_seeds`), and
      ``example_input`` and ``hparams``.
    eval_datas: ``{split: data}`` as :func:`sweep_evaluate` takes it.
    config: the loop's settings (``tensorboard`` applies to ``log_dirs``).
    hooks: optional S epoch hooks; what one returns becomes the member's
      record's ``extra``.
    mesh: optional 1-D mesh (:func:`sweep_mesh`) to split the members over.
    name: what the progress log lines call this group.

  Returns:
    ``(states, results)``: the final stacked states and S results dicts as
    :func:`cmi_jax.run.fit` writes them; a member whose metrics became
    non-finite gets ``{'epoch', 'non_finite': message}`` instead.
  """
  states = init_sweep(trainer, keys, example_input, hparams)
  members = loop.Members(sweep_size(states), sweep_train_epoch(trainer, mesh),
                         functools.partial(sweep_evaluate, trainer),
                         stacked=True)
  return loop.fit(members, states, train_data, eval_datas, config,
                  checkpoint_dir=checkpoint_dir, log_dirs=log_dirs,
                  hooks=hooks, name=name)
