# DeepSeek-V2 / V3 from GGUF through the CLI: the tiny models as llama.cpp's converter writes them
# (tests/reference/make_deepseek_gguf.py) give byte-identical output to their Hugging Face
# directories, on one rank and on a pp=2 x tp=2 grid (experts cut out of the 3-D GGUF tensors per
# rank); the Q8_0 file runs with its blocks kept.
# Usage: test_deepseek_gguf.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
. "$(dirname "$0")/lib.sh"
golden=$(cd "$(dirname "$0")/../reference/golden" && pwd)

for i in 1 2 3 4 5; do
    echo "{\"id\": \"r$i\", \"prompt\": \"hello world $i\", \"max_tokens\": $((6 + i * 5)), \"ignore_eos\": true}"
done >"$tmp/p.jsonl"
args=(--prompts "$tmp/p.jsonl" --temperature 0 --order input)

for v in v3 v2; do
    hf=$golden/tiny-deepseek-$v-hf
    gguf=$golden/tiny-deepseek-$v.f32.gguf
    require_files "$hf/model.safetensors" "$gguf"
    expect_rc 0 "$v HF directory" "$gridlm" generate --model "$hf" "${args[@]}" --threads 2 -q --output "$tmp/$v-hf.jsonl"
    expect_rc 0 "$v GGUF" "$gridlm" generate --model "$gguf" "${args[@]}" --threads 2 --output "$tmp/$v-gguf.jsonl"
    expect_stderr "$v GGUF start-up line" "(deepseek_$v; weights f32"
    same_output "$v GGUF vs HF directory" "$tmp/$v-hf.jsonl" "$tmp/$v-gguf.jsonl"
    expect_grid "$v GGUF pp=2 tp=2" "$tmp/$v-hf.jsonl" 1 2 2 --model "$gguf" "${args[@]}"
done

q8=$golden/tiny-deepseek-v3.q8_0.gguf
require_files "$q8"
expect_rc 0 "v3 Q8_0 GGUF" "$gridlm" generate --model "$q8" "${args[@]}" --threads 2 --output "$tmp/q8.jsonl"
expect_stderr "v3 Q8_0 kept" "weights q8_0"
[ "$(jq -s 'map(select(.usage.completion_tokens > 0)) | length' "$tmp/q8.jsonl")" = 5 ] ||
    fail "Q8_0: expected 5 completions: $(head -c 300 "$tmp/q8.jsonl")"
finish test_deepseek_gguf
