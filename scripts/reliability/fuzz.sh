#!/usr/bin/env bash
# Fuzz the config parser and every data reader with cargo-fuzz (libFuzzer), SECONDS each (default 120).
# Needs a nightly toolchain and `cargo install cargo-fuzz`. Seeds: the configs/ folder and the
# malformed-input corpus (crates/kiln-train/tests/bad_input), and fuzz/seeds. Crashes land in fuzz/artifacts/<target>/;
# reproduce one with `cargo +nightly fuzz run -s none -O <target> <file>`.
# No sanitizer (-s none): the code under test is safe Rust, so what is sought is a panic (an index out
# of range, an overflow: the build keeps debug assertions), an abort, a hang or runaway memory.
#
#   scripts/reliability/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
SECONDS_EACH=${1:-120}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(config text cluener columns cmeee mnist sts bert tokenizer)
cd "$(dirname "$0")/../../fuzz"
BAD=../crates/kiln-train/tests/bad_input
seeds() {
    case $1 in
        config) echo ../configs $BAD/config ;;
        text) echo $BAD/text ;;
        cluener) echo $BAD/cluener ;;
        columns) echo $BAD/columns $BAD/conll ;;
        cmeee) echo $BAD/cmeee ;;
        sts) echo $BAD/stsb $BAD/sts_zh ;;
        tokenizer) echo seeds/tokenizer ;;
        *) echo ;;
    esac
}
status=0
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t: ${SECONDS_EACH} s"
    # shellcheck disable=SC2046
    if ! cargo +nightly fuzz run -s none -O "$t" "corpus/$t" $(seeds "$t") -- \
        -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
        > "corpus/$t.log" 2>&1; then
        echo "   FOUND a failure: $(grep -m1 -E 'panicked|ERROR' "corpus/$t.log")"
        ls "artifacts/$t" 2>/dev/null | sed 's/^/   /'
        status=1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "corpus/$t.log" | sed 's/^/   /'
done
exit $status
