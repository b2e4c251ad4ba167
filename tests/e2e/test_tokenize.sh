# End-to-end test of `gridlm tokenize` on vocabulary-only checkpoints of the three test models:
# ids against llama.cpp goldens (tests/reference/golden), --file, --chat, options, exit statuses.
# Usage: test_tokenize.sh GRIDLM MODELS_DIR. Plain bash and grep only (no jq, no python).
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
# expect_ids DESCRIPTION "ID ID ..." CMD...: the --json line's ids must be exactly these.
expect_ids() {
    local what=$1 ids=$2
    shift 2
    expect_rc 0 "$what" "$@"
    local want="{\"ids\": [${ids// /, }], "
    if [ "$(wc -l <"$tmp/stdout")" != 1 ] || [ "$(head -c ${#want} "$tmp/stdout")" != "$want" ]; then
        fail "$what: got $(head -c 300 "$tmp/stdout"), expected ids [$ids]"
    fi
}

declare -A files=(
    [smollm2]=SmolLM2-135M-Instruct.Q4_1.gguf
    [qwen]=Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf
    [r1]=DeepSeek-R1-Distill-Qwen-7B.head.gguf
)
for key in smollm2 qwen r1; do
    src=$models/${files[$key]}
    if [ ! -f "$src" ]; then
        echo "FAIL: model file $src is missing: run launch/fetch_models.sh first"
        exit 1
    fi
    expect_rc 0 "convert $key" "$gridlm" convert --from "$src" --to "$tmp/$key.h5" --vocab-only
done
tok() { local key=$1; shift; "$gridlm" tokenize --model "$tmp/$key.h5" "$@"; }

# --- help, usage errors (exit 2) and fatal errors (exit 1) ----------------------------------------
expect_rc 0 "--help" "$gridlm" tokenize --help
for opt in --model --json --file --chat --no-bos --no-special "exit status"; do
    grep -q -- "$opt" "$tmp/stdout" || fail "--help does not document $opt"
done
expect_rc 2 "missing --model" "$gridlm" tokenize hello
expect_rc 2 "no input" tok qwen --json
expect_rc 2 "two inputs" tok qwen --file "$tmp/x.txt" hello
expect_rc 2 "unknown option" tok qwen --bogus hello
expect_rc 1 "missing model" "$gridlm" tokenize --model "$tmp/none.h5" hello
grep -q "none.h5" "$tmp/stderr" || fail "missing model: message does not name the file: $(cat "$tmp/stderr")"
expect_rc 1 "missing --file" tok qwen --file "$tmp/none.txt"
printf '[\n  {"role": "user", "content": "hi"},\n  {"role": "user" "content": "x"}\n]\n' >"$tmp/bad.json"
expect_rc 1 "bad chat JSON" tok qwen --chat "$tmp/bad.json"
grep -q "line 3" "$tmp/stderr" || fail "bad chat JSON: message lacks the line: $(cat "$tmp/stderr")"
printf '[{"role": "user", "content": 5}]' >"$tmp/badcontent.json"
expect_rc 1 "message with a number as content" tok qwen --chat "$tmp/badcontent.json"
grep -q "messages\[0\].content must be a string" "$tmp/stderr" || fail "number as content: $(cat "$tmp/stderr")"

# --- ids against llama.cpp (tests/reference/golden/tokenizer_*.tsv) ---------------------------------
expect_ids "smollm2 digits" "19556 905 216 33 34 35 36 37 1326 982" tok smollm2 --json "Hello world 12345 don't"
expect_ids "smollm2 special" "1 4093 198 26843 2" tok smollm2 --json $'<|im_start|>user\nHi<|im_end|>'
expect_ids "smollm2 emoji" "57 4636 247 114 31752 12182" tok smollm2 --json "I ❤️ NY"
expect_ids "qwen CJK" "108386 99489" tok qwen --json "你好世界"
expect_ids "qwen special" "151644 872 198 13048 151645" tok qwen --json $'<|im_start|>user\nHi<|im_end|>'
expect_ids "qwen ZWJ emoji" "145367 378 235 145233 378 235 145665 378 235 145988 2997" tok qwen --json "👨‍👩‍👧‍👦 family"
expect_ids "r1 BOS" "151646 9707 1879" tok r1 --json "Hello world"
expect_ids "r1 think" "151646 151648 198 19895 287 198 151649 271 9217" tok r1 --json $'<think>\nreasoning\n</think>\n\nanswer'
expect_ids "r1 words joined" "151646 9707 1879" tok r1 --json Hello world
expect_ids "r1 --no-bos" "9707 1879" tok r1 --json --no-bos "Hello world"
expect_ids "qwen --no-special" "27 91 318 4906 91 29" tok qwen --json --no-special "<|im_start|>"

# Whole --json line, pieces included.
expect_rc 0 "qwen json line" tok qwen --json "Hello world"
[ "$(cat "$tmp/stdout")" = '{"ids": [9707, 1879], "pieces": ["Hello", " world"]}' ] ||
    fail "qwen json line: $(cat "$tmp/stdout")"

# Human format: one `id<TAB>"piece"` line per token, escapes visible.
expect_rc 0 "human format" tok qwen $'a\tb\n'
[ "$(cat "$tmp/stdout")" = $'64\t"a"\n2233\t"\\tb"\n198\t"\\n"' ] || fail "human format: $(cat "$tmp/stdout")"

# --file reads the bytes as they are (here with a trailing newline: "Hi" "\n" in SmolLM2 ids).
printf 'Hello world 12345 don'"'"'t' >"$tmp/text.txt"
expect_ids "--file" "19556 905 216 33 34 35 36 37 1326 982" tok smollm2 --json --file "$tmp/text.txt"

# --- chat (tests/reference/golden/chat_*.tsv, conversations single_user and system_user) -----------
printf '[{"role": "user", "content": "Hello!"}]\n' >"$tmp/single.json"
printf '{"messages": [{"role": "system", "content": "You are a terse assistant."},\n {"role": "user", "content": "What is the capital of France?"}]}\n' >"$tmp/system.json"
expect_ids "smollm2 chat default system" "1 9690 198 2683 359 253 5356 5646 11173 3365 3511 308 34519 28 7018 411 407 19712 8182 2 198 1 4093 198 19556 17 2 198 1 520 9531 198" tok smollm2 --json --chat "$tmp/single.json"
expect_ids "qwen chat default system" "151644 8948 198 2610 525 1207 16948 11 3465 553 54364 14817 13 1446 525 264 10950 17847 13 151645 198 151644 872 198 9707 0 151645 198 151644 77091 198" tok qwen --json --chat "$tmp/single.json"
expect_ids "r1 chat" "151646 151644 9707 0 151645" tok r1 --json --chat "$tmp/single.json"
expect_ids "smollm2 chat system" "1 9690 198 2683 359 253 1733 313 11173 30 2 198 1 4093 198 1780 314 260 3575 282 4649 47 2 198 1 520 9531 198" tok smollm2 --json --chat "$tmp/system.json"
expect_ids "qwen chat system" "151644 8948 198 2610 525 264 50537 17847 13 151645 198 151644 872 198 3838 374 279 6722 315 9625 30 151645 198 151644 77091 198" tok qwen --json --chat "$tmp/system.json"
expect_ids "r1 chat system (BOS not doubled)" "151646 2610 525 264 50537 17847 13 151644 3838 374 279 6722 315 9625 30 151645" tok r1 --json --chat "$tmp/system.json"
expect_rc 2 "--chat with --no-special" tok qwen --chat "$tmp/single.json" --no-special

finish test_tokenize
