"""What a run records: its epoch records, its best epochs and its two files,
and how a notebook reads finished runs back.

The epoch loop (:func:`cmi_jax.loop.fit`) builds every member's records
here, so a sweep member's ``results.json`` has the shape of a separate
run's, and both are written with :func:`write_results`.

An epoch record is ``{'epoch', 'step', 'train': {metric: mean over the
epoch's steps}, 'eval': {split: summary}, 'extra': hook output,
'seconds': ...}`` (``eval`` and ``extra`` only on evaluated epochs).

A sweep directory holds runs at any depth: :func:`collect` reads them as
rows, :func:`aggregate` takes means over seeds and :func:`table_text` renders
them.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import os
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from cmi_jax import checkpoint as ckpt
from cmi_jax import evaluation
from cmi_jax import logs
from cmi_jax import validate

CONFIG_FILE = 'config.json'
RESULTS_FILE = 'results.json'

_log = logging.getLogger(__name__)

# (epoch, state, {split: raw evaluation stats}) -> extra metrics for the log.
EpochHook = Callable[[int, Any, dict[str, dict[str, np.ndarray]]],
                     dict[str, Any]]

# (key in the latest checkpoint's meta, checkpoint series and results key,
# (summary metric, +1 to maximise / -1 to minimise)) of the best epochs.
BEST_CRITERIA = (
    ('loss', ckpt.BEST_LOSS, ('loss', -1)),
    ('accuracy', ckpt.BEST_ACCURACY, ('accuracy', 1)),
    ('worst_group', ckpt.BEST_WORST_GROUP, ('worst_group_accuracy', 1)),
)


def no_best() -> dict[str, None]:
  """The best-epoch records before any evaluation, one per criterion."""
  return {name: None for name, _, _ in BEST_CRITERIA}


def check_select_split(split: str, eval_data: Mapping[str, Any]) -> None:
  """Raises ValueError unless ``split`` is one of the evaluated splits."""
  if split not in eval_data:
    raise ValueError(f'select_split {split!r} is not an evaluation split; '
                     f'the splits are {sorted(eval_data)}.')


def first_non_finite(step_metrics: Mapping[str, np.ndarray]
                     ) -> Optional[tuple[int, list[str]]]:
  """``(index, names)`` of the first step with a non-finite metric, or None."""
  names = sorted(step_metrics)
  bad = np.stack([~np.isfinite(np.asarray(step_metrics[n], np.float64))
                  for n in names], 1)  # [steps, metrics]
  rows = np.flatnonzero(bad.any(1))
  if not len(rows):
    return None
  return int(rows[0]), [n for n, b in zip(names, bad[rows[0]]) if b]


def non_finite_message(step_metrics: Mapping[str, np.ndarray],
                       first_step: int, epoch: int) -> Optional[str]:
  """What went non-finite where, or None; steps numbered as in log.jsonl.

  ``step_metrics``: ``{name: [steps]}`` of the epoch that began after step
  ``first_step``.
  """
  if (bad := first_non_finite(step_metrics)) is None:
    return None
  return (f'non-finite {", ".join(bad[1])} at step '
          f'{first_step + bad[0] + 1} (epoch {epoch})')


def train_record(epoch: int, step: int,
                 step_metrics: Mapping[str, np.ndarray]) -> dict[str, Any]:
  """An epoch record without evaluation: the epoch's mean of every metric."""
  return {'epoch': epoch, 'step': step,
          'train': {k: float(np.mean(v)) for k, v in step_metrics.items()}}


def summarize_splits(stats: Mapping[str, Any], weights_split: str
                     ) -> dict[str, Any]:
  """Each split's :func:`cmi_jax.evaluation.summarize`, weighted by the group
  counts of ``weights_split`` (when it is one of the splits)."""
  weights = stats.get(weights_split, {}).get('combo_count')
  return {name: evaluation.summarize(s, weights) for name, s in stats.items()}


def improved_criteria(best: Mapping[str, Any], record: Mapping[str, Any],
                      split: str) -> list[tuple[str, str]]:
  """``(key, series)`` of the :data:`BEST_CRITERIA` that ``record`` improves.

  A NaN or missing metric (e.g. no group of the split has examples) never
  counts as an improvement.
  """
  summary = record['eval'][split]
  improved = []
  for name, series, (metric, sign) in BEST_CRITERIA:
    value = summary.get(metric)
    if value is None or not np.isfinite(value):
      continue
    held = best[name]
    if held is None or sign * value > sign * held['eval'][split][metric]:
      improved.append((name, series))
  return improved


def update_best(best: dict[str, Any], record: Mapping[str, Any],
                split: str) -> list[str]:
  """Stores ``record`` where it improves ``best``; returns those series."""
  improved = improved_criteria(best, record, split)
  for name, _ in improved:
    best[name] = logs.to_jsonable(record)
  return [series for _, series in improved]


def run_results(final: Any, best: Mapping[str, Any], num_epochs: int,
                step: int) -> dict[str, Any]:
  """The entries of ``results.json``: the final and best-epoch records."""
  return {'final': final,
          **{series: best[name] for name, series, _ in BEST_CRITERIA},
          'num_epochs': num_epochs, 'step': step}


def write_config(workdir: str, run_config: Mapping[str, Any]) -> None:
  """Writes ``workdir/config.json`` atomically."""
  logs.write_json_atomic(os.path.join(workdir, CONFIG_FILE), run_config)


def write_results(workdir: str, results: Mapping[str, Any]) -> None:
  """Writes ``workdir/results.json`` atomically: the mark of a finished run."""
  logs.write_json_atomic(os.path.join(workdir, RESULTS_FILE), results)


# The config fields that place a run in the paper's grids.
FIELDS = ('objective', 'train_corr', 'noise', 'seed')

# The epoch records of a run that a report can select.
SELECTIONS = ('final',) + tuple(series for _, series, _
                                in BEST_CRITERIA)


def read_run(root: str) -> Optional[tuple[dict[str, Any], dict[str, Any]]]:
  """``(results, config)`` of the run in ``root``, or None if unfinished.

  A missing, truncated or foreign ``results.json`` or ``config.json`` counts
  as unfinished (with a warning naming the file).
  """
  paths = [os.path.join(root, RESULTS_FILE),
           os.path.join(root, CONFIG_FILE)]
  loaded = []
  for path in paths:
    try:
      with open(path) as f:
        loaded.append(json.load(f))
    except FileNotFoundError:
      return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
      _log.warning('%s cannot be read (%s); the cell counts as unfinished '
                   'and is trained again.', path, e)
      return None
  results, config = loaded
  if not (isinstance(results, dict) and 'final' in results
          and isinstance(config, dict) and 'config' in config):
    _log.warning('%s is not the results of a finished run; the cell '
                 'counts as unfinished and is trained again.', paths[0])
    return None
  return results, config


def read_config(workdir: str) -> tuple[dict[str, Any], dict[str, Any]]:
  """``(config, data_info)`` of a run from its ``config.json``."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isdir(workdir):
    raise ValueError(f'workdir {workdir} is not a directory; pass the work '
                     'directory of a finished run.')
  if not os.path.isfile(path):
    raise ValueError(f'{path} not found: {workdir} is not the work directory '
                     'of a run (experiments.celeba and '
                     'experiments.multi_digit_mnist write config.json).')
  try:
    with open(path, encoding='utf-8') as f:
      saved = json.load(f)
    return dict(saved['config']), dict(saved.get('data') or {})
  except (json.JSONDecodeError, KeyError, TypeError) as e:
    raise ValueError(f'{path} is not a run config ({e!r}); it must hold '
                     '{"config": {...}, "data": {...}} as run.fit writes it.'
                     ) from e


def collect(sweep_dir: str, select: str = 'final',
            extra: Sequence[str] = ()) -> list[dict[str, Any]]:
  """One row per finished cell, sorted: its fields and ``select``'s scores.

  ``select`` is the epoch record of each run (:data:`SELECTIONS`). A row has
  objective, train_corr, noise, seed and ``<split>/accuracy``, ``/loss``,
  ``/worst_group_accuracy`` (and ``/mse`` and ``/r2`` with a continuous
  attribute) for every evaluation split, then the config fields
  ``extra`` names; rows are sorted by objective, ``extra``, train_corr, noise
  and seed.
  """
  validate.choice(select, 'select', SELECTIONS)
  if not os.path.isdir(sweep_dir):
    raise ValueError(f'sweep directory {sweep_dir} does not exist; run the '
                     'sweep first or pass the directory it wrote.')
  rows = []
  for root, _, files in os.walk(sweep_dir):
    if RESULTS_FILE not in files:
      continue
    loaded = read_run(root)
    if loaded is None:
      continue
    results, config = loaded[0], loaded[1]['config']
    data = results.get('data', {})
    if not results.get(select):
      raise ValueError(f'{root} has no {select!r} record (no epoch was '
                       "evaluated on val); use select='final'.")
    record = results[select]
    row = {**{axis: config[axis] for axis in FIELDS}, 'epoch': record['epoch'],
           'source': data.get('source'), 'dataset': data.get('dataset'),
           'class_names': (data.get('class_names') or [None])[0]}
    for split, summary in record['eval'].items():
      row.update({f'{split}/{metric}': summary[metric] for metric in
                  ('accuracy', 'loss', 'worst_group_accuracy', 'mse', 'r2')
                  if metric in summary})
    rows.append(dict(row, **{name: config[name] for name in extra}))
  if not rows:
    raise ValueError(f'no finished run (no {RESULTS_FILE}) under '
                     f'{sweep_dir}.')
  return sorted(rows, key=lambda r: (r['objective'], *(r[n] for n in extra),
                                     *(r[axis] for axis in FIELDS[1:])))


def aggregate(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]
              ) -> list[dict[str, Any]]:
  """Mean, std and count over seeds of each (objective, train_corr, noise)."""
  groups: dict[tuple, list[Mapping[str, Any]]] = {}
  for row in rows:
    groups.setdefault(tuple(row[axis] for axis in FIELDS[:3]), []).append(row)
  out = []
  for key, members in sorted(groups.items()):
    entry = dict(zip(FIELDS[:3], key), num_seeds=len(members))
    for metric in metrics:
      # A run without the metric gives NaN, left out.
      values = np.array([m.get(metric, np.nan) for m in members], np.float64)
      values = values[np.isfinite(values)]
      entry[f'{metric}/mean'] = float(values.mean()) if len(values) else np.nan
      entry[f'{metric}/std'] = float(values.std(ddof=1)) if len(values) > 1 \
          else 0.0
    out.append(entry)
  return out


def csv_text(rows: Iterable[Mapping[str, Any]], header: Sequence[str],
             **options: Any) -> str:
  """``rows`` as CSV text with ``header`` (other keys are left out)."""
  out = io.StringIO()
  writer = csv.DictWriter(out, header, extrasaction='ignore', **options)
  writer.writeheader()
  writer.writerows(rows)
  return out.getvalue()


def table_text(table: Sequence[dict[str, Any]], metrics: Sequence[str],
               titles: Sequence[str],
               column: tuple[str, str, Any] = ('noise', 'noise', '{:g}'.format),
               **csv_options: Any) -> tuple[str, str]:
  """``(csv, markdown)`` renderings of the aggregated table.

  ``column``: the key, Markdown title and format of the column after the
  train correlation; ``titles``: of the ``metrics`` columns (mean ± std,
  – for none); ``csv_options`` go to :func:`csv_text`.
  """
  key, title, fmt = column
  header = ['objective', 'train_corr', 'noise',
            *([key] if key != 'noise' else []), 'num_seeds',
            *(f'{m}/{s}' for m in metrics for s in ('mean', 'std'))]
  lines = [f'| objective | train corr | {title} | seeds | '
           + ' | '.join(titles) + ' |', '|---' * (4 + len(titles)) + '|']
  for r in table:
    cells = ['–' if np.isnan(r[f'{m}/mean']) else
             f"{r[f'{m}/mean']:.3f} ± {r[f'{m}/std']:.3f}" for m in metrics]
    lines.append(f"| {r['objective']} | {r['train_corr']:g} | "
                 f"{fmt(r[key])} | {r['num_seeds']} | " + ' | '.join(cells)
                 + ' |')
  return (csv_text(table, header, **csv_options),
          '\n'.join(lines) + '\n')


def subpopulation_tables(results: Mapping[str, Any],
                         attributes: Sequence[str],
                         num_classes: Sequence[int]) -> tuple[str, str]:
  """``(csv, markdown)``: every attribute's accuracy in every cell of the
  joint table.

  ``results`` holds epoch records of :data:`SELECTIONS`, each with
  ``eval[split]['accuracy_per_combination']`` ``[C, K]`` and
  ``['combination_count']`` ``[C]``. The CSV has one row per (record, split,
  combination): ``record``, ``epoch``, ``split``, the K attribute values,
  ``count`` and ``accuracy/<name>`` (NaN for an empty combination); the
  Markdown table the final record's.
  """
  names = attributes
  accuracy = [f'accuracy/{a}' for a in names]
  combos = list(itertools.product(*(range(c) for c in num_classes)))
  rows = []
  for record_name in SELECTIONS:
    record = results.get(record_name) or {'eval': {}}
    for split, summary in record['eval'].items():
      values = np.array(summary['accuracy_per_combination'], np.float64)
      rows.extend({'record': record_name, 'epoch': record['epoch'],
                   'split': split, **dict(zip(names, combo)),
                   'count': int(summary['combination_count'][c]),
                   **{a: float(values[c, k]) for k, a in enumerate(accuracy)}}
                  for c, combo in enumerate(combos))
  line = lambda cells: '| ' + ' | '.join(cells) + ' |'
  lines = [f"Accuracy per attribute in each cell of the joint table (final "
           f"epoch {results['final']['epoch']}).", '',
           line(['split', *names, 'n', *(f'acc. {a}' for a in names)]),
           '|---' * (2 * len(names) + 2) + '|']
  for row in (r for r in rows if r['record'] == 'final'):
    lines.append(line([
        row['split'], *(str(row[a]) for a in names), str(row['count']),
        *('–' if np.isnan(row[a]) else f'{row[a]:.3f}' for a in accuracy)]))
  header = ['record', 'epoch', 'split', *names, 'count', *accuracy]
  return (csv_text(rows, header, lineterminator='\n'),
          '\n'.join(lines) + '\n')
