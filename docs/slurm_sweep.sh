#!/usr/bin/env bash
# The paper's multi-digit grid as a SLURM job array: N workers share one sweep
# directory. Every worker runs the same command over the whole grid
# (--shard=0/1); a worker trains a group only while it holds the locks of its
# cells, passes over groups another worker holds and, once nothing is left to
# claim, waits for them, taking over the cells of a worker that died. A
# resubmitted or double-submitted array therefore trains each cell once.
#
#   sbatch --array=0-8 docs/slurm_sweep.sh /shared/sweeps/fashion_grid
#
# Preemption: --signal=B:USR1@120 makes SLURM send SIGUSR1 to this script two
# minutes before the time limit (or a preemption); the script passes it on to
# python, which finishes the step (host-fed data) or compiled epoch (device
# data) in flight, saves its checkpoint there and exits with status 75; the script then requeues the task, which resumes where
# it stopped. SIGTERM and SIGINT are handled the same way; a second signal
# ends the process at once and the previous checkpoint stays the newest.
#
# Afterwards, on any machine that sees the directory:
#   python -m experiments.plot_multi_digit --sweep_dir=/shared/sweeps/fashion_grid
#
# Without SLURM, the same command started N times shares the cells:
#   for i in 0 1 2; do
#     python -m experiments.multi_digit_sweep --workdir=DIR --shard=0/1 ... &
#   done; wait
#SBATCH --job-name=cmi-grid
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --output=slurm-%A_%a.out
set -uo pipefail
SWEEP_DIR=${1:?give the sweep directory}
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
python -m experiments.multi_digit_sweep --workdir="$SWEEP_DIR" --vmap \
  --shard=0/1 \
  --config.dataset=fashion_mnist --config.source=idx --config.classes=0,1 \
  --config.eval_every=10 \
  --noises=0,0.2,0.4,0.6,0.8 --train_corrs=0,0.6,0.9 \
  --objectives=base,mi,cmi --seeds=0,1,2 &
worker=$!
trap 'kill -USR1 "$worker"' USR1 TERM
wait "$worker"; status=$?
# A trapped signal ends the first wait early: wait again for the save.
if kill -0 "$worker" 2>/dev/null; then wait "$worker"; status=$?; fi
if [[ $status -eq 75 && -n "${SLURM_JOB_ID:-}" ]]; then
  scontrol requeue "${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}${SLURM_ARRAY_TASK_ID:+_$SLURM_ARRAY_TASK_ID}"
fi
exit "$status"
