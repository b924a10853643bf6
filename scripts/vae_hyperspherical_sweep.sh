#!/usr/bin/env bash
# Davidson et al. 2018's Table 1 on binarised MNIST (issue 32): the S-VAE (vMF posterior, kappa
# learned per image), the N-VAE (Gaussian) and Su's fixed-kappa vMF-VAE (kappa = 20) with d = 2, 5,
# 10, 20 latent degrees of freedom (the Gaussian on R^d, the sphere S^d in R^(d+1), as the authors'
# example code pairs them), several seeds each, from configs/vae/hyperspherical_{svae,nvae}.toml. Each run
# trains, keeps the checkpoint with the best validation ELBO, is evaluated on the test set (ELBO, the
# log-likelihood importance-sampled with 500 samples per image, and from the same samples the
# authors' TensorFlow example's figure, log_likelihood_one_decode) and draws its pictures (for the
# vMF runs also the histogram of kappa(x) and the per-image KL, pictures/kappa_*.{png,csv}). Prints
# a Markdown table of mean ± standard deviation over the seeds.
#
#   KILN_DATA_DIR=../shared/datasets scripts/vae_hyperspherical_sweep.sh [EPOCHS [WARMUP_EPOCHS]]
#
# Defaults: the configs' 500 epochs (with early stopping) and 100 warm-up epochs, the paper's
# setting. A shorter budget scales both, e.g. `... 100 20`.
# Environment: SEEDS (default "0 1 2") for d = 2 and 5, SEEDS_HIGH (default: SEEDS) for d = 10 and
# 20, FIXED_SEEDS (default "0"; empty for none) for the fixed-kappa rows, DIMS (default "2 5 10 20")
# the values of d, in that order, MODELS (default "svae nvae") the learned-kappa and Gaussian models
# to run at each d and seed (e.g. MODELS=svae for a longer S-VAE budget where the N-VAE stopped
# early anyway), JOBS (default 2) runs at a time, each on one thread
# (RAYON_NUM_THREADS=1 when JOBS > 1), KILN=path/to/kiln (default $CARGO_TARGET_DIR/release/kiln,
# else target/release/kiln, built first),
# OUT (default runs/hyperspherical) the directory of the runs. Runs go under OUT/NAME-dD-sS/ (an
# existing run with a result.txt is kept, so an interrupted sweep continues); the log of each is its
# NAME-dD-sS.log. A longer budget belongs in its own OUT, e.g.
#
#   OUT=runs/hyperspherical-500 DIMS="20 10" SEEDS="0 1" FIXED_SEEDS= scripts/vae_hyperspherical_sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-500}
warmup_epochs=${2:-100}
seeds=${SEEDS:-0 1 2}
seeds_high=${SEEDS_HIGH:-$seeds}
fixed_seeds=${FIXED_SEEDS-0}
dims=${DIMS:-2 5 10 20}
models=${MODELS:-svae nvae}
jobs=${JOBS:-2}
if [[ -z "${KILN:-}" ]]; then
    cargo build --release --quiet
    KILN=${CARGO_TARGET_DIR:-target}/release/kiln
fi
export KILN
out=${OUT:-runs/hyperspherical}
mkdir -p "$out"
steps_per_epoch=781 # 50,000 training digits in batches of 64

# One run: "model d seed" → $out/model-dD-sS/result.txt
# (model d seed log_likelihood elbo reconstruction kl best_step train_seconds
# log_likelihood_one_decode).
one() {
    local model=$1 d=$2 seed=$3 epochs=$4 warmup=$5 out=$6 threads=$7
    local name="$model-d$d-s$seed" dir="$out/$model-d$d-s$seed"
    [[ -f "$dir/result.txt" ]] && return 0
    rm -rf "$dir"
    # d counts the latent's degrees of freedom: the Gaussian's R^d, the sphere S^d in R^(d+1) (the
    # authors' example code compares a Z_DIM Gaussian with a Z_DIM + 1 vMF).
    local config=configs/vae/hyperspherical_svae.toml ambient=$((d + 1))
    local extra=()
    case $model in
        svae) ;;
        nvae) config=configs/vae/hyperspherical_nvae.toml ambient=$d ;;
        fixed20) extra=(--set model.latent.kappa=20) ;;
    esac
    # Each step only after the one before it succeeded (`set -e` does not hold left of `||`): a
    # training that was stopped or failed must not be evaluated and recorded as a result.
    {
        RAYON_NUM_THREADS=$threads "$KILN" train "$config" --set "model.latent.d=$ambient" --set "train.seed=$seed" \
            --set "train.epochs=$epochs" --set "model.kl_warmup_steps=$warmup" "${extra[@]}" \
            --set "output.dir=\"$dir\"" &&
            RAYON_NUM_THREADS=$threads "$KILN" eval "$dir/run-001" >"$dir/eval.txt" &&
            cat "$dir/eval.txt" &&
            RAYON_NUM_THREADS=$threads "$KILN" sample "$dir/run-001"
    } >"$out/$name.log" 2>&1 || { echo "$name failed: see $out/$name.log" >&2; return 1; }
    local line best
    line=$(grep -E '^ *test:' "$dir/eval.txt")
    value() { sed -E "s/.*$1 (-?[0-9.]+).*/\1/" <<<"$line"; }
    # Only a training that ran to its end (the budget or early stopping) is a result.
    best=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))
e = s["ending"]
if e not in ("Finished", "EarlyStopped"): sys.exit(f"{sys.argv[1]}: the training ended {e}, not a result")
print(s["best"]["step"], round(s["train_seconds"]))' "$dir/run-001/summary.json") || return 1
    echo "$model $d $seed $(value log_likelihood) $(value elbo) $(value reconstruction) $(value kl) $best" \
        "$(value log_likelihood_one_decode)" >"$dir/result.txt"
    echo "$name: $(cat "$dir/result.txt")" >&2
}
export -f one

threads=$([[ $jobs -gt 1 ]] && echo 1 || echo "${RAYON_NUM_THREADS:-0}")
[[ $threads == 0 ]] && threads=$(nproc)
{
    # In the order of DIMS (by default the paper's finding, d = 2 and 5, first).
    for d in $dims; do
        if [[ $d -le 5 ]]; then d_seeds=$seeds; else d_seeds=$seeds_high; fi
        for s in $d_seeds; do for m in $models; do echo "$m $d $s"; done; done
    done
    for d in $dims; do for s in $fixed_seeds; do echo "fixed20 $d $s"; done; done
} | xargs -P "$jobs" -L 1 bash -c 'one "$0" "$1" "$2" '"$epochs $((warmup_epochs * steps_per_epoch)) $out $threads"

python3 scripts/vae_hyperspherical_table.py "$out" "$epochs" "$warmup_epochs"
