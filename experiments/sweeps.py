"""Sweep bookkeeping: grids of cells, their directories, and collected results.

A sweep is the product of a few config fields (objective, train correlation,
noise, seed); each *cell* is one run with its own work directory, so a
restarted sweep skips every cell with a ``results.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import types
from typing import Any, Callable, Hashable, Iterator, Mapping, Optional, \
    Sequence

from absl import app
from absl import flags
from absl import logging

from cmi_jax import checkpoint as ckpt
from cmi_jax import locks
from cmi_jax import records
from cmi_jax import run
from cmi_jax import validate
from experiments import cli

GROUPS_DIR = '_groups'
# How long a worker waits before it looks again at cells others hold.
WAIT_S = 2.0


@dataclasses.dataclass(frozen=True)
class Cell:
  """One run of a sweep: its directory and the config fields it sets.

  Attributes:
    name: the relative work directory, e.g. ``cmi/corr0.9_noise0.8/seed0``.
    settings: ``(field, value)`` pairs overriding the base config; any
      fields, so a new sweep axis needs no new class.
  """
  name: str
  settings: tuple[tuple[str, Any], ...]

  def overrides(self) -> dict[str, Any]:
    """The config fields this cell sets."""
    return dict(self.settings)


def cell(objective: str, train_corr: float, noise: float, seed: int) -> Cell:
  """The paper's cell: ``<objective>/corr<c>_noise<n>/seed<s>``."""
  return Cell(os.path.join(objective, f'corr{train_corr:g}_noise{noise:g}',
                           f'seed{seed}'),
              tuple(zip(records.FIELDS, (objective, float(train_corr),
                                         float(noise), int(seed)))))


def with_setting(cell: Cell, field: str, value: Any, folder: str) -> Cell:
  """``cell`` also setting ``field`` to ``value``, in ``folder/<cell.name>``."""
  return Cell(os.path.join(folder, cell.name),
              cell.settings + ((field, value),))


def with_lambdas(cells: Sequence[Cell], lambdas: Optional[Sequence[float]]
                 ) -> list[Cell]:
  """Every cell at every ``disentangle_weight`` of ``lambdas``, in
  ``lambda<l>/<cell.name>`` (``cells`` unchanged for None)."""
  if lambdas is None:
    return list(cells)
  return [with_setting(c, 'disentangle_weight', float(lam), f'lambda{lam:g}')
          for c in cells for lam in lambdas]


def lambda_columns(lambdas: Optional[Sequence[float]]) -> tuple[str, ...]:
  """The extra :func:`collect` column of a lambda axis (none without one)."""
  return () if lambdas is None else ('disentangle_weight',)


def grid(objectives: Sequence[str], train_corrs: Sequence[float],
         noises: Sequence[float], seeds: Sequence[int]) -> list[Cell]:
  """Every combination, objectives outermost (cells sharing shapes adjoin)."""
  for name, values in (('objectives', objectives), ('train_corrs', train_corrs),
                       ('noises', noises), ('seeds', seeds)):
    if not len(values):
      raise ValueError(f'the sweep needs at least one value of {name}.')
  return [cell(o, float(c), float(n), int(s))
          for o, c, n, s in itertools.product(objectives, train_corrs, noises,
                                              seeds)]


SLURM_INDEX, SLURM_COUNT = 'SLURM_ARRAY_TASK_ID', 'SLURM_ARRAY_TASK_COUNT'


def define_sweep_flags(train_corrs: Sequence[str], noises: Sequence[str],
                       seeds: Sequence[str]
                       ) -> Callable[[], types.SimpleNamespace]:
  """Defines the flags of a sweep: its grid's axes, ``--vmap``, ``--shard``.

  Returns a function of the parsed flags: ``objectives``, ``train_corrs``,
  ``noises``, ``seeds``, ``lambdas`` (numbers, :func:`parse_list`; ``lambdas``
  None when not given), ``vmap``,
  ``max_members`` and ``shard`` (``(index, count)``, :func:`parse_shard`).
  """
  lists = [(name, flags.DEFINE_list(name, default, text), kind)
           for name, default, kind, text in (
               ('objectives', ['base', 'mi', 'cmi'], str, 'Objectives.'),
               ('train_corrs', train_corrs, float, 'Training correlations.'),
               ('noises', noises, float, 'Occlusion noise levels.'),
               ('seeds', seeds, int, 'Seeds.'))]
  lambdas = flags.DEFINE_list('lambdas', None, 'Values of lambda '
                              '(config.disentangle_weight) in lambda<l>/ '
                              'folders; default: the config\'s alone.')
  vmap = flags.DEFINE_bool(
      'vmap', False, 'Train cells whose configs differ in no shape (e.g. '
      'seeds) together, vmapped; each gets a separate run\'s files but no '
      'checkpoints or figures; the group checkpoints and resumes.')
  max_members = flags.DEFINE_integer(
      'vmap_max_members', None, 'With --vmap: the most cells trained '
      'together (each holds its training data on the device); default: all '
      'that share their shapes.', lower_bound=1)
  shard = flags.DEFINE_string(
      'shard', None, 'I/N: train only shard I (0-based) of N of the cells, '
      'so N jobs (e.g. a SLURM job array) share one sweep directory; '
      f'default: ${SLURM_INDEX}/${SLURM_COUNT} when SLURM sets them, else '
      'all cells.')
  return lambda: types.SimpleNamespace(
      vmap=vmap.value, max_members=max_members.value,
      shard=parse_shard(shard.value),
      lambdas=(None if lambdas.value is None
               else parse_list(lambdas.value, 'lambdas')),
      **{name: parse_list(flag.value, name, kind)
         for name, flag, kind in lists})


def parse_shard(value: Optional[str], environ: Mapping[str, str] = os.environ
                ) -> tuple[int, int]:
  """``(index, count)`` of ``--shard`` (or of a SLURM job array, or ``(0, 1)``).

  Raises:
    app.UsageError: for a malformed value; the message names the fix.
  """
  if value is None and SLURM_INDEX in environ and SLURM_COUNT in environ:
    # SLURM numbers array tasks from --array's first value (often 0).
    index = int(environ[SLURM_INDEX]) - int(
        environ.get('SLURM_ARRAY_TASK_MIN', 0))
    value = f'{index}/{environ[SLURM_COUNT]}'
  if value is None:
    return 0, 1
  try:
    index, count = (int(part) for part in value.split('/'))
  except ValueError:
    raise app.UsageError(f'--shard takes I/N with integers, e.g. 0/4; got '
                         f'{value!r}.') from None
  if count < 1 or not 0 <= index < count:
    raise app.UsageError(f'--shard={value}: need N >= 1 and 0 <= I < N.')
  return index, count


def select_shard(cells: Sequence[Cell], index: int, count: int
                 ) -> list[Cell]:
  """The cells of shard ``index`` of ``count``: every ``count``-th cell.

  Round robin keeps each shard's groups of one objective about equal.
  """
  cells = [cell for i, cell in enumerate(cells) if i % count == index]
  if count > 1:
    logging.info('Shard %d of %d: %d cells.', index, count, len(cells))
  return cells


def parse_list(values: Sequence[str], flag: str, kind: type = float
               ) -> list[Any]:
  """The values of a list flag (``flags.DEFINE_list`` gives strings).

  ``kind`` converts each: ``float``, ``int`` (``'1.5'`` is rejected, not
  truncated) or ``str``; app.UsageError names the flag and the value that
  is not a number.
  """
  out = []
  for value in values:
    try:
      out.append(kind(value))
    except ValueError:
      what = 'integers' if kind is int else 'numbers'
      raise app.UsageError(f'--{flag} takes comma-separated {what}; {value!r} '
                           f'is not one (got {",".join(values)}).') from None
  return out


def is_done(sweep_dir: str, cell: Cell) -> bool:
  """Whether the cell's run finished (a readable ``results.json``)."""
  return records.read_run(os.path.join(sweep_dir, cell.name)) is not None


def is_started(sweep_dir: str, cell: Any) -> bool:
  """Whether a separate run of the cell saved a checkpoint to resume from."""
  return ckpt.LATEST in ckpt.saved_series(os.path.join(sweep_dir, cell.name))


@contextlib.contextmanager
def claim(sweep_dir: str, cells: Sequence[Cell]) -> Iterator[bool]:
  """Holds the lock of every cell's directory, or of none.

  Yields True while held; False (holding nothing) when another live process
  holds one of them or one of them finished meanwhile.
  """
  with contextlib.ExitStack() as held:
    try:
      for cell in cells:
        held.enter_context(run.workdir_lock(os.path.join(sweep_dir,
                                                         cell.name)))
    except locks.DirectoryBusyError as e:
      logging.info('Passing over %s: %s.', cells[0].name, e)
      held.close()
      yield False
    else:
      yield not any(is_done(sweep_dir, c) for c in cells)


def group_cells(cells: Sequence[Cell], key: Callable[[Cell], Hashable],
                max_members: Optional[int] = None) -> list[list[Cell]]:
  """Cells with equal ``key``, in order of first appearance.

  Groups larger than ``max_members`` (None: no limit) are split into chunks
  of at most that many.
  """
  if max_members is not None:
    validate.integer(max_members, 'max_members', 1, hint='None: no limit.')
  groups: dict[Hashable, list[Cell]] = {}
  for cell in cells:
    groups.setdefault(key(cell), []).append(cell)
  out = []
  for group in groups.values():
    step = max_members or len(group)
    out.extend(group[i:i + step] for i in range(0, len(group), step))
  return out


def plan(sweep_dir: str, cells: Sequence[Cell],
         key: Optional[Callable[[Cell], Hashable]] = None,
         max_members: Optional[int] = None) -> list[list[Cell]]:
  """What trains together: the unfinished cells, in groups, in order.

  Without ``key`` every cell is its own group. With it, a cell that a
  separate run checkpointed is a group of one (a vmapped group cannot resume
  one member), the others are grouped by ``key`` (:func:`group_cells`).
  """
  todo = [c for c in cells if not is_done(sweep_dir, c)]
  if key is None:
    return [[c] for c in todo]
  started = [c for c in todo if is_started(sweep_dir, c)]
  return [[c] for c in started] + group_cells(
      [c for c in todo if c not in started], key, max_members)


def write_members(cells: Sequence[Cell], results: Sequence[Mapping[str, Any]],
                  write: Callable[[Cell, Mapping[str, Any]], None]) -> None:
  """``write(cell, member)`` of every member of a group that finished.

  Cells whose losses became non-finite stay unfinished: a
  :class:`cmi_jax.run.NonFiniteLossError` names them after the others are
  written.
  """
  failed = []
  for cell, member in zip(cells, results, strict=True):
    if 'non_finite' in member:
      failed.append(f'{cell.name}: {member["non_finite"]}')
    else:
      write(cell, member)
  if failed:
    raise run.NonFiniteLossError(
        f'{len(failed)} of {len(cells)} cells of a vmapped group did not '
        'finish (the others are written): ' + '; '.join(failed))


def write_cell(workdir: str, run_config: Mapping[str, Any],
               results: Mapping[str, Any]) -> None:
  """Writes a cell's ``config.json``, then ``results.json``: :func:`is_done`
  holds only once both are complete."""
  records.write_config(workdir, run_config)
  records.write_results(workdir, results)


def config_key(config: Mapping[str, Any], varying: Sequence[str]) -> str:
  """Canonical JSON of a config dict without the ``varying`` fields.

  Cells with equal keys can share one trainer and compiled program.
  """
  return json.dumps({k: v for k, v in config.items() if k not in varying},
                    sort_keys=True, default=repr)


def report_main(make_report: Callable[[str, Optional[str], str],
                                      Mapping[str, str]]) -> None:
  """The command line of a sweep report (flags defined here, not at import).

  Calls ``make_report(--sweep_dir, --out_dir, --select)``, prints every
  Markdown table it wrote, then every path.
  """
  sweep_dir = flags.DEFINE_string('sweep_dir', None, 'The sweep directory.')
  out_dir = flags.DEFINE_string('out_dir', None,
                                'Output directory (default: sweep_dir).')
  select = flags.DEFINE_enum('select', 'final', list(records.SELECTIONS),
                             'Which epoch of every run to report.')

  def run(argv):
    del argv
    if not sweep_dir.value:
      raise app.UsageError('--sweep_dir is required.')
    paths = make_report(sweep_dir.value, out_dir.value, select.value)
    for path in paths.values():
      if path.endswith('.md'):
        with open(path, encoding='utf-8') as f:
          print(f.read())
    print('\n'.join(f'{k}: {v}' for k, v in paths.items()))

  cli.run_main(run, workdir=lambda: out_dir.value or sweep_dir.value)
