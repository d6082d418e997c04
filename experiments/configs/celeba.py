r"""Config of the correlated CelebA experiment (paper defaults).

  python -m experiments.celeba --workdir=/tmp/celeba \
      --config.celeba_dir=/data/celeba \
      [--config.attributes=Male,Smiling,Eyeglasses --config.train_corr=0.6 \
       --config.objective=base --config.weak_supervision=0.9 ...]

Attributes are any K >= 2 of the 40 CelebA names (case-sensitive, see
``cmi_jax.data.celeba_files.CELEBA_ATTRIBUTES``), given comma-separated:
``--config.attributes=Male,Smiling,Eyeglasses`` (the tuple form
``--config.attributes="('Male','Eyeglasses')"`` works too). ``z_dim`` must
be a multiple of K (10 splits into 2 or 5 subspaces; use e.g.
``--config.z_dim=12`` for K = 3).

Defaults are the paper's: Male and Smiling, training correlation 0.8 (the
strongest of the paper's sweep c = 0, 0.2, ..., 0.8, and the correlation of
its weak-supervision experiment), objective cmi with lambda = 10, 200 epochs
of batch 100, lr 1e-5, cls_lr 1e-4, D_lr 1e-4 for every objective, one head
step per step, the MLP encoder (50-50 hidden) on 64x64x3 images, no
occlusion.

Weak supervision: ``--config.weak_supervision=0.9`` hides 90 % of each
attribute's training labels; with ``weak_scaling`` (default) the batch size
and the number of epochs are multiplied by ``1 / (1 - 0.9)`` (epochs at most
``weak_max_epochs`` = 2200, the paper's cap), so every run sees about the
same number of labels per step and takes the same number of steps.

The ``fast`` variant (``--config=experiments/configs/celeba.py:fast``)
shrinks the run for a laptop (see ``FAST``); flags after it still win.

``--config.data_placement=auto|device|host``: where the uint8 images live.
``device`` gathers batches on the device inside the compiled epoch;
``host`` keeps them in host memory and a background thread prefetches
batches to the device; ``auto`` (default) takes the device when the images
fit in half of its memory (always on a CPU) and logs its choice.
"""

import ml_collections

from experiments import common
from cmi_jax import objectives

# The reference learning rates for CelebA: the same for every objective
# (paper notes, "Reference hyper-parameters"; the reference scripts pass them
# to Base runs too).
PAPER_OPTIM = {objective: {'lr': 1e-5, 'cls_lr': 1e-4, 'd_lr': 1e-4}
               for objective in objectives.names()}

# What the fast variant changes (before weak-supervision scaling).
FAST = {'num_epochs': 10, 'mi_every': 5, 'checkpoint_every': 5}
# Presets: the paper's task, and the group-robustness field's standard one
# (target Blond_Hair, spurious Male, the official splits as they are).
PRESETS = {
    'male_smiling': {'attributes': ('Male', 'Smiling'),
                     'correlation_mode': 'subsampled'},
    'blond_male': {'attributes': ('Blond_Hair', 'Male'),
                   'correlation_mode': 'natural'},
}
VARIANTS = ('fast',) + tuple(PRESETS)


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's defaults, changed by comma-separated variants.

  ``fast`` applies :data:`FAST`; ``male_smiling`` (the paper's task) and
  ``blond_male`` (the group-robustness benchmark: natural correlation) are
  the :data:`PRESETS`, e.g. ``--config=experiments/configs/celeba.py:blond_male,fast``.
  """
  chosen = [v for v in variant.split(',') if v]
  unknown = [v for v in chosen if v not in VARIANTS]
  if unknown:
    raise ValueError(f'unknown config variant {unknown[0]!r}; choose from '
                     f'{VARIANTS} (comma-separated, e.g. celeba.py:fast).')
  placeholder = ml_collections.config_dict.placeholder
  config = ml_collections.ConfigDict()
  # Data.
  config.attributes = ('Male', 'Smiling')
  config.source = 'auto'  # 'auto' | 'tfds' | 'files'
  config.tfds_data_dir = placeholder(str)  # a TFDS data dir with celeb_a
  config.celeba_dir = placeholder(str)  # the official files (see data.celeba)
  config.cache_dir = placeholder(str)  # None: ~/.cache/cmi_jax
  config.train_corr = 0.8
  # 'subsampled' (the paper: every split sub-sampled to train_corr) or
  # 'natural' (official splits as they are; only the test split sub-sampled).
  config.correlation_mode = 'subsampled'
  config.noise = 0.0  # occlusion threshold in [0, 1]; 0 means none
  config.occlusion_patch = 4
  config.data_placement = 'auto'  # 'auto' | 'device' | 'host'
  # Weak supervision: fraction of each attribute's train labels removed.
  config.weak_supervision = 0.0
  config.weak_scaling = True  # batch and epochs x 1 / (1 - weak_supervision)
  config.weak_max_epochs = 2200
  common.add_model_fields(config)
  config.disentangle_weight = 10.0  # lambda (paper: 10 for CelebA)
  config.num_epochs = 200
  config.batch_size = 100
  for name in chosen:
    config.update(FAST if name == 'fast' else PRESETS[name])
  return config
