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

from experiments import driver
from experiments import multi_digit_mnist

if __name__ == '__main__':
  driver.sweep_main(multi_digit_mnist.SPEC, train_corrs=['0', '0.6', '0.9'],
                    noises=['0', '0.2', '0.4', '0.6', '0.8'],
                    seeds=['0', '1', '2'])
