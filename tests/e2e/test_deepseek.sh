# DeepSeek-V2 / V3 (MLA + MoE) through the CLI on the tiny random Hugging Face models of
# tests/reference/golden (their logits are checked against HF transformers in test_model_golden):
# a Hugging Face directory runs directly; pipeline stages that split the dense first layer from the
# MoE layers, data-parallel replicas and tensor / expert parallelism (tp splits heads and experts,
# also unevenly: tp=3 over 4 heads and 8 experts) write the single-rank output (also with a bf16 KV
# cache); paged blocks with preemption, activation checkpoints and prefix reuse; perplexity; a tp
# larger than the head count is refused by name.
# Usage: test_deepseek.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
. "$(dirname "$0")/lib.sh"
golden=$(cd "$(dirname "$0")/../reference/golden" && pwd)

for i in 1 2 3 4 5 6 7; do
    echo "{\"id\": \"r$i\", \"prompt\": \"hello world $i\", \"max_tokens\": $((6 + i * 5)), \"ignore_eos\": true}"
done >"$tmp/p.jsonl"
args=(--prompts "$tmp/p.jsonl" --temperature 0 --order input)

for v in v3 v2; do
    model=$golden/tiny-deepseek-$v-hf
    require_files "$model/model.safetensors" "$model/config.json"
    expect_rc 0 "$v one rank" "$gridlm" generate --model "$model" "${args[@]}" --threads 2 --output "$tmp/$v.jsonl"
    expect_stderr "$v start-up line" "(deepseek_$v; weights f32"
    [ "$(jq -s 'map(select(.usage.completion_tokens > 0)) | length' "$tmp/$v.jsonl")" = 7 ] ||
        fail "$v: expected 7 completions: $(head -c 300 "$tmp/$v.jsonl")"
    # pp=3 puts the dense layer 0 alone on the first stage; dp=2 x pp=2 splits the batch too.
    expect_grid "$v pp=3" "$tmp/$v.jsonl" 1 3 1 --model "$model" "${args[@]}"
    expect_grid "$v dp=2 pp=2" "$tmp/$v.jsonl" 2 2 1 --model "$model" "${args[@]}"
    expect_grid "$v tp=2" "$tmp/$v.jsonl" 1 1 2 --model "$model" "${args[@]}"
    expect_grid "$v tp=3 (uneven heads and experts)" "$tmp/$v.jsonl" 1 1 3 --model "$model" "${args[@]}"
    expect_grid "$v pp=2 tp=2" "$tmp/$v.jsonl" 1 2 2 --model "$model" "${args[@]}"
    expect_rc 0 "$v bf16 KV" "$gridlm" generate --model "$model" "${args[@]}" --threads 2 --kv-cache-dtype bf16 \
        -q --output "$tmp/${v}_bf16.jsonl"
    expect_grid "$v dp=2 pp=2, bf16 KV" "$tmp/${v}_bf16.jsonl" 2 2 1 --model "$model" "${args[@]}" \
        --kv-cache-dtype bf16
done

# Paged blocks under a budget: preemption (recompute, and activation checkpoints on pp=2) and
# prefix reuse of a shared 150-token prompt give the output of one sequence at a time.
model=$golden/tiny-deepseek-v3-hf
pre=$(printf 'the system says %.0s' $(seq 30))
for i in 1 2 3 4 5 6; do
    echo "{\"id\": \"s$i\", \"prompt\": \"$pre question $i\", \"max_tokens\": $((20 + i * 7)), \"ignore_eos\": true}"
done >"$tmp/shared.jsonl"
sargs=(--model "$model" --prompts "$tmp/shared.jsonl" --temperature 0 --order input)
expect_rc 0 "one at a time" "$gridlm" generate "${sargs[@]}" --threads 2 --max-seqs 1 -q --output "$tmp/s_ref.jsonl"
expect_rc 0 "budget" "$gridlm" generate "${sargs[@]}" --threads 2 --kv-cache-bytes 200000 --output "$tmp/s_b.jsonl"
same_output "budget" "$tmp/s_ref.jsonl" "$tmp/s_b.jsonl"
grep -Eq "[1-9][0-9]* preemptions" "$tmp/stderr" || fail "budget: no preemption: $(grep 'KV cache' "$tmp/stderr")"
grep -Eq "[1-9][0-9]* prompt tokens reused" "$tmp/stderr" || fail "budget: no prefix reuse: $(grep 'KV cache' "$tmp/stderr")"
expect_grid "pp=2, budget, activation checkpoints" "$tmp/s_ref.jsonl" 1 2 1 "${sargs[@]}" --kv-cache-bytes 200000 \
    --preempt checkpoint
# Perplexity runs too (window of 64, on the latent cache).
printf 'hello world %.0s' $(seq 200) >"$tmp/t.txt"
expect_rc 0 "score" "$gridlm" score --model "$model" --text "$tmp/t.txt" --ctx 64 --threads 2
tail -1 "$tmp/stdout" | jq -e '.perplexity > 1 and .windows == (.tokens / 64 | floor)' >/dev/null || fail "score: $(tail -1 "$tmp/stdout")"

expect_rc 1 "tp=5" grid_gen 5 1 1 5 --model "$golden/tiny-deepseek-v3-hf" "${args[@]}" --output "$tmp/tp.jsonl"
expect_stderr "tp=5" "tp=5 is larger than the model's 4 attention heads"
finish test_deepseek
