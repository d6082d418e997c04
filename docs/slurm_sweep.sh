#!/usr/bin/env bash
# The paper's multi-digit grid as a SLURM job array: N jobs share one sweep
# directory, job I trains shard I of N of the cells (--shard defaults to
# $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT). Finished cells are skipped
# and interrupted groups resume, so resubmitting the array continues it.
#
#   sbatch --array=0-8 docs/slurm_sweep.sh /shared/sweeps/fashion_grid
#
# Afterwards, on any machine that sees the directory:
#   python -m experiments.plot_multi_digit --sweep_dir=/shared/sweeps/fashion_grid
#
# Without SLURM, the same shards as a plain shell loop (N processes):
#   for i in 0 1 2; do
#     python -m experiments.multi_digit_sweep --workdir=DIR --shard=$i/3 ... &
#   done; wait
#SBATCH --job-name=cmi-grid
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
SWEEP_DIR=${1:?give the sweep directory}
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
python -m experiments.multi_digit_sweep --workdir="$SWEEP_DIR" --vmap \
  --config.dataset=fashion_mnist --config.source=idx --config.classes=0,1 \
  --config.eval_every=10 \
  --noises=0,0.2,0.4,0.6,0.8 --train_corrs=0,0.6,0.9 \
  --objectives=base,mi,cmi --seeds=0,1,2
