# End-to-end test of `gridlm plan`: the deployment guide's two DeepSeek-R1 cases on
# configs/deepseek-r1.json (text and --json, a bare config.json and a directory), a dense GGUF and
# a tiny DeepSeek checkpoint sized as stored, --verbose rejections, and bad input.
# Usage: test_plan.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
r1=$root/configs/deepseek-r1.json
require_files "$r1" "$models/SmolLM2-135M-Instruct.Q4_1.gguf"

# rec FILE WEIGHTS: "dp pp tp" of the recommendation record for WEIGHTS, "none" when nothing fits.
rec() {
    jq -r --arg w "$2" 'select(.record == "recommendation" and .weights == $w)
        | if .fits then "\(.dp) \(.pp) \(.tp)" else "none" end' "$1"
}
# check WHAT FILE FILTER: FILTER, run on every record of the JSON lines FILE, gives at least one value
# and only true ones (jq -s: jq 1.6's -e looks at the last input line alone).
check() {
    jq -e -s "[.[] | $3] | length > 0 and all" "$2" >/dev/null || fail "$1: $(jq -c -s "[.[] | $3]" "$2" | head -c 300)"
}
# expect_rec WHAT FILE WEIGHTS WANT
expect_rec() {
    local got
    got=$(rec "$2" "$3")
    [ "$got" = "$4" ] || fail "$1: $3 recommends '$got', expected '$4'"
}

# --- help --------------------------------------------------------------------------------------------
expect_rc 0 "--help" "$gridlm" plan --help
for opt in --model --nodes --ranks-per-node --mem-per-rank --weights --attention --kv-cache-dtype --min-kv-tokens \
    --step-tokens --overhead --json --verbose "exit status"; do
    grep -q -- "$opt" "$tmp/stdout" || fail "--help does not document $opt"
done
"$gridlm" --help | grep -q "^  plan " || fail "gridlm --help does not list plan"

# --- DeepSeek-R1 671B on 4 nodes x 2 ranks x 80 GB ---------------------------------------------------
case1=(--model "$r1" --nodes 4 --ranks-per-node 2 --mem-per-rank 80G --weights bf16,fp8,q4_k)
expect_rc 0 "R1 4x2x80G text" "$gridlm" plan "${case1[@]}"
grep -q "671.03 B parameters" "$tmp/stdout" || fail "R1: parameter count: $(head -c 300 "$tmp/stdout")"
grep -q "recommended: dp=1 pp=4 tp=2" "$tmp/stdout" || fail "R1 4x2x80G: no q4_k recommendation dp=1 pp=4 tp=2"
[ "$(grep -c "no grid fits" "$tmp/stdout")" = 2 ] || fail "R1 4x2x80G: bf16 and fp8 should not fit"
expect_rc 0 "R1 4x2x80G json" "$gridlm" plan "${case1[@]}" --json
cp "$tmp/stdout" "$tmp/case1.jsonl"
jq . "$tmp/case1.jsonl" >/dev/null || fail "R1 4x2x80G: --json output is not JSON lines"
[ "$(jq -r 'select(.record == "model") | .params' "$tmp/case1.jsonl")" = 671026419200 ] ||
    fail "R1: model record params"
expect_rec "R1 4x2x80G" "$tmp/case1.jsonl" bf16 none
expect_rec "R1 4x2x80G" "$tmp/case1.jsonl" fp8 none
expect_rec "R1 4x2x80G" "$tmp/case1.jsonl" q4_k "1 4 2"
check "R1 4x2x80G: q4_k leaves fewer than 163840 KV tokens per rank" "$tmp/case1.jsonl" \
    'select(.record == "recommendation" and .weights == "q4_k") | .free_kv_tokens_per_rank >= 163840'
# Every grid record: 8 ranks, tp inside a node, fits, the latent row of its stages' layers per token.
bad=$(jq -c 'select(.record == "grid") | select(.dp * .pp * .tp != 8 or .tp > 2 or (.fits | not)
    or .kv_bytes_per_token_per_rank != (.stages | min_by(.kv_tokens) | .kv_bytes_per_token)
    or ([.stages[] | .kv_bytes_per_token == (.layers[1] - .layers[0]) * 576 * 4] | all | not))' "$tmp/case1.jsonl")
[ -z "$bad" ] || fail "R1 4x2x80G: bad grid records: $(head -c 400 <<<"$bad")"
[ "$(jq -s 'map(select(.record == "grid")) | length' "$tmp/case1.jsonl")" = 2 ] ||
    fail "R1 4x2x80G: expected 2 fitting grids (q4_k pp=4 tp=2 and pp=8 tp=1)"

# --- DeepSeek-R1 on one node of 8 x 141 GB, from a directory ------------------------------------------
mkdir -p "$tmp/DeepSeek-R1"
cp "$r1" "$tmp/DeepSeek-R1/config.json"
expect_rc 0 "R1 1x8x141GB json" "$gridlm" plan --model "$tmp/DeepSeek-R1" --nodes 1 --ranks-per-node 8 \
    --mem-per-rank 141GB --weights bf16,fp8,q4_k --json
cp "$tmp/stdout" "$tmp/case2.jsonl"
[ "$(jq -r 'select(.record == "model") | .name' "$tmp/case2.jsonl")" = DeepSeek-R1 ] || fail "directory: model name"
expect_rec "R1 1x8x141GB" "$tmp/case2.jsonl" bf16 none
expect_rec "R1 1x8x141GB" "$tmp/case2.jsonl" fp8 "1 1 8"
expect_rec "R1 1x8x141GB" "$tmp/case2.jsonl" q4_k "2 1 4"
check "R1 1x8x141GB: fp8 KV figures" "$tmp/case2.jsonl" \
    'select(.record == "recommendation" and .weights == "fp8") | .kv_bytes_per_token_per_rank == 61 * 576 * 4
    and .free_kv_tokens_per_rank >= 163840'
# Data-parallel attention: the same grid, tp times a rank's tokens in a replica.
expect_rc 0 "R1 --attention dp" "$gridlm" plan --model "$r1" --ranks-per-node 8 --mem-per-rank 141GB --weights fp8 \
    --attention dp --kv-cache-dtype bf16 --json
check "R1 --attention dp" "$tmp/stdout" 'select(.record == "recommendation") | .dp == 1 and .pp == 1 and .tp == 8
    and .kv_tokens_total == 8 * .free_kv_tokens_per_rank and .kv_bytes_per_token_per_rank == 61 * 576 * 2'
# A KV target no grid meets: the reason says which grid comes closest.
expect_rc 0 "R1 huge target" "$gridlm" plan --model "$r1" --ranks-per-node 8 --mem-per-rank 141GB --weights fp8 \
    --min-kv-tokens 100000000 --json
check "huge target" "$tmp/stdout" \
    'select(.record == "recommendation") | (.fits | not) and (.reason | test("lower --min-kv-tokens"))'

# --- --verbose: grids that do not fit and grids the rules refuse --------------------------------------
expect_rc 0 "R1 verbose" "$gridlm" plan "${case1[@]}" --json --verbose
[ "$(jq -s 'map(select(.record == "rejected")) | length' "$tmp/stdout")" = 9 ] ||
    fail "verbose: expected 3 rejected grids per weight format"
check "verbose: the tp=4 rejection does not say why" "$tmp/stdout" 'select(.record == "rejected" and .tp == 4 and .pp == 2)
    | .reason | test("tp=4 does not divide the 2 ranks per node")'
check "verbose: bf16 pp=8 why_not" "$tmp/stdout" 'select(.record == "grid" and .weights == "bf16" and .dp == 1 and .pp == 8)
    | (.fits | not) and (.why_not | test("exceed"))'
expect_rc 0 "R1 verbose text" "$gridlm" plan "${case1[@]}" --verbose
grep -q "rejected dp=1 pp=1 tp=8: tp=8 does not divide the 2 ranks per node" "$tmp/stdout" ||
    fail "verbose text: no rejection line for tp=8"

# --- a dense model (GGUF, sized as stored) and a tiny DeepSeek checkpoint ----------------------------
expect_rc 0 "SmolLM2" "$gridlm" plan --model "$models/SmolLM2-135M-Instruct.Q4_1.gguf" --nodes 1 \
    --ranks-per-node 3 --mem-per-rank 1GiB --json --verbose
check "SmolLM2" "$tmp/stdout" 'select(.record == "recommendation") | .weights == "stored" and .fits and .dp == 3'
check "SmolLM2 tp=3: one KV head of 64 per rank and layer" "$tmp/stdout" \
    'select(.record == "grid" and .tp == 3) | .kv_bytes_per_token_per_rank == 30 * 2 * 1 * 64 * 4'
expect_rc 0 "SmolLM2 tp=2" "$gridlm" plan --model "$models/SmolLM2-135M-Instruct.Q4_1.gguf" --ranks-per-node 2 \
    --mem-per-rank 1GiB --json --verbose
check "SmolLM2: tp=2 not rejected for its 9 heads" "$tmp/stdout" \
    'select(.record == "rejected" and .tp == 2) | .reason | test("does not divide the model.s 9 attention heads")'
tiny=$root/tests/reference/golden/tiny-deepseek-v3-hf
expect_rc 0 "tiny V3 stored" "$gridlm" plan --model "$tiny" --ranks-per-node 4 --mem-per-rank 100M --json
check "tiny V3" "$tmp/stdout" 'select(.record == "recommendation") | .fits and .dp == 4'
# --weights stored sums the tensors' bytes as the safetensors header gives them.
header_len=$(od -An -t u8 -N 8 "$tiny/model.safetensors" | tr -d ' ')
file_bytes=$(tail -c +9 "$tiny/model.safetensors" | head -c "$header_len" |
    jq '[to_entries[] | select(.key != "__metadata__") | .value.data_offsets | .[1] - .[0]] | add')
[ "$(jq -r 'select(.record == "recommendation") | .model_bytes' "$tmp/stdout")" = "$file_bytes" ] ||
    fail "tiny V3: --weights stored is not the safetensors' $file_bytes tensor bytes"

# --- bad input --------------------------------------------------------------------------------------
expect_rc 2 "unknown --weights" "$gridlm" plan --model "$r1" --ranks-per-node 8 --mem-per-rank 80G --weights q3_k
expect_stderr "unknown --weights" "--weights 'q3_k' is not a weight format; accepted: f32, f16, bf16, fp8, q4_0"
expect_rc 2 "bad --weights list" "$gridlm" plan --model "$r1" --ranks-per-node 8 --mem-per-rank 80G --weights bf16,,fp8
expect_stderr "bad --weights list" "--weights '' is not a weight format"
for mem in 80X GB -5G 0 1..2G 80GiBs; do
    expect_rc 2 "--mem-per-rank $mem" "$gridlm" plan --model "$r1" --ranks-per-node 8 --mem-per-rank="$mem"
    expect_stderr "--mem-per-rank $mem" "--mem-per-rank '$mem' is not a memory size"
    expect_stderr "--mem-per-rank $mem" "80GiB"
done
expect_rc 2 "missing --mem-per-rank" "$gridlm" plan --model "$r1" --ranks-per-node 8
expect_stderr "missing --mem-per-rank" "--mem-per-rank is required"
expect_rc 2 "--nodes 0" "$gridlm" plan --model "$r1" --nodes 0 --ranks-per-node 8 --mem-per-rank 80G
expect_rc 2 "--attention" "$gridlm" plan --model "$r1" --ranks-per-node 8 --mem-per-rank 80G --attention ring
expect_stderr "--attention" "--attention 'ring' is not one of heads, dp"
expect_rc 2 "--kv-cache-dtype" "$gridlm" plan --model "$r1" --ranks-per-node 8 --mem-per-rank 80G --kv-cache-dtype q8_0
expect_stderr "--kv-cache-dtype" "f32, bf16 or f16"
expect_rc 2 "--overhead" "$gridlm" plan --model "$r1" --ranks-per-node 8 --mem-per-rank 80G --overhead 120%
expect_stderr "--overhead" "--overhead '120%'"
expect_rc 2 "stored without weights" "$gridlm" plan --model "$r1" --ranks-per-node 8 --mem-per-rank 80G --weights stored
expect_stderr "stored without weights" "--weights stored needs a checkpoint with weights"
# A missing model is a fatal error (exit 1), as for every other command; the message names it.
expect_rc 1 "missing model" "$gridlm" plan --model "$tmp/none.json" --ranks-per-node 8 --mem-per-rank 80G
expect_stderr "missing model" "model '$tmp/none.json' does not exist (give a .gguf, a gridlm .h5"
expect_rc 1 "directory without config.json" "$gridlm" plan --model "$tmp" --ranks-per-node 8 --mem-per-rank 80G
expect_stderr "directory without config.json" "no config.json in $tmp"
finish test_plan
