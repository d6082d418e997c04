r"""The item-and-brightness sweep: objective x train correlation x noise x seed.

  python -m experiments.brightness_sweep --workdir=/tmp/brightness_sweep \
      [--objectives=base,cmi,hscic --train_corrs=0.9 --noises=0.8 \
       --seeds=0,1,2 --lambdas=1,10 --vmap --config.num_epochs=100 ...]

Each cell is a run of :mod:`experiments.brightness` in
``workdir/<objective>/corr<c>_noise<n>/seed<s>`` (``lambda<l>/`` first with
``--lambdas``); finished cells are skipped. The rows of every finished cell,
with the brightness head's ``mse`` and ``r2``, go to ``summary.json``.
"""

from experiments import brightness
from experiments import driver

if __name__ == '__main__':
  driver.sweep_main(brightness.SPEC, train_corrs=['0.9'], noises=['0.8'],
                    seeds=['0', '1', '2'])
