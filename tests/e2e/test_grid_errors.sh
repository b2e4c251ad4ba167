# Grid start-up errors: a wrong world size, a tp the heads do not allow, too many stages, bad
# --pp-layers, an unwritable output. Every rank stops (the ones that found the problem say so,
# naming their rank), the job exits non-zero and nothing hangs.
# Usage: test_grid_errors.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
model=$models/SmolLM2-135M-Instruct.Q4_1.gguf
require_files "$model"
printf 'Hello\n' >"$tmp/p.txt"
run() {  # run RANKS ARGS...  (MODEL overrides the model)
    local ranks=$1
    shift
    timeout 120 mpirun -n "$ranks" --oversubscribe "$gridlm" generate --threads 1 -q --model "${MODEL:-$model}" \
        --prompts "$tmp/p.txt" --output "$tmp/o.jsonl" "$@"
}
# ranks_reporting N WHAT TEXT: N distinct ranks printed an error line containing TEXT.
ranks_reporting() {
    local n
    n=$(grep -F -- "$3" "$tmp/stderr" | grep -o 'rank [0-9]* of' | sort -u | wc -l)
    [ "$n" = "$1" ] || fail "$2: $n ranks reported '$3', expected $1: $(head -c 600 "$tmp/stderr")"
}

expect_rc 1 "world size 3 for dp=2" run 3 --dp 2
ranks_reporting 3 "world size" "needs 2 ranks, but the job has 3"
expect_rc 1 "tp=2 with 9 heads" run 2 --tp 2
ranks_reporting 2 "tp=2" "tp=2 does not divide the model's 9 attention heads"
expect_rc 1 "pp=31 with 30 layers" run 2 --pp 31 --dp 1 --tp 1
ranks_reporting 2 "pp=31" "needs 31 ranks, but the job has 2"
# More stages than layers: the 2-layer random model on 3 stages.
expect_rc 0 "convert tiny" "$gridlm" convert --from "$(dirname "$0")/../reference/golden/tiny-qwen2-hf" --to "$tmp/tiny.h5"
MODEL=$tmp/tiny.h5 expect_rc 1 "pp larger than the layers" run 3 --pp 3
ranks_reporting 3 "pp=3" "pp=3 is larger than the model's 2 layers"
expect_rc 1 "--pp-layers sum" run 2 --pp 2 --pp-layers 10,10
ranks_reporting 2 "--pp-layers sum" "--pp-layers adds up to 20 layers; the model has 30"
expect_rc 1 "--pp-layers count" run 2 --pp 2 --pp-layers 10,10,10
expect_stderr "--pp-layers count" "--pp-layers lists 3 stages but pp=2"
expect_rc 2 "--pp-layers not numbers" run 2 --pp 2 --pp-layers ten,twenty
expect_stderr "--pp-layers not numbers" "'ten' is not a number"
expect_rc 2 "--tp 0" run 1 --tp 0
# Only the writer rank opens the output; the others stop with it.
expect_rc 1 "unwritable output" timeout 120 mpirun -n 2 --oversubscribe "$gridlm" generate --threads 1 -q \
    --model "$model" --prompts "$tmp/p.txt" --output "$tmp/no/such/dir/o.jsonl" --pp 2
ranks_reporting 1 "unwritable output" "directory"
[ -e "$tmp/o.jsonl" ] && fail "a failed start-up wrote an output file"
finish test_grid_errors
