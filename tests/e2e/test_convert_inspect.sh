# End-to-end test of `gridlm convert` and `gridlm inspect`: both GGUF models, the DeepSeek head
# (vocabulary only) and the tiny HF checkpoints to .h5, checked with inspect, h5ls and h5dump;
# block-quantised checkpoints (format version 2: GGUF blocks kept as they are, quantised targets
# with fallbacks and error lines) and `gridlm generate` giving the same text from the kept .h5 as
# from the .gguf; bad inputs; prints timings and sizes. Usage: test_convert_inspect.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
golden=$(cd "$(dirname "$0")/../reference/golden" && pwd)
smol=$models/SmolLM2-135M-Instruct.Q4_1.gguf
qwen=$models/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf
r1=$models/DeepSeek-R1-Distill-Qwen-7B.head.gguf
. "$(dirname "$0")/lib.sh"
require_files "$smol" "$qwen" "$r1"
expect_out() {  # expect_out DESCRIPTION FILE PATTERN (extended regex)
    grep -qE -- "$3" "$2" || fail "$1: no line matching /$3/ in $2"
}
report=""
convert() {  # convert NAME ARGS...: runs gridlm convert, records time and size
    local name=$1
    shift
    local t0 t1
    t0=$(date +%s.%N)
    expect_rc 0 "convert $name" "$gridlm" convert "$@"
    t1=$(date +%s.%N)
    cp "$tmp/stdout" "$tmp/$name.convert.out"
    local out=${*: -1}
    for ((i = 1; i <= $#; i++)); do [ "${!i}" = "--to" ] && { j=$((i + 1)); out=${!j}; }; done
    local size
    size=$(stat -c %s "$out" 2>/dev/null || echo 0)
    report+=$(printf '%-28s %8.2f s  %12d bytes  %s' "$name" "$(awk "BEGIN { print $t1 - $t0 }")" "$size" "$*")$'\n'
}

# --- conversions ----------------------------------------------------------------------------------
convert smollm2-f32 --from "$smol" --to "$tmp/smol.h5" --dtype f32
convert qwen-bf16 --from "$qwen" --to "$tmp/qwen.h5" --dtype bf16
convert r1-vocab-only --from "$r1" --to "$tmp/r1.h5" --vocab-only
convert tiny-hf-auto --from "$golden/tiny-qwen2-hf" --to "$tmp/tiny.h5"
convert tiny-sharded-bf16-auto --from "$golden/tiny-qwen2-hf-sharded-bf16" --to "$tmp/tiny16.h5"
convert h5-to-h5-f16 --from "$tmp/tiny.h5" --to "$tmp/tiny-f16.h5" --dtype f16 -q
expect_out "smollm2 summary" "$tmp/smollm2-f32.convert.out" "272 tensors, 513\.1 MiB of f32 tensor data"
expect_out "r1 summary" "$tmp/r1-vocab-only.convert.out" "vocabulary only, 152064 tokens"
expect_out "tiny auto dtype" "$tmp/tiny-hf-auto.convert.out" "27 tensors, .* of f32 tensor data"
expect_out "sharded auto dtype" "$tmp/tiny-sharded-bf16-auto.convert.out" "27 tensors, .* of bf16 tensor data"
convert smollm2-keep --from "$smol" --to "$tmp/smol-keep.h5" --dtype keep
convert smollm2-auto --from "$smol" --to "$tmp/smol-auto.h5" -q
convert smollm2-q4_k --from "$smol" --to "$tmp/smol-q4k.h5" --dtype q4_k -q
convert tiny-q8_0 --from "$golden/tiny-qwen2-hf" --to "$tmp/tiny-q8.h5" --dtype q8_0 -q
convert h5-keep --from "$tmp/smol-q4k.h5" --to "$tmp/smol-q4k-copy.h5" --dtype keep -q
expect_out "keep summary" "$tmp/smollm2-keep.convert.out" "272 tensors, 92\.1 MiB of tensor data \(f32: 61, q4_1: 210, q8_0: 1\)"
expect_out "keep is exact" "$tmp/smollm2-keep.convert.out" "^conversion error: none; all 272 tensors stored exactly"
expect_out "auto keeps GGUF blocks" "$tmp/smollm2-auto.convert.out" "q4_1: 210"
# q4_k: down_proj (1536 columns) is q4_k; 576-column rows fall back to q5_0; the tied embedding is
# the LM head, q8_0 as llama.cpp (576 is not whole 256-blocks) and already q8_0 in the GGUF.
expect_out "q4_k down_proj" "$tmp/smollm2-q4_k.convert.out" \
    "^  model\.layers\.0\.mlp\.down_proj\.weight +Q4_1 -> q4_k +rel RMSE +[0-9.]+ %  max \|err\| [0-9.e-]+$"
expect_out "q4_k fallback" "$tmp/smollm2-q4_k.convert.out" \
    "^  model\.layers\.0\.self_attn\.q_proj\.weight +Q4_1 -> q5_0 .*\(q4_k fallback: 576 columns are not whole 256-blocks\)$"
expect_out "q4_k head" "$tmp/smollm2-q4_k.convert.out" "^  model\.embed_tokens\.weight +Q8_0 -> q8_0 +exact +\(LM head"
expect_out "q4_k total" "$tmp/smollm2-q4_k.convert.out" \
    "^conversion error: 210 tensors changed, relative RMSE [0-9.]+ % over all their values, max \|err\| [0-9.e-]+; 62 tensors stored exactly$"
expect_out "q4_k summary" "$tmp/smollm2-q4_k.convert.out" "\(f32: 61, q4_k: 30, q5_0: 180, q8_0: 1\)"
expect_out "tiny q8_0 total" "$tmp/tiny-q8_0.convert.out" "^conversion error: [0-9]+ tensors changed, relative RMSE 0\.[0-9]+ %"
expect_out "h5 keep copies blocks" "$tmp/h5-keep.convert.out" "^conversion error: none; all 272 tensors stored exactly"
for f in smol qwen r1 tiny tiny16 tiny-f16 smol-keep smol-auto smol-q4k tiny-q8 smol-q4k-copy; do
    [ -f "$tmp/$f.h5.tmp" ] && fail "$f.h5.tmp left behind"
done

# --- inspect ----------------------------------------------------------------------------------------
inspect() {  # inspect NAME FILE: text and JSON to $tmp/NAME.txt / .json
    expect_rc 0 "inspect $1" "$gridlm" inspect "$2"
    cp "$tmp/stdout" "$tmp/$1.txt"
    expect_rc 0 "inspect --json $1" "$gridlm" inspect --json "$2"
    cp "$tmp/stdout" "$tmp/$1.json"
}
inspect smol "$tmp/smol.h5"
expect_out "smol format" "$tmp/smol.txt" "gridlm-checkpoint version 1, with weights"
expect_out "smol arch" "$tmp/smol.txt" "^  arch +llama$"
expect_out "smol layers" "$tmp/smol.txt" "^  n_layer +30$"
expect_out "smol tied" "$tmp/smol.txt" "^  tied_embeddings +true$"
expect_out "smol pre" "$tmp/smol.txt" "^  pre +smollm$"
expect_out "smol q_proj" "$tmp/smol.txt" "model\.layers\.29\.self_attn\.q_proj\.weight +\[576, 576\] +f32 +1327104  from Q4_1"
expect_out "smol chat template" "$tmp/smol.txt" "chat_template +chatml"
expect_out "smol totals" "$tmp/smol.txt" "^total +272 tensors"
jq -e '.format_version == 1 and .vocab_only == false and .config.n_embd == 576 and .config.n_head_kv == 3 and
    .tokenizer.n_tokens == 49152 and .tokenizer.add_bos == false and (.tensors | length) == 272 and
    .totals.bytes == 538060032 and ([.tensors[] | select(.dtype != "f32")] | length) == 0' "$tmp/smol.json" >/dev/null ||
    fail "smol inspect --json: unexpected content"

inspect qwen "$tmp/qwen.h5"
jq -e '.config.arch == "qwen2" and .config.attn_bias and .config.n_vocab == 151936 and .config.rope_theta == 1000000 and
    .tokenizer.pre == "qwen2" and .tokenizer.eos != "" and (.tensors | length) == 291 and
    all(.tensors[]; .dtype == "bf16") and
    (.tensors[] | select(.name == "model.layers.0.mlp.down_proj.weight") | .shape == [896, 4864] and
        .source_type == "Q6_K" and .bytes == 8716288)' "$tmp/qwen.json" >/dev/null ||
    fail "qwen inspect --json: unexpected content"

inspect r1 "$tmp/r1.h5"
expect_out "r1 vocab only" "$tmp/r1.txt" "version 1, vocabulary only"
expect_out "r1 pre" "$tmp/r1.txt" "^  pre +deepseek-r1-qwen$"
expect_out "r1 bos" "$tmp/r1.txt" "^  bos_id +151646 "
expect_out "r1 template" "$tmp/r1.txt" "chat_template +deepseek-r1"
jq -e '.vocab_only and .config.n_layer == 28 and .tokenizer.n_tokens == 152064 and .tokenizer.add_bos and
    (.tensors | length) == 0' "$tmp/r1.json" >/dev/null || fail "r1 inspect --json: unexpected content"

inspect tiny "$tmp/tiny.h5"
jq -e '.config.n_vocab == 512 and .config.head_dim == 16 and .tokenizer.pre == "qwen2" and .tokenizer.bos_id == 508 and
    .tokenizer.eos == "<|im_end|>" and .tokenizer.token_types.control == 3 and
    .tokenizer.token_types.user_defined == 1 and (.tensors | length) == 27' "$tmp/tiny.json" >/dev/null ||
    fail "tiny inspect --json: unexpected content"
inspect tiny16 "$tmp/tiny16.h5"
jq -e 'all(.tensors[]; .dtype == "bf16" and .source_type == "BF16")' "$tmp/tiny16.json" >/dev/null ||
    fail "tiny16: tensors are not bf16 from BF16"

# --- block-quantised checkpoints (format version 2) -------------------------------------------------
inspect smol-keep "$tmp/smol-keep.h5"
expect_out "keep format" "$tmp/smol-keep.txt" "gridlm-checkpoint version 2, with weights"
expect_out "keep q_proj" "$tmp/smol-keep.txt" "model\.layers\.29\.self_attn\.q_proj\.weight +\[576, 576\] +q4_1 +207360  from Q4_1"
jq -e '.format_version == 2 and (.tensors | length) == 272 and .totals.by_dtype == {"f32": 61, "q4_1": 210, "q8_0": 1} and
    (.tensors[] | select(.name == "model.embed_tokens.weight") | .dtype == "q8_0" and .shape == [49152, 576] and
        .bytes == 30081024)' "$tmp/smol-keep.json" >/dev/null || fail "smol-keep inspect --json: unexpected content"
inspect smol-q4k "$tmp/smol-q4k.h5"
jq -e '.totals.by_dtype == {"f32": 61, "q4_k": 30, "q5_0": 180, "q8_0": 1} and
    (.tensors[] | select(.name == "model.layers.3.mlp.down_proj.weight") | .dtype == "q4_k" and .bytes == 497664)' \
    "$tmp/smol-q4k.json" >/dev/null || fail "smol-q4k inspect --json: unexpected content"
inspect smol-q4k-copy "$tmp/smol-q4k-copy.h5"
[ "$(jq -c '[.tensors[] | [.name, .dtype, .bytes]]' "$tmp/smol-q4k.json")" = \
    "$(jq -c '[.tensors[] | [.name, .dtype, .bytes]]' "$tmp/smol-q4k-copy.json")" ] ||
    fail "h5 -> h5 keep: tensor types or sizes changed"
# Plain HDF5 tools see a block tensor as [rows, row bytes] of uint8 with its logical shape attribute.
h5ls -r "$tmp/smol-keep.h5" >"$tmp/keep.h5ls" || fail "h5ls keep"
expect_out "h5ls block dataset" "$tmp/keep.h5ls" "^/tensors/model\.layers\.0\.self_attn\.q_proj\.weight Dataset \{576, 360\}$"
h5dump -A -d /tensors/model.layers.0.self_attn.q_proj.weight "$tmp/smol-keep.h5" >"$tmp/dump" || fail "h5dump block attrs"
expect_out "block dtype attribute" "$tmp/dump" '"q4_1"'
expect_out "block shape attribute" "$tmp/dump" "\(0\): 576, 576"
expect_out "block uint8" "$tmp/dump" "H5T_STD_U8LE"
# generate dequantises (--dtype f32) or keeps (auto) the same blocks from either file: the same text.
printf 'The capital of France is\n' >"$tmp/p.txt"
for dt in f32 auto; do
    for m in gguf h5; do
        model=$smol
        [ $m = h5 ] && model=$tmp/smol-keep.h5
        expect_rc 0 "generate --dtype $dt from $m" "$gridlm" generate --model "$model" --prompts "$tmp/p.txt" \
            --output "$tmp/gen-$dt-$m.jsonl" --dtype $dt --max-tokens 12 --threads 2 -q
    done
    [ -s "$tmp/gen-$dt-gguf.jsonl" ] || fail "generate --dtype $dt from gguf wrote nothing"
    cmp -s "$tmp/gen-$dt-gguf.jsonl" "$tmp/gen-$dt-h5.jsonl" ||
        fail "generate --dtype $dt: .h5 (keep) and .gguf outputs differ: $(cat "$tmp/gen-$dt-gguf.jsonl" "$tmp/gen-$dt-h5.jsonl")"
done

# The tokenizer in the converted tiny checkpoint gives the ids HF tokenizers gave.
expect_rc 0 "tokenize tiny" "$gridlm" tokenize --model "$tmp/tiny.h5" --json "Hello world"
jq -e '.ids == [409, 267, 300, 351]' "$tmp/stdout" >/dev/null || fail "tokenize tiny: $(cat "$tmp/stdout")"

# --- plain HDF5 tools read the files ----------------------------------------------------------------
h5ls -r "$tmp/smol.h5" >"$tmp/smol.h5ls" || fail "h5ls smol"
expect_out "h5ls smol q_proj" "$tmp/smol.h5ls" "^/tensors/model\.layers\.0\.self_attn\.q_proj\.weight Dataset \{576, 576\}$"
expect_out "h5ls smol tokens" "$tmp/smol.h5ls" "^/tokenizer/tokens +Dataset \{49152\}$"
expect_out "h5ls smol merges" "$tmp/smol.h5ls" "^/tokenizer/merges +Dataset \{48900\}$"
h5ls -r "$tmp/qwen.h5" >"$tmp/qwen.h5ls" || fail "h5ls qwen"
expect_out "h5ls qwen bias" "$tmp/qwen.h5ls" "^/tensors/model\.layers\.23\.self_attn\.k_proj\.bias Dataset \{128\}$"
expect_out "h5ls qwen head" "$tmp/qwen.h5ls" "^/tensors/lm_head\.weight +Dataset \{151936, 896\}$"
h5ls -r "$tmp/r1.h5" >"$tmp/r1.h5ls" || fail "h5ls r1"
expect_out "h5ls r1 tokens" "$tmp/r1.h5ls" "^/tokenizer/tokens +Dataset \{152064\}$"
grep -q "^/tensors/" "$tmp/r1.h5ls" && fail "h5ls r1: vocabulary-only file has tensors"
h5ls -r "$tmp/tiny.h5" >"$tmp/tiny.h5ls" || fail "h5ls tiny"
expect_out "h5ls tiny embed" "$tmp/tiny.h5ls" "^/tensors/model\.embed_tokens\.weight Dataset \{512, 64\}$"
h5dump -a /format_version "$tmp/tiny.h5" >"$tmp/dump" || fail "h5dump format_version"
expect_out "h5dump format_version" "$tmp/dump" "\(0\): 1$"
h5dump -a /config/arch "$tmp/tiny.h5" >"$tmp/dump" || fail "h5dump arch"
expect_out "h5dump arch" "$tmp/dump" '"qwen2"'
# 16-bit tensors are HDF5 floats: h5dump prints their values, not bit patterns.
h5dump -d /tensors/model.norm.weight -A 0 "$tmp/tiny16.h5" >"$tmp/dump" || fail "h5dump bf16 tensor"
expect_out "h5dump bf16 values" "$tmp/dump" "\(0\): (0|1)\.[0-9]+, "
h5dump -d /tokenizer/tokens -s 508 -c 3 "$tmp/tiny.h5" >"$tmp/dump" || fail "h5dump tokens"
expect_out "h5dump special tokens" "$tmp/dump" '"<\|endoftext\|>", "<\|im_start\|>", "<\|im_end\|>"'

# --- bad inputs: non-zero exit, message naming the file or option; no output left -----------------
expect_rc 1 "missing --from file" "$gridlm" convert --from "$tmp/none.gguf" --to "$tmp/x.h5"
expect_stderr "missing --from file" "$tmp/none.gguf"
expect_rc 2 "bad --dtype" "$gridlm" convert --from "$smol" --to "$tmp/x.h5" --dtype f64
expect_stderr "bad --dtype" "--dtype 'f64' is not one of keep, auto, f32"
expect_rc 1 "vocab-only h5 as weights for a quantised target" "$gridlm" convert --from "$tmp/r1.h5" --to "$tmp/x.h5" --dtype q4_k
expect_stderr "vocab-only h5 as weights for a quantised target" "--vocab-only"
expect_rc 2 "missing --to" "$gridlm" convert --from "$smol"
expect_stderr "missing --to" "--to"
expect_rc 2 "unknown option" "$gridlm" convert --from "$smol" --to "$tmp/x.h5" --bogus
expect_rc 1 "existing output" "$gridlm" convert --from "$golden/tiny-qwen2-hf" --to "$tmp/tiny.h5"
expect_stderr "existing output" "--force"
printf 'not a model\n' >"$tmp/junk.bin"
expect_rc 1 "junk input" "$gridlm" convert --from "$tmp/junk.bin" --to "$tmp/x.h5"
expect_stderr "junk input" "$tmp/junk.bin"
expect_rc 1 "cut-off GGUF with weights" "$gridlm" convert --from "$r1" --to "$tmp/x.h5"
expect_stderr "cut-off GGUF with weights" "$r1"
expect_rc 1 "vocab-only h5 as weights" "$gridlm" convert --from "$tmp/r1.h5" --to "$tmp/x.h5"
expect_stderr "vocab-only h5 as weights" "--vocab-only"
expect_rc 1 "output directory missing" "$gridlm" convert --from "$golden/tiny-qwen2-hf" --to "$tmp/no/dir/x.h5"
expect_stderr "output directory missing" "$tmp/no/dir"
[ -e "$tmp/x.h5" ] || [ -e "$tmp/x.h5.tmp" ] && fail "a failed convert left $tmp/x.h5 or its .tmp"
expect_rc 1 "inspect missing" "$gridlm" inspect "$tmp/none.h5"
expect_stderr "inspect missing" "$tmp/none.h5"
expect_rc 1 "inspect non-HDF5" "$gridlm" inspect "$tmp/junk.bin"
expect_stderr "inspect non-HDF5" "not an HDF5 file"
expect_rc 1 "inspect a GGUF" "$gridlm" inspect "$smol"
expect_rc 2 "inspect without file" "$gridlm" inspect
expect_rc 0 "convert --help" "$gridlm" convert --help
expect_out "convert --help" "$tmp/stdout" "--dtype arg \(=auto\)"
expect_out "convert --help exit status" "$tmp/stdout" "exit status"
expect_rc 0 "inspect --help" "$gridlm" inspect --help

echo "conversions (name, seconds, .h5 bytes, arguments):"
printf '%s' "$report"
finish test_convert_inspect
