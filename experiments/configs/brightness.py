"""Config of the item-and-brightness experiment (one continuous attribute).

  python -m experiments.brightness --workdir=/tmp/brightness \
      --config.objective=cmi --config.train_corr=0.9
"""

import ml_collections

from experiments import common
from experiments import configs
from experiments.configs import multi_digit


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Fashion-MNIST T-shirt/top vs Trouser, brightness correlated at 0.9."""
  config = ml_collections.ConfigDict()
  multi_digit.add_item_fields(config, 'fashion_mnist', (0, 1))
  common.add_model_fields(config)
  return configs.with_variants(config, variant, {'fast': multi_digit.FAST})
