# End-to-end test of `gridlm score` on SmolLM2-135M: the perplexity of a text against llama.cpp's
# figure (tests/reference/golden/perplexity_smollm2.json), grid runs equal to the single-rank run,
# --prompts records (a bad line among them) and bad inputs. Usage: test_score.sh GRIDLM MODELS_DIR
set -u
gridlm=$1
models=$2
model=$models/SmolLM2-135M-Instruct.Q4_1.gguf
golden=$(cd "$(dirname "$0")/../reference/golden" && pwd)/perplexity_smollm2.json
gpl=/usr/share/common-licenses/GPL-3
apache=/usr/share/common-licenses/Apache-2.0
. "$(dirname "$0")/lib.sh"
require_files "$model" "$golden" "$gpl" "$apache"
score() { "$gridlm" score --model "$model" --dtype f32 --threads 2 "$@"; }
grid_score() {
    local ranks=$1
    shift
    timeout 240 mpirun -n "$ranks" --oversubscribe "$gridlm" score --model "$model" --dtype f32 --threads 1 "$@"
}
# close A B REL: |A - B| <= REL * |B|
close() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; s = b < 0 ? -b : b; exit !(d <= r * s) }'; }
result() { tail -n 1 "$1"; }  # the JSON line a --text run ends its stdout with

# --- usage and fatal errors stop at once, with the reason --------------------------------------
cat "$gpl" "$apache" >"$tmp/text.txt"
expect_rc 0 "--help" "$gridlm" score --help
for opt in --model --text --prompts --output --ctx --threads --dtype --dp --pp --tp --pp-layers --batch-tokens \
    --max-seqs --kv-cache-dtype --order --input-format --quiet "exit status"; do
    grep -q -- "$opt" "$tmp/stdout" || fail "--help does not mention $opt"
done
expect_rc 1 "missing --text file" score --text "$tmp/none.txt" --ctx 512
expect_stderr "missing --text file" "cannot open text file $tmp/none.txt"
expect_rc 2 "--ctx 1" score --text "$tmp/text.txt" --ctx 1
expect_stderr "--ctx 1" "--ctx 1: a window needs at least 3 tokens"
head -c 3000 "$apache" >"$tmp/short.txt"
expect_rc 1 "text shorter than two windows" score --text "$tmp/short.txt" --ctx 512
expect_stderr "short text" "needs at least 1024 (two windows)"
expect_rc 2 "--text and --prompts" score --text "$tmp/text.txt" --prompts "$tmp/text.txt"
expect_rc 2 "--prompts without --output" score --prompts "$tmp/text.txt"
expect_rc 1 "missing model" "$gridlm" score --model "$tmp/none.gguf" --text "$tmp/text.txt"
expect_rc 2 "bad --dtype" score --text "$tmp/text.txt" --dtype f8

# --- perplexity as llama.cpp's perplexity tool computes it (F32 twin of the same weights) -------
[ "$(sha256sum "$tmp/text.txt" | cut -d' ' -f1)" = "$(jq -r .text_sha256 "$golden")" ] ||
    fail "the license texts differ from those of the golden file (rerun tests/reference/make_perplexity_golden.sh)"
expect_rc 0 "perplexity, ctx 512" score --text "$tmp/text.txt" --ctx 512
cp "$tmp/stdout" "$tmp/ppl512.out"
cp "$tmp/stderr" "$tmp/ppl512.err"
r=$(result "$tmp/ppl512.out")
want=$(jq .f32.perplexity "$golden")
got=$(echo "$r" | jq .perplexity)
echo "gridlm f32 perplexity $got (stderr $(echo "$r" | jq .stderr)), llama.cpp F32 $want +/- $(jq .f32.stderr "$golden")," \
    "Q4_1 $(jq .q4_1.perplexity "$golden")"
close "$got" "$want" 0.001 || fail "perplexity $got is not within 0.1% of llama.cpp's $want"
close "$(echo "$r" | jq .stderr)" "$(jq .f32.stderr "$golden")" 0.01 || fail "stderr differs from llama.cpp's by > 1%"
[ "$(echo "$r" | jq .windows)" = "$(jq .f32.chunks "$golden")" ] || fail "windows: $(echo "$r" | jq .windows), llama.cpp $(jq .f32.chunks "$golden")"
[ "$(echo "$r" | jq .tokens)" = "$(jq .tokens "$golden")" ] || fail "tokens: $(echo "$r" | jq .tokens), llama.cpp $(jq .tokens "$golden")"
echo "$r" | jq -e '.tokens_scored == .windows * 255 and .ctx == 512 and (.nll_mean | exp) - .perplexity < 1e-9 and
    .seconds > 0 and .tok_per_s > 0 and .model != null' >/dev/null || fail "result line: $r"
n=$(jq .f32.chunks "$golden")
grep -q "^\[window $n/$n\] ppl " "$tmp/ppl512.err" || fail "no per-window progress line [window $n/$n]"
# The running perplexity after each window follows llama.cpp's [i]ppl figures.
jq -r '.f32.running_ppl[]' "$golden" >"$tmp/running_ref"
sed -n 's/^\[window [0-9]*\/[0-9]*\] ppl \([0-9.]*\).*/\1/p' "$tmp/ppl512.err" >"$tmp/running"
paste "$tmp/running" "$tmp/running_ref" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 0.001 * $2) bad++ }
    END { exit bad > 0 || NR == 0 }' || fail "running perplexity per window differs from llama.cpp's by > 0.1%"

# --- grid runs give the single-rank result (ctx 64 on a shorter text: 15 windows) ------------------
# SmolLM2 has 9 attention heads (3 KV heads): tensor parallelism takes tp = 3.
head -c 5000 "$apache" >"$tmp/small.txt"
expect_rc 0 "1 rank, ctx 64" score --text "$tmp/small.txt" --ctx 64 -q
ref=$(result "$tmp/stdout")
for g in "2 --pp 2" "3 --tp 3" "4 --dp 2 --pp 2"; do
    read -r ranks flags <<<"$g"
    # shellcheck disable=SC2086
    expect_rc 0 "grid $flags" grid_score "$ranks" $flags --text "$tmp/small.txt" --ctx 64 -q
    [ "$(grep -c '^{' "$tmp/stdout")" = 1 ] || fail "grid $flags: expected one JSON line on stdout"
    got=$(result "$tmp/stdout")
    close "$(echo "$got" | jq .perplexity)" "$(echo "$ref" | jq .perplexity)" 1e-5 ||
        fail "grid $flags: perplexity $(echo "$got" | jq .perplexity), one rank $(echo "$ref" | jq .perplexity)"
    [ "$(echo "$got" | jq '[.windows, .tokens_scored]')" = "$(echo "$ref" | jq '[.windows, .tokens_scored]')" ] ||
        fail "grid $flags: windows / tokens differ"
done

# --- --prompts: per-record log-probabilities; a bad record is an error line ----------------------
ids=$("$gridlm" tokenize --model "$model" --json "The capital of France is" | jq -c .ids)
cat >"$tmp/in.jsonl" <<EOF
{"id": "a", "prompt": "The quick brown fox jumps over the lazy dog."}
{"id": "b", "messages": [{"role": "user", "content": "Name a colour."}]}
{broken json
{"id": "d", "prompt": $ids}
{"id": "e", "prompt": "x"}
{"id": "f", "prompt": [1, 99999999]}
EOF
expect_rc 3 "--prompts with bad records" score --prompts "$tmp/in.jsonl" --output "$tmp/rec.jsonl" --order input
[ "$(wc -l <"$tmp/rec.jsonl")" = 6 ] || fail "--prompts: expected 6 lines, got $(wc -l <"$tmp/rec.jsonl")"
jq -e -s 'map(select(.prompt_logprobs)) | length == 3 and all(.[];
    (.prompt_logprobs | length) == (.prompt_token_ids | length) - 1 and .tokens_scored == (.prompt_logprobs | length)
    and ([.prompt_logprobs[].token_id] == .prompt_token_ids[1:]) and all(.prompt_logprobs[]; .logprob <= 0)
    and (([.prompt_logprobs[].logprob] | add) - .total_logprob | fabs) < 1e-3
    and ((-.total_logprob / .tokens_scored | exp) - .perplexity | fabs) < 1e-6 * .perplexity)' "$tmp/rec.jsonl" \
    >/dev/null || fail "--prompts: unexpected records: $(head -c 600 "$tmp/rec.jsonl")"
jq -e -s '[.[] | select(.error) | .line] == [3, 5, 6]' "$tmp/rec.jsonl" >/dev/null ||
    fail "--prompts: expected error lines for input lines 3, 5 and 6: $(grep error "$tmp/rec.jsonl")"
grep -q '"id":"e".*at least 2' "$tmp/rec.jsonl" || fail "--prompts: the 1-token record's error does not say why"
# The last token of d is scored as generate sees it: generate's greedy logprob of " Paris" after the prompt.
printf '{"id": "g", "prompt": %s, "max_tokens": 1, "temperature": 0, "logprobs": true}\n' "$ids" >"$tmp/g.jsonl"
expect_rc 0 "generate one token" "$gridlm" generate --model "$model" --dtype f32 --kv-cache-dtype f32 --threads 2 -q \
    --prompts "$tmp/g.jsonl" --output "$tmp/g.out.jsonl"
tok=$(jq '.logprobs[0].token_id // empty' "$tmp/g.out.jsonl" 2>/dev/null)
glp=$(jq '.logprobs[0].logprob // empty' "$tmp/g.out.jsonl" 2>/dev/null)
if [ -n "$tok" ] && [ -n "$glp" ]; then
    printf '{"id": "h", "prompt": %s}\n' "$(echo "$ids" | jq -c ". + [$tok]")" >"$tmp/h.jsonl"
    expect_rc 0 "score prompt + generated token" score --prompts "$tmp/h.jsonl" --output "$tmp/h.out.jsonl"
    slp=$(jq '.prompt_logprobs[-1].logprob' "$tmp/h.out.jsonl")
    close "$slp" "$glp" 1e-4 || fail "score's logprob $slp of the generated token differs from generate's $glp"
else
    fail "generate --logprobs gave no token logprob: $(head -c 300 "$tmp/g.out.jsonl")"
fi
expect_rc 1 "existing output" score --prompts "$tmp/in.jsonl" --output "$tmp/rec.jsonl"
expect_stderr "existing output" "already exists"
# Records on a grid: the same lines as one rank (records split over two replicas, one with two stages).
expect_rc 3 "--prompts on a grid" grid_score 4 --dp 2 --pp 2 --prompts "$tmp/in.jsonl" \
    --output "$tmp/rec_grid.jsonl" --order input -q
jq -e -n --slurpfile a "$tmp/rec.jsonl" --slurpfile b "$tmp/rec_grid.jsonl" '($a | length) == ($b | length) and
    all(range($a | length); . as $i | ($a[$i].id == $b[$i].id) and ($a[$i].error == $b[$i].error) and
      ([$a[$i].prompt_logprobs[]?.logprob] as $x | [$b[$i].prompt_logprobs[]?.logprob] as $y |
       ($x | length) == ($y | length) and all(range($x | length); (($x[.] - $y[.]) | fabs) < 1e-4)))' >/dev/null ||
    fail "--prompts on a grid differs from one rank"

finish test_score
