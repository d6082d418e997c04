"""Config of the correlated multi-digit MNIST experiment (paper defaults).

  python -m experiments.multi_digit_mnist --workdir=/tmp/md \
      --config.objective=cmi --config.train_corr=0.9 --config.noise=0.8

The ``fast`` variant shrinks the run for a laptop (see ``FAST``), applied
when the config is built, so flags given after it still win:

  python -m experiments.multi_digit_mnist --workdir=/tmp/md \
      --config=experiments/configs/multi_digit.py:fast --config.num_epochs=5
"""

import ml_collections

from experiments import common

# The reference learning rates (paper notes, "Reference hyper-parameters").
PAPER_OPTIM = {
    'base': {'lr': 1e-4, 'cls_lr': 1e-3, 'd_lr': 1e-4},
    'mi': {'lr': 1e-5, 'cls_lr': 1e-4, 'd_lr': 1e-4},
    'cmi': {'lr': 1e-5, 'cls_lr': 1e-4, 'd_lr': 1e-4},
    'mmd_mi': {'lr': 1e-5, 'cls_lr': 1e-4, 'd_lr': 1e-4},
    'mmd_cmi': {'lr': 1e-5, 'cls_lr': 1e-4, 'd_lr': 1e-4},
}

# What the fast variant changes.
FAST = {'num_epochs': 30, 'mi_every': 10, 'checkpoint_every': 10}
VARIANTS = ('', 'fast')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's defaults; ``variant='fast'`` applies :data:`FAST`."""
  if variant not in VARIANTS:
    raise ValueError(f'unknown config variant {variant!r}; choose one of '
                     f'{VARIANTS[1:]} (multi_digit.py:fast) or none.')
  config = ml_collections.ConfigDict()
  # Data.
  config.dataset = 'mnist'  # or 'fashion_mnist'
  config.source = 'auto'  # 'auto' | 'tfds' | 'idx' | 'embedded'
  config.tfds_data_dir = ml_collections.config_dict.placeholder(str)
  config.manual_dir = ml_collections.config_dict.placeholder(str)
  config.classes = (3, 8)
  config.num_digits = 2
  config.train_corr = 0.9
  config.noise = 0.8
  config.patch = 4
  # Training samples per epoch; None is the paper's rule (as many as the
  # split has images of the chosen classes). The embedded 5k-digit source
  # has 600 such images: --config.epoch_size=10000 gives it the step budget
  # of full MNIST.
  config.epoch_size = ml_collections.config_dict.placeholder(int)
  common.add_model_fields(config)
  config.disentangle_weight = 1.0  # lambda (paper: 1 for multi-digit MNIST)
  # The images are gray in 3 identical channels (data/multi_digit.py): the
  # same model as the paper's 3-channel MLP, ~2.5-3x faster first layer.
  config.identical_channels = True
  if variant == 'fast':
    config.update(FAST)
  return config
