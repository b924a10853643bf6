#!/usr/bin/env bash
# The vMF-VAE against the Gaussian VAE on binarised MNIST at latent sizes 2, 5, 10, 20 (and the vMF
# on S^2, d = 3, for the sphere picture): train each with configs/vae/*.toml, evaluate the best
# checkpoint (test ELBO and importance-sampled log-likelihood, 500 samples per image), draw the
# pictures, and print a Markdown table for docs/results.md. (Su's fixed-kappa table; Davidson et
# al.'s learned-kappa S-VAE against the N-VAE is scripts/vae_hyperspherical_sweep.sh.)
#
#   KILN_DATA_DIR=../shared/datasets scripts/vae_sweep.sh [EPOCHS]     (default: the configs' 50)
#
# KILN=path/to/kiln picks the binary (default $CARGO_TARGET_DIR/release/kiln, else
# target/release/kiln, built first). Runs go under runs/vae-sweep/; the log of every command is runs/vae-sweep/sweep.log.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-50}
if [[ -z "${KILN:-}" ]]; then
    cargo build --release --quiet
    KILN=${CARGO_TARGET_DIR:-target}/release/kiln
fi
out=runs/vae-sweep
mkdir -p "$out"
log="$out/sweep.log"
rows=()
for spec in "vmf 2" "gaussian 2" "vmf 3" "vmf 5" "gaussian 5" "vmf 10" "gaussian 10" "vmf 20" "gaussian 20"; do
    read -r kind d <<<"$spec"
    name="$kind-d$d"
    rm -rf "${out:?}/$name"
    echo "== $name" | tee -a "$log"
    start=$(date +%s)
    "$KILN" train "configs/vae/mnist_$kind.toml" --set "model.latent.d=$d" --set "train.epochs=$epochs" \
        --set "output.dir=\"$out/$name\"" >>"$log" 2>&1
    took=$(($(date +%s) - start))
    run="$out/$name/run-001"
    eval_out=$("$KILN" eval "$run" | tee -a "$log")
    "$KILN" sample "$run" >>"$log"
    test_line=$(grep -E '^ *test:' <<<"$eval_out")
    value() { sed -E "s/.*$1 (-?[0-9.]+).*/\1/" <<<"$test_line"; }
    kappa=$([[ $kind == vmf ]] && grep -oE 'kappa = [0-9.]+' "$run/config.toml" | head -1 | cut -d' ' -f3 || echo "-")
    rows+=("| $kind | $d | $kappa | $(value log_likelihood) | $(value elbo) | $(value reconstruction) | $(value kl) | ${took}s |")
done
echo
echo "$epochs epochs each, batch 100, Adam 1e-3, MLP 784-256-128 (mirrored decoder), binarised MNIST test set:"
echo
echo "| latent | d | kappa | test log-likelihood (IS, 500) | test ELBO | reconstruction | KL | train + eval time |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
