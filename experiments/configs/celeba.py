"""Config of the correlated CelebA experiment (paper defaults).

Attributes are any K >= 2 of the 40 CelebA names (case-sensitive,
comma-separated); ``z_dim`` must be a multiple of K (e.g. 12 for K = 3).
"""

import ml_collections

from cmi_jax import objectives
from experiments import common
from experiments import configs

# The reference learning rates (paper notes), the same for every objective.
PAPER_OPTIM = {objective: {'lr': 1e-5, 'cls_lr': 1e-4, 'd_lr': 1e-4}
               for objective in objectives.names()}

# What the fast variant changes (before weak-supervision scaling).
FAST = {'num_epochs': 10, 'mi_every': 5, 'checkpoint_every': 5}
# Presets: the paper's task, and the group-robustness field's standard one
# (target Blond_Hair, spurious Male, the official splits as they are).
PRESETS = {'male_smiling': {'attributes': ('Male', 'Smiling'),
                            'correlation_mode': 'subsampled'},
           'blond_male': {'attributes': ('Blond_Hair', 'Male'),
                          'correlation_mode': 'natural'}}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's defaults, changed by comma-separated variants.

  ``fast`` applies :data:`FAST`; the others are :data:`PRESETS`, e.g.
  ``--config=experiments/configs/celeba.py:blond_male,fast``.
  """
  placeholder = ml_collections.config_dict.placeholder
  config = ml_collections.ConfigDict()
  config.attributes = ('Male', 'Smiling')
  config.source = 'auto'  # 'auto' | 'tfds' | 'files'
  config.tfds_data_dir = placeholder(str)  # a TFDS data dir with celeb_a
  config.celeba_dir = placeholder(str)  # the official files
  config.cache_dir = placeholder(str)  # None: ~/.cache/cmi_jax
  config.train_corr = 0.8
  # 'subsampled' (every split at train_corr) or 'natural' (the official
  # splits; only the test split sub-sampled).
  config.correlation_mode = 'subsampled'
  config.noise = 0.0  # occlusion threshold in [0, 1]; 0 means none
  config.occlusion_patch = 4
  # Of the uint8 images: 'device', 'host' (batches prefetched) or 'auto'
  # (the device if they fit in half of its memory).
  config.data_placement = 'auto'
  config.weak_supervision = 0.0
  config.weak_scaling = True  # batch and epochs x 1 / (1 - weak_supervision)
  config.weak_max_epochs = 2200
  common.add_model_fields(config)
  config.disentangle_weight = 10.0  # lambda (paper: 10 for CelebA)
  config.num_epochs = 200  # batch_size keeps its default, 100
  return configs.with_variants(config, variant, {'fast': FAST, **PRESETS})
