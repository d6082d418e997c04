r"""The item-and-brightness table from a sweep directory.

  python -m experiments.plot_brightness --sweep_dir=/tmp/brightness_sweep \
      [--select=final|best_val_loss|best_val_accuracy|best_val_worst_group
       --out_dir=DIR]

Writes ``table.csv`` and ``table.md`` into ``out_dir`` (default: the sweep
directory): per objective, correlation and noise, the item's accuracy and
worst-group accuracy and the brightness head's R^2 and MSE on each shifted
split (mean ± std over seeds).
"""

from __future__ import annotations

from cmi_jax import plots
from cmi_jax import records
from experiments import sweeps

METRICS = ('val/accuracy', 'test_anti/accuracy', 'test_uncorr/accuracy',
           'test_uncorr/worst_group_accuracy', 'test_anti/r2',
           'test_uncorr/r2', 'test_anti/mse', 'test_uncorr/mse')
TITLES = ('val', 'anti-correlated test', 'uncorrelated test',
          'worst group (uncorrelated test)', 'brightness R^2 (anti)',
          'brightness R^2 (uncorrelated)', 'brightness MSE (anti)',
          'brightness MSE (uncorrelated)')


def make_report(sweep_dir: str, out_dir: str | None = None,
                select: str = 'final') -> dict[str, str]:
  """Writes the tables; returns their paths."""
  table = records.aggregate(records.collect(sweep_dir, select), METRICS)
  csv_text, markdown = records.table_text(table, METRICS, TITLES)
  return plots.write_outputs(out_dir or sweep_dir,
                             {'table.csv': csv_text, 'table.md': markdown})


if __name__ == '__main__':
  sweeps.report_main(make_report)
