#!/usr/bin/env bash
# The measured multi-digit reproduction of docs/results.md.
# Usage: bash docs/reproduce_multi_digit.sh OUT_DIR   (from the repository root)
set -euo pipefail
OUT=${1:?give an output directory}
COMMON="--vmap --noises=0,0.8 --train_corrs=0,0.9 --seeds=0,1,2 --config.num_epochs=20 --config.epoch_size=10000 --config.lr_scale=10"
FASHION="--config.dataset=fashion_mnist --config.source=idx --config.classes=0,1"
for obj in base cmi mi; do
  python -m experiments.multi_digit_sweep --workdir="$OUT/fashion_0_1" $COMMON $FASHION --objectives=$obj
done
for obj in base cmi mi; do
  python -m experiments.multi_digit_sweep --workdir="$OUT/mnist_embedded" $COMMON --config.source=embedded --objectives=$obj
done
# A longer budget (5,000 steps) at the headline cell.
python -m experiments.multi_digit_sweep --workdir="$OUT/fashion_0_1_headline_5k" --vmap \
  --noises=0.8 --train_corrs=0.9 --seeds=0,1,2 --objectives=base,cmi \
  --config.num_epochs=50 --config.epoch_size=10000 --config.lr_scale=10 $FASHION
# The paper's full budget (400 epochs, its learning rates) at the headline cell.
python -m experiments.multi_digit_sweep --workdir="$OUT/fashion_0_1_full" --vmap \
  --noises=0.8 --train_corrs=0.9 --seeds=0,1,2 --objectives=base,mi,cmi $FASHION
for d in fashion_0_1 mnist_embedded fashion_0_1_headline_5k fashion_0_1_full; do
  python -m experiments.plot_multi_digit --sweep_dir="$OUT/$d"
done
