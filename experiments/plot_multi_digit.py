r"""The paper's multi-digit figure and table from a sweep directory.

  python -m experiments.plot_multi_digit --sweep_dir=/tmp/md_sweep \
      [--select=final|best_val_loss|best_val_accuracy|best_val_worst_group
       --out_dir=DIR]

Writes ``figure.png`` (:func:`cmi_jax.sweep_plots.accuracy_grid`),
``table.csv`` and ``table.md`` into ``out_dir`` (default: the sweep
directory).
"""

from __future__ import annotations

import os

from cmi_jax import plots
from cmi_jax import records
from cmi_jax import sweep_plots
from experiments import sweeps


def make_report(sweep_dir: str, out_dir: str | None = None,
                select: str = 'final') -> dict[str, str]:
  """Writes the figure and tables; returns their paths."""
  out_dir = out_dir or sweep_dir
  os.makedirs(out_dir, exist_ok=True)
  rows = records.collect(sweep_dir, select)
  table = records.aggregate(rows, sweep_plots.METRICS)
  csv_text, markdown = records.table_text(table, sweep_plots.METRICS,
                                          sweep_plots.TITLES)
  figure = sweep_plots.accuracy_grid(
      table, os.path.join(out_dir, 'figure.png'), sweep_plots.data_title(rows))
  return {'figure': figure, **plots.write_outputs(
      out_dir, {'table.csv': csv_text, 'table.md': markdown})}


if __name__ == '__main__':
  sweeps.report_main(make_report)
