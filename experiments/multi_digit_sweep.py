r"""The paper's multi-digit sweep: noise x train correlation x objective x seed.

  python -m experiments.multi_digit_sweep --workdir=/tmp/md_sweep \
      [--noises=0,0.2,0.4,0.6,0.8 --train_corrs=0,0.6,0.9 \
       --objectives=base,mi,cmi --seeds=0,1,2 --lambdas=0.1,1,10 \
       --config.num_epochs=400 ...]

Each cell is a run of :mod:`experiments.multi_digit_mnist` in
``workdir/<objective>/corr<c>_noise<n>/seed<s>``; finished cells are
skipped, so a restarted sweep picks up where it stopped. ``--vmap`` trains
the cells of each objective together. Draw the figure with
:mod:`experiments.plot_multi_digit`.
"""

from __future__ import annotations

import os

from cmi_jax import logs
from cmi_jax import records
from experiments import cli
from experiments import driver
from experiments import multi_digit_mnist
from experiments import sweeps


def run_sweep(base_config, sweep_dir, cells, vmap=False, max_members=None,
              extra=()):
  """Trains every unfinished cell; returns :func:`cmi_jax.records.collect`'s rows
  (with the config fields ``extra``)."""
  driver.train_cells(multi_digit_mnist.SPEC, base_config, sweep_dir, cells,
                     vmap=vmap, max_members=max_members)
  rows = records.collect(sweep_dir, extra=extra)
  logs.write_json_atomic(os.path.join(sweep_dir, 'summary.json'), rows)
  return rows


def main() -> None:
  """Command line (flags defined here, not at import)."""
  sweep = sweeps.define_sweep_flags(
      train_corrs=['0', '0.6', '0.9'], noises=['0', '0.2', '0.4', '0.6', '0.8'],
      seeds=['0', '1', '2'])

  def body(config, workdir):
    args = sweep()
    cells = sweeps.with_lambdas(sweeps.grid(
        args.objectives, args.train_corrs, args.noises, args.seeds),
                                args.lambdas)
    rows = run_sweep(config, workdir, sweeps.select_shard(cells, *args.shard),
                     args.vmap, args.max_members,
                     sweeps.lambda_columns(args.lambdas))
    print(f'{len(rows)} finished cells in {workdir}')

  cli.run_config_main('multi_digit.py', body)


if __name__ == '__main__':
  main()
