r"""The paper's two CelebA figures and their tables, from a sweep directory.

  python -m experiments.plot_celeba --sweep_dir=/tmp/celeba_sweep \
      [--select=final|best_val_loss|best_val_accuracy --out_dir=DIR]

Writes into ``out_dir`` (default: the sweep directory), for whichever of
``sweep_dir/corr`` and ``sweep_dir/weak`` exist, ``celeba_correlation`` and
``celeba_weak_supervision`` as ``.png``, ``.csv`` and ``.md``: accuracy
(mean ± std over seeds) against the training correlation or the percentage
of labels removed, one line per objective.
"""

from __future__ import annotations

import os
from typing import Any

from cmi_jax import plots
from cmi_jax import records
from cmi_jax import sweep_plots
from experiments import celeba_sweep
from experiments import sweeps


def weak_table(weak_dir: str, select: str = 'final') -> list[dict[str, Any]]:
  """:func:`cmi_jax.records.aggregate` rows per fraction removed."""
  rows = records.collect(weak_dir, select, extra=celeba_sweep.WEAK_COLUMNS)
  table = []
  for fraction in sorted({r['weak_supervision'] for r in rows}):
    members = [r for r in rows if r['weak_supervision'] == fraction]
    table += [dict(entry, weak_supervision=fraction)
              for entry in records.aggregate(members, sweep_plots.METRICS)]
  return sorted(table, key=lambda r: (r['objective'], r['weak_supervision']))


def make_report(sweep_dir: str, out_dir: str | None = None,
                select: str = 'final') -> dict[str, str]:
  """Writes the figures and tables of the modes; returns name -> path."""
  out_dir = out_dir or sweep_dir
  corr_dir = celeba_sweep.mode_dir(sweep_dir, 'corr')
  weak_dir = celeba_sweep.mode_dir(sweep_dir, 'weak')
  columns, reports = (sweep_plots.METRICS, sweep_plots.TITLES), []
  if os.path.isdir(corr_dir):
    table = records.aggregate(records.collect(corr_dir, select), columns[0])
    reports.append(('celeba_correlation', sweep_plots.correlation_figure(table),
                    records.table_text(table, *columns)))
  if os.path.isdir(weak_dir):
    table = weak_table(weak_dir, select)
    reports.append(('celeba_weak_supervision',
                    sweep_plots.weak_supervision_figure(table),
                    records.table_text(table, *columns, (
                        'weak_supervision', 'labels removed',
                        lambda v: f'{100 * v:g} %'), lineterminator='\n')))
  if not reports:
    raise ValueError(
        f'{sweep_dir} holds neither corr/ nor weak/ sweep cells; run '
        f'python -m experiments.celeba_sweep --workdir={sweep_dir} '
        '[--mode=weak] first.')
  return plots.write_outputs(out_dir, {
      f'{stem}.{ext}': content for stem, fig, (csv_text, markdown) in reports
      for ext, content in (('png', fig), ('csv', csv_text), ('md', markdown))})


if __name__ == '__main__':
  sweeps.report_main(make_report)
