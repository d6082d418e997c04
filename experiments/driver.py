"""The one driver of the real-data experiments: cells of a config -> runs.

An experiment is a :class:`Spec`: how a resolved config becomes typed
:class:`~cmi_jax.data.base.Splits` and what files it writes beyond every
run's. The driver takes a base config and a list of cells (overrides of
it): each cell's config is
resolved and checked once (:func:`resolve`), its data built and its trainer
made once; a group of one trains as a single run (:func:`cmi_jax.run.fit`,
with checkpoints and figures), a larger group of cells that share every shape
as one vmapped program (:func:`cmi_jax.vmapped.fit_sweep`), each member
written as its separate run would be. A single run is a sweep of one cell
whose directory is the work directory itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import ml_collections
from absl import flags
from absl import logging

from cmi_jax import figures
from cmi_jax import logs
from cmi_jax import loop
from cmi_jax import records
from cmi_jax import run
from cmi_jax import vmapped
from cmi_jax.data import base as data_base
from cmi_jax.data.base import Splits
from experiments import cli
from experiments import common
from experiments import sweeps


def stack_members(members: Sequence[Splits]) -> tuple[Any, dict[str, Any]]:
  """The stacked training set and per-member evaluation splits of a group."""
  return (vmapped.stack_datasets([m.train for m in members]),
          {s: [m.evals[s] for m in members] for s in members[0].evals})


@dataclasses.dataclass(frozen=True)
class Spec:
  """An experiment, for the driver.

  Attributes:
    config_file: its config in ``experiments/configs``.
    paper_optim: the reference learning rates of each objective.
    check: ``config -> config``: checks the experiment's own fields and
      derives what follows from them (a copy).
    load: ``config -> source``: the data the cells share, read once.
    splits: ``(config, source) -> Splits``.
    vmap_varying: ``config -> fields`` that may differ inside a vmapped
      group (they change no shape and not the trainer).
    stack: ``[Splits] -> (train, eval splits)`` of a vmapped group.
    write_extra: ``(workdir, results, splits)`` writes the experiment's own
      files of a finished run or member (default: none).
  """
  config_file: str
  paper_optim: Mapping[str, Mapping[str, float]]
  check: Callable[[ml_collections.ConfigDict], ml_collections.ConfigDict]
  load: Callable[[Any], Any]
  splits: Callable[[Any, Any], Splits]
  vmap_varying: Callable[[Any], Sequence[str]]
  stack: Callable[[Sequence[Splits]], tuple[Any, dict[str, Any]]] = (
      stack_members)
  write_extra: Callable[[str, Mapping[str, Any], Splits], None] = (
      lambda workdir, results, splits: None)


def resolve(spec: Spec, config: ml_collections.ConfigDict,
            overrides: Optional[Mapping[str, Any]] = None
            ) -> ml_collections.FrozenConfigDict:
  """The config a run trains with, checked once: frozen, nothing unset.

  The run fields (:func:`common.check_run_fields`), the experiment's
  (``spec.check``), then the unset learning rates (the paper's times
  ``lr_scale``).
  """
  config = common.config_with(config, overrides or {})  # A copy.
  common.check_run_fields(config)
  config = common.resolve_learning_rates(spec.check(config),
                                         spec.paper_optim)
  return ml_collections.FrozenConfigDict(config)


def train(spec: Spec, config: ml_collections.ConfigDict, workdir: str, *,
          allow_change: Sequence[str] = ()) -> dict[str, Any]:
  """One run of ``config`` in ``workdir``; its results (and ``state``).

  ``allow_change`` names the fields beyond :data:`common.COSMETIC_FIELDS`
  that may differ when it resumes (e.g. ``num_epochs``).
  """
  config = resolve(spec, config)
  run.check_workdir(workdir)
  return _train_one(spec, config, spec.load(config), workdir, allow_change)


def main(spec: Spec, report: Callable[[dict[str, Any]], None]) -> None:
  """The command of one run: ``--config``, ``--workdir``, ``--allow_change``.

  Trains (:func:`train`), then ``report(results)`` prints what it got. Flags
  are defined here, not at import.
  """
  allow_change = flags.DEFINE_list(
      'allow_change', [],
      'Config fields that may differ from the saved run when it resumes '
      '(e.g. num_epochs to train on); every other change is refused.')
  cli.run_config_main(spec.config_file, lambda config, workdir: report(
      train(spec, config, workdir, allow_change=allow_change.value)))


def sweep_main(spec: Spec, train_corrs: Sequence[str],
               noises: Sequence[str], seeds: Sequence[str]) -> None:
  """The command of a grid sweep (objective x train_corr x noise x seed,
  and ``--lambdas``); the defaults of its axes are strings, as flags give."""
  sweep = sweeps.define_sweep_flags(train_corrs, noises, seeds)

  def body(config, workdir):
    args = sweep()
    cells = sweeps.with_lambdas(sweeps.grid(
        args.objectives, args.train_corrs, args.noises, args.seeds),
                                args.lambdas)
    rows = run_sweep(spec, config, workdir,
                     sweeps.select_shard(cells, *args.shard), vmap=args.vmap,
                     max_members=args.max_members,
                     extra=sweeps.lambda_columns(args.lambdas))
    print(f'{len(rows)} finished cells in {workdir}')

  cli.run_config_main(spec.config_file, body)


def train_cells(spec: Spec, base: ml_collections.ConfigDict, root: str,
                cells: Sequence[sweeps.Cell], *, vmap: bool = False,
                max_members: Optional[int] = None) -> None:
  """Trains every unfinished cell of a sweep in ``root/<cell.name>``.

  Without ``vmap`` one after another. With it, cells whose resolved configs
  differ only in ``spec.vmap_varying`` train together, in groups of at most
  ``max_members``; a cell that a separate run checkpointed resumes
  separately (a vmapped group cannot resume one member). The cells share
  their source data (``spec.load`` of the first cell that trains), so they
  must not vary the fields it reads.

  Workers share a sweep: a group trains only while this process holds the
  lock of each of its cells (:func:`sweeps.claim`); a worker passes over
  groups that others hold and, once nothing is left to claim, waits for
  them, taking over the cells of a worker that died. Any number of workers
  started with the same command thus train each cell once.
  """
  run.check_workdir(root)
  configs = {c: resolve(spec, base, c.overrides()) for c in cells}
  # lambda is a state leaf (TrainState.disentangle_weight): any group varies it.
  key = lambda c: sweeps.config_key(
      configs[c].to_dict(),
      (*spec.vmap_varying(configs[c]), 'disentangle_weight'))
  source = None  # The shared data, read by the first cell that trains.
  tried = set()  # Each cell once per call, whatever became of it.
  waiting_for = None  # A waiting worker logs only when this changes.
  while groups := sweeps.plan(root, [c for c in cells if c not in tried],
                              key if vmap else None, max_members):
    if waiting_for is None:
      logging.info('%d of %d cells to train.', sum(map(len, groups)),
                   len(cells))
    trained = 0
    for group in groups:
      with sweeps.claim(root, group) as claimed:
        if not claimed:
          continue
        trained += 1
        tried.update(group)
        start = time.time()
        if source is None:
          source = spec.load(configs[group[0]])
        if len(group) == 1:
          results = [_train_one(spec, configs[group[0]], source,
                                os.path.join(root, group[0].name))]
        else:
          logging.info('Training %d cells together: %s.', len(group),
                       ', '.join(c.name for c in group))
          results = _train_group(spec, [configs[c] for c in group], group,
                                 source, root)
      for cell, result in zip(group, results):
        scores = ', '.join(f'{split} {s["accuracy"]:.3f}' for split, s in
                           result['final']['eval'].items())
        logging.info('%s: %s (%.0f s).', cell.name, scores,
                     time.time() - start)
    held = sorted(c.name for group in groups for c in group)
    if not trained and held != waiting_for:
      logging.info('Waiting for %d cell(s) held by other workers: %s.',
                   len(held), ', '.join(held))
    waiting_for = None if trained else held
    if not trained:
      time.sleep(sweeps.WAIT_S)


def run_sweep(spec: Spec, base: ml_collections.ConfigDict, root: str,
              cells: Sequence[sweeps.Cell], *, vmap: bool = False,
              max_members: Optional[int] = None, extra: Sequence[str] = ()
              ) -> list[dict[str, Any]]:
  """:func:`train_cells`, then the rows of every finished cell under
  ``root`` (:func:`cmi_jax.records.collect` with the config fields
  ``extra``), also written to ``root/summary.json``."""
  train_cells(spec, base, root, cells, vmap=vmap, max_members=max_members)
  rows = records.collect(root, extra=extra)
  logs.write_json_atomic(os.path.join(root, 'summary.json'), rows)
  return rows


def _train_one(spec: Spec, config: ml_collections.FrozenConfigDict,
               source: Any, workdir: str, allow_change: Sequence[str] = ()
               ) -> dict[str, Any]:
  """A single run: data, trainer, :func:`cmi_jax.run.fit`, files, figures."""
  with run.workdir_lock(workdir):
    splits = spec.splits(config, source)
    train_data = common.balanced_training_data(config, splits.train,
                                               splits.num_classes)
    trainer = common.build_trainer(config, splits)
    run_config = {'config': config.to_dict(), 'data': dict(splits.info)}
    may_change = tuple(common.COSMETIC_FIELDS) + tuple(allow_change)
    run.check_resumable(workdir, run_config, may_change)
    if jax.process_index() == 0:
      _write_joint_counts(workdir, splits)
      figures.data_figures(splits, train_data, workdir)
    example = data_base.first_batches(train_data,
                                      train_data.batch_size)['image']
    state = trainer.init(jax.random.PRNGKey(config.seed), example,
                         config.disentangle_weight)
    logging.info('Training %s for %d epochs of %d steps in %s.',
                 config.objective, config.num_epochs,
                 train_data.steps_per_epoch, workdir)
    result = run.fit(
        trainer, state, train_data, splits.evals, workdir, fit_config(config),
        run_config=run_config, may_change=may_change,
        results_extra=_results_extra(config, splits),
        epoch_hook=common.mi_hook(config, trainer.objective.subspaces))
    state = result.pop('state')
    if jax.process_index() == 0:
      figures.run_figures(trainer, state, splits, workdir,
                          final_eval=result['final'].get('eval'))
      spec.write_extra(workdir, result, splits)
    return {'state': state, **result}


def fit_config(config: Any) -> loop.FitConfig:
  """The loop's settings of a resolved config."""
  return common.settings(loop.FitConfig, config)


def _results_extra(config: Any, splits: Splits) -> dict[str, Any]:
  return {'data': dict(splits.info), 'attributes': list(splits.attributes),
          'objective': config.objective}


def _write_joint_counts(workdir: str, splits: Splits) -> None:
  logs.write_json_atomic(os.path.join(workdir, 'joint_counts.json'),
                         splits.joint_counts)


def _train_group(spec: Spec, configs: Sequence[Any],
                 cells: Sequence[sweeps.Cell], source: Any, root: str
                 ) -> list[dict[str, Any]]:
  """Trains cells of one trainer together (vmapped) and writes each member.

  Each member gets its separate run's ``config.json``,
  ``joint_counts.json``, ``log.jsonl``, extra files and ``results.json``
  (written last, so a member counts as done only when complete); the group's
  checkpoints are deleted once every member is written. Members whose
  losses became non-finite stay unfinished, named by a
  :class:`cmi_jax.run.NonFiniteLossError` after the others are written.
  """
  first = configs[0]
  members = [spec.splits(config, source) for config in configs]
  # The first member's weighting is every member's (spec.vmap_varying).
  trainer = common.build_trainer(first, members[0])
  for config, splits in zip(configs, members):
    run.check_first_labels(trainer, splits.train, splits.evals)
    splits.train = common.balanced_training_data(config, splits.train,
                                                 splits.num_classes)
  example = data_base.first_batches(members[0].train, 1)['image']
  try:
    train_data, eval_data = spec.stack(members)
  except ValueError as e:
    raise ValueError(
        f'the cells {[c.name for c in cells]} were grouped because their '
        f'configs differ only in {tuple(spec.vmap_varying(first))}, but '
        f'their data differ: {e} Run them without vmap.') from e
  hooks = [common.mi_hook(c, trainer.objective.subspaces) for c in configs]
  # Named by its members, so it resumes.
  digest = hashlib.sha1('\n'.join(sorted(c.name for c in cells)).encode())
  group_dir = os.path.join(root, sweeps.GROUPS_DIR, digest.hexdigest()[:16])
  start = time.time()
  _, results = vmapped.fit_sweep(
      trainer, vmapped.keys_from_seeds([c.seed for c in configs]), example,
      train_data, eval_data,
      dataclasses.replace(fit_config(first), tensorboard=False),
      hparams={'disentangle_weight': [c.disentangle_weight for c in configs]},
      hooks=None if all(h is None for h in hooks) else hooks,
      name=first.objective, checkpoint_dir=group_dir,
      log_dirs=[os.path.join(root, c.name) for c in cells])
  group = {'cells': [c.name for c in cells],
           'train_seconds': time.time() - start}

  def write(cell, member):
    i = cells.index(cell)
    member.update(_results_extra(configs[i], members[i]), mode='vmapped',
                  group=group)
    if jax.process_index() == 0:
      workdir = os.path.join(root, cell.name)
      _write_joint_counts(workdir, members[i])
      spec.write_extra(workdir, member, members[i])
      sweeps.write_cell(workdir, {'config': configs[i].to_dict(),
                                  'data': dict(members[i].info)}, member)

  sweeps.write_members(cells, results, write)
  shutil.rmtree(group_dir, ignore_errors=True)  # Every member is written.
  return results
