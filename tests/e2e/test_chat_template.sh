# End-to-end test of chat templates through the CLI: `gridlm tokenize --chat --rendered` prints
# exactly what transformers renders (tests/reference/golden/chat_templates.json), with the
# checkpoint's template and with --chat-template; a generate job renders messages with tools and
# chat_template_kwargs, turns a template's refusal into that record's error line, and refuses a
# broken --chat-template file at start-up.
# Usage: test_chat_template.sh GRIDLM MODELS_DIR. Needs jq.
set -u
gridlm=$1
models=$2
. "$(dirname "$0")/lib.sh"
ref=$(cd "$(dirname "$0")/../reference" && pwd)
golden=$ref/golden/chat_templates.json
smol=$models/SmolLM2-135M-Instruct.Q4_1.gguf
require_files "$smol" "$golden"

# conversation NAME: the conversation as a tokenize --chat object (messages, tools, kwargs...).
conversation() {
    jq -c --arg n "$1" '.[] | select(.name == $n) | del(.name)' "$ref/chat_conversations.json"
}
# golden_text FILE CONV: what transformers renders for that template and conversation.
golden_text() {
    jq -j --arg f "$1" --arg c "$2" \
        '.templates[] | select(.file == $f) | .results[] | select(.conversation == $c) | .text' "$golden"
}
# expect_rendered WHAT FILE CONV ARGS...: tokenize --rendered equals the golden, byte for byte.
expect_rendered() {
    local what=$1 file=$2 conv=$3
    shift 3
    conversation "$conv" >"$tmp/chat.json"
    golden_text "$file" "$conv" >"$tmp/want.txt"
    [ -s "$tmp/want.txt" ] || fail "$what: no golden text for $file x $conv"
    expect_rc 0 "$what" "$gridlm" tokenize --chat "$tmp/chat.json" --rendered "$@"
    cmp -s "$tmp/stdout" "$tmp/want.txt" ||
        fail "$what: rendered text differs from transformers': $(diff <(cat -A "$tmp/want.txt") <(cat -A "$tmp/stdout") | head -5)"
}

# --- tokenize --rendered ------------------------------------------------------------------------
expect_rendered "checkpoint's own template" HuggingFaceTB-SmolLM2-135M-Instruct.jinja system_multi_turn --model "$smol"
expect_rendered "checkpoint's template, no generation prompt" HuggingFaceTB-SmolLM2-135M-Instruct.jinja assistant_last \
    --model "$smol"
# Another model's template over this vocabulary: Qwen2.5's renders tools and tool calls (no BOS/EOS).
for conv in tools_available tools_round_trip tool_calls_string_args; do
    expect_rendered "--chat-template Qwen2.5, $conv" Qwen-Qwen2.5-7B-Instruct.jinja "$conv" --model "$smol" \
        --chat-template "$ref/chat_templates/Qwen-Qwen2.5-7B-Instruct.jinja"
done
expect_rendered "--chat-template Qwen3, enable_thinking false" Qwen-Qwen3-0.6B.jinja enable_thinking_false \
    --model "$smol" --chat-template "$ref/chat_templates/Qwen-Qwen3-0.6B.jinja"

# --show-chat-template prints the stored source byte for byte (as the gguf package reads it).
expect_rc 0 "--show-chat-template" "$gridlm" tokenize --model "$smol" --show-chat-template
cmp -s "$tmp/stdout" "$ref/chat_templates/HuggingFaceTB-SmolLM2-135M-Instruct.jinja" ||
    fail "--show-chat-template differs from the GGUF's template"
expect_rc 1 "--show-chat-template tool_use without one" "$gridlm" tokenize --model "$smol" --show-chat-template tool_use
expect_stderr "no tool_use template" "has no tool_use chat template"
expect_rc 2 "--show-chat-template bad name" "$gridlm" tokenize --model "$smol" --show-chat-template other

# Usage errors (2) and template errors (1) name what is wrong.
conversation single_user >"$tmp/single.json"
expect_rc 2 "--rendered without --chat" "$gridlm" tokenize --model "$smol" --rendered hello
expect_rc 2 "--rendered with --json" "$gridlm" tokenize --model "$smol" --chat "$tmp/single.json" --rendered --json
printf '{%% for m in messages %%}\n{{ m.content }}\n' >"$tmp/unclosed.jinja"
expect_rc 1 "unclosed for in --chat-template" "$gridlm" tokenize --model "$smol" --chat "$tmp/single.json" \
    --chat-template "$tmp/unclosed.jinja"
expect_stderr "unclosed for" "chat template file '$tmp/unclosed.jinja', line 1: unclosed '{% for %}'"
printf 'hello\n{{ raise_exception("only one turn, please") }}' >"$tmp/refuse.jinja"
expect_rc 1 "template refusal" "$gridlm" tokenize --model "$smol" --chat "$tmp/single.json" --chat-template "$tmp/refuse.jinja"
expect_stderr "template refusal" "refused the chat (raise_exception at line 2): only one turn, please"

# --- named templates: a chat with tools uses the checkpoint's "tool_use" template, as HF -------
# An HF directory whose tokenizer_config.json lists {"default": Qwen2.5's, "tool_use": Hermes 3's},
# and its HDF5 conversion (which keeps both): each render equals the one with that template given.
cp -r "$ref/golden/tiny-qwen2-hf" "$tmp/hf"
jq --rawfile d "$ref/chat_templates/Qwen-Qwen2.5-7B-Instruct.jinja" \
    --rawfile t "$ref/chat_templates/NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja" \
    '.chat_template = [{"name": "default", "template": $d}, {"name": "tool_use", "template": $t}]' \
    "$ref/golden/tiny-qwen2-hf/tokenizer_config.json" >"$tmp/hf/tokenizer_config.json"
expect_rc 0 "convert the HF directory" "$gridlm" convert --from "$tmp/hf" --to "$tmp/hf.h5"
expect_rc 0 "--show-chat-template tool_use" "$gridlm" tokenize --model "$tmp/hf.h5" --show-chat-template tool_use
cmp -s "$tmp/stdout" "$ref/chat_templates/NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja" ||
    fail "--show-chat-template tool_use differs from the template put in the HF directory"
expect_rc 0 "inspect names the tool_use template" "$gridlm" inspect --model "$tmp/hf.h5"
grep -q "chat_template_tool_use .*bytes" "$tmp/stdout" || fail "inspect does not show the tool_use template"
conversation tools_flat >"$tmp/tools_flat.json"
for model in "$tmp/hf" "$tmp/hf.h5"; do
    for pick in "tools_flat.json NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja" \
        "single.json Qwen-Qwen2.5-7B-Instruct.jinja"; do
        set -- $pick
        expect_rc 0 "named templates, $model, $1" "$gridlm" tokenize --model "$model" --chat "$tmp/$1" --rendered
        mv "$tmp/stdout" "$tmp/picked.txt"
        expect_rc 0 "named templates, $model, $1 with $2" "$gridlm" tokenize --model "$model" --chat "$tmp/$1" \
            --rendered --chat-template "$ref/chat_templates/$2"
        cmp -s "$tmp/picked.txt" "$tmp/stdout" || fail "named templates, $model: $1 was not rendered with $2"
    done
done

# --- generate: messages with tools and kwargs, a refusal as one record's error line -------------
# Gemma 2's template refuses a system role: that record fails, the others run (exit status 3).
{
    echo '{"id": "ok", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "ignore_eos": true}'
    echo '{"id": "sys", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "max_tokens": 4, "ignore_eos": true}'
    echo '{"id": "parts", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}], "max_tokens": 4, "ignore_eos": true}'
} >"$tmp/gemma.jsonl"
expect_rc 3 "generate with a refusing template" "$gridlm" generate -q --model "$smol" --prompts "$tmp/gemma.jsonl" \
    --output "$tmp/gemma.out.jsonl" --temperature 0 --threads 2 --order input \
    --chat-template "$ref/chat_templates/google-gemma-2-2b-it.jinja"
[ "$(jq -r 'select(.id == "ok") | .finish_reason' "$tmp/gemma.out.jsonl")" = length ] ||
    fail "gemma: record ok did not run: $(cat "$tmp/gemma.out.jsonl")"
[ "$(jq -r 'select(.id == "parts") | .usage.completion_tokens' "$tmp/gemma.out.jsonl")" = 4 ] ||
    fail "gemma: record parts did not run: $(cat "$tmp/gemma.out.jsonl")"
jq -r 'select(.id == "sys") | .error' "$tmp/gemma.out.jsonl" | grep -qF "refused the chat (raise_exception at line 1): System role not supported" ||
    fail "gemma: record sys lacks the template's refusal: $(cat "$tmp/gemma.out.jsonl")"

# The prompt a chat record runs is the rendered template's: its token count equals tokenize's.
conversation tools_available | jq -c '{id: "tools", messages, tools, max_tokens: 2}' >"$tmp/tools.jsonl"
conversation tools_available >"$tmp/tools_chat.json"
expect_rc 0 "generate with tools" "$gridlm" generate -q --model "$smol" --prompts "$tmp/tools.jsonl" \
    --output "$tmp/tools.out.jsonl" --temperature 0 --threads 2 \
    --chat-template "$ref/chat_templates/Qwen-Qwen2.5-7B-Instruct.jinja"
expect_rc 0 "tokenize the same chat" "$gridlm" tokenize --model "$smol" --chat "$tmp/tools_chat.json" --json \
    --chat-template "$ref/chat_templates/Qwen-Qwen2.5-7B-Instruct.jinja"
want=$(jq '.ids | length' "$tmp/stdout")
got=$(jq '.usage.prompt_tokens' "$tmp/tools.out.jsonl")
[ -n "$want" ] && [ "$want" = "$got" ] || fail "generate with tools: prompt_tokens $got, tokenize gives $want ids"

# A broken --chat-template stops the job before it starts, naming the file and line; no output.
expect_rc 1 "generate with a broken --chat-template" "$gridlm" generate -q --model "$smol" \
    --prompts "$tmp/gemma.jsonl" --output "$tmp/broken.out.jsonl" --chat-template "$tmp/unclosed.jinja"
expect_stderr "broken template" "line 1: unclosed '{% for %}'"
[ ! -e "$tmp/broken.out.jsonl" ] || fail "a broken --chat-template left an output file"
expect_rc 1 "generate with a missing --chat-template" "$gridlm" generate -q --model "$smol" \
    --prompts "$tmp/gemma.jsonl" --output "$tmp/missing.out.jsonl" --chat-template "$tmp/none.jinja"
expect_stderr "missing template" "none.jinja"

finish test_chat_template
