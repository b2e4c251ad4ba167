#!/usr/bin/env python3
# Makes tests/reference/golden/chat_templates.json: the text each real chat template in
# chat_templates/ renders for each conversation of chat_conversations.json, rendered the way HF
# transformers renders chat templates, plus token ids for the templates of the bundled tokenizers.
#
# Versions used for the committed golden (Python 3.11, packages from PyPI, no torch):
#   jinja2 3.1.6, transformers 5.24.0, tokenizers 0.23.3, gguf 0.19.0, numpy 2.4.6
# Usage:
#   /tmp/tplenv/bin/python tests/reference/make_template_golden.py \
#       --models models --out tests/reference/golden/chat_templates.json
#
# Rendering (transformers' render_jinja_template): jinja2's ImmutableSandboxedEnvironment with
# trim_blocks, lstrip_blocks, the loopcontrols extension and a {% generation %} block that renders
# its body unchanged; tojson is json.dumps (ensure_ascii=False, no HTML escaping, indent/separators/
# sort_keys passed through); raise_exception(message) raises TemplateError(message); strftime_now(fmt)
# formats the fixed time 2026-01-15 10:30:00 (the C++ tests use the same clock). Variables:
# messages, tools (None when the conversation has none), documents=None, add_generation_prompt
# (default true), bos_token, eos_token, the template's extra_variables (firefunction-v2 only) and
# the conversation's chat_template_kwargs.
# Like transformers, a message carrying reasoning under reasoning_content (or thinking / reasoning)
# reaches the template with it under both 'thinking' (as its first key) and 'reasoning_content'
# (template_messages below); the gpt-oss and LFM2.5 templates read 'thinking'.
# Every render, and every error, is cross-checked against transformers' own render_jinja_template
# (its strftime_now clock patched to the same fixed time); any difference stops the script.
#
# The three GGUF templates (tokenizer.chat_template) are written to chat_templates/ byte for byte
# by this script; their bos/eos are the vocabulary's texts of the BOS/EOS ids, as in
# make_chat_golden.py. The other templates are llama.cpp's models/templates copies (see
# chat_templates/SOURCES.md) with bos/eos from each model's tokenizer_config.json (TEMPLATES).
#
# Output: {"generator": {...versions}, "now": ..., "templates": [{"file", "bos_token", "eos_token",
#   "tokenizer", "extra_variables"?, "results": [{"conversation", "text", "ids"?} | {"conversation",
#   "error", "error_type"}, ...]}]}, one result per conversation in file order. "ids": HF tokenizers
# encoding of the text, no special tokens added, with the GGUF vocabulary set up as
# make_tokenizer_golden.tokenizers_pipeline does; only for templates with a bundled tokenizer.
# "error": str() of the exception (the raise_exception message for TemplateError);
# "error_type": its class name (TemplateError, UndefinedError, TypeError, ...).
import argparse
import copy
import datetime
import importlib.metadata
import json
import os
import platform
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf_vocab  # noqa: E402
import make_tokenizer_golden  # noqa: E402

TEMPLATE_DIR = os.path.join(HERE, "chat_templates")
CONVERSATIONS = os.path.join(HERE, "chat_conversations.json")
FIXED_NOW = datetime.datetime(2026, 1, 15, 10, 30, 0)

# DeepSeek's full-width control tokens.
DS_BOS = "<｜begin▁of▁sentence｜>"
DS_EOS = "<｜end▁of▁sentence｜>"

# llama.cpp's copies: file, BOS and EOS strings of the model's tokenizer_config.json, and the
# bundled tokenizer (gguf_vocab.MODELS key) whose vocabulary the model shares, if any.
# Models without a BOS token (Qwen, SmolLM3, GLM) get "". Templates that never mention bos_token or
# eos_token render the same whatever these are.
TEMPLATES = [
    ("meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>", None),
    ("meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>", None),
    ("meta-llama-Llama-3.3-70B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>", None),
    ("Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>", "qwen2.5"),  # Qwen2.5: no BOS token
    ("Qwen-Qwen3-0.6B.jinja", "", "<|im_end|>", None),  # Qwen3: no BOS token
    ("Qwen-QwQ-32B.jinja", "", "<|im_end|>", None),  # QwQ: no BOS token
    ("Qwen3-Coder.jinja", "", "<|im_end|>", None),  # Qwen3-Coder: no BOS token
    ("Qwen3.5-4B.jinja", "", "<|im_end|>", None),  # Qwen3.5: no BOS token
    ("deepseek-ai-DeepSeek-V3.1.jinja", DS_BOS, DS_EOS, None),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", DS_BOS, DS_EOS, "deepseek-r1"),
    ("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", DS_BOS, DS_EOS, None),
    ("mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>", None),
    ("Mistral-Small-3.2-24B-Instruct-2506.jinja", "<s>", "</s>", None),
    ("unsloth-mistral-Devstral-Small-2507.jinja", "<s>", "</s>", None),
    ("google-gemma-2-2b-it.jinja", "<bos>", "<eos>", None),
    ("google-gemma-4-31B-it.jinja", "<bos>", "<eos>", None),
    ("microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>", None),
    ("HuggingFaceTB-SmolLM3-3B.jinja", "", "<|im_end|>", None),  # SmolLM3: no BOS token
    ("ibm-granite-granite-3.3-2B-Instruct.jinja", "<|end_of_text|>", "<|end_of_text|>", None),
    ("ibm-granite-granite-4.0.jinja", "<|end_of_text|>", "<|end_of_text|>", None),
    ("CohereForAI-c4ai-command-r-plus-tool_use.jinja", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", None),
    ("CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", None),
    ("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", "<|begin_of_text|>", "<|im_end|>", None),
    ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", "<|begin_of_text|>", "<|im_end|>", None),
    ("fireworks-ai-llama-3-firefunction-v2.jinja", "<|begin_of_text|>", "<|eot_id|>", None),
    ("meetkai-functionary-medium-v3.2.jinja", "<|begin_of_text|>", "<|eot_id|>", None),
    ("moonshotai-Kimi-K2.jinja", "[BOS]", "[EOS]", None),
    ("Kimi-K2-Instruct.jinja", "[BOS]", "[EOS]", None),
    ("GLM-4.6.jinja", "", "<|endoftext|>", None),  # GLM: no BOS token (the template writes [gMASK]<sop>)
    ("openai-gpt-oss-120b.jinja", "<|startoftext|>", "<|return|>", None),
    ("LFM2.5-8B-A1B.jinja", "<|startoftext|>", "<|im_end|>", None),
]

# Templates embedded in the bundled GGUF checkpoints: file written here, gguf_vocab.MODELS key.
GGUF_TEMPLATES = [
    ("HuggingFaceTB-SmolLM2-135M-Instruct.jinja", "smollm2"),
    ("Qwen-Qwen2.5-Coder-0.5B-Instruct.jinja", "qwen2.5"),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-7B.jinja", "deepseek-r1"),
]

# The tool_use variants of these models' templates: transformers picks them only when tools are
# given, and they iterate over tools unconditionally, so conversations without tools fail there
# ('NoneType' object is not iterable); the golden records those errors like any other.
TOOL_USE_TEMPLATES = {
    "CohereForAI-c4ai-command-r-plus-tool_use.jinja",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
}

# Every template must render single_user, and system_user too unless it refuses system messages
# through raise_exception (Gemma 2 does); a tool_use template must render tools_flat instead.
# At least this share of all (template, conversation) pairs must render text.
MIN_RENDERED_SHARE = 0.70


def extra_variables(name, conversations):
    """Variables a template needs beyond the common ones (recorded in the golden as
    extra_variables): firefunction-v2 reads its tools as a JSON string `functions` and the date
    as `datetime`, which its model card passes to apply_chat_template."""
    if name != "fireworks-ai-llama-3-firefunction-v2.jinja":
        return {}
    tools = next(c["tools"] for c in conversations if c["name"] == "tools_available")
    return {"functions": json.dumps([t["function"] for t in tools]),
            "datetime": FIXED_NOW.strftime("%Y-%m-%d %H:%M:%S")}


class GenerationBlock(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %}: transformers marks assistant text with it (for its
    assistant-token mask); the body renders unchanged, as a call block, so like transformers'
    own extension its {% set %}s stay inside it."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def hf_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols, GenerationBlock])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def template_messages(messages):
    """The messages as transformers passes them to the template: a message with reasoning under
    reasoning_content, thinking or reasoning (first non-null in that order) gets it as
    'thinking' (first key, unless already present) and as 'reasoning_content'."""
    out = []
    for m in copy.deepcopy(messages):
        reasoning = next((m[k] for k in ("reasoning_content", "thinking", "reasoning") if m.get(k) is not None), None)
        if reasoning is not None:
            m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
        out.append(m)
    return out


def render_variables(conv, bos, eos, extra):
    return dict(tools=copy.deepcopy(conv.get("tools")), documents=None,
                add_generation_prompt=conv.get("add_generation_prompt", True),
                bos_token=bos, eos_token=eos, **extra, **conv.get("chat_template_kwargs", {}))


def outcome(fn):
    """('text', rendered) or ('error', (class name, message)) of fn()."""
    try:
        return "text", fn()
    except Exception as e:  # noqa: BLE001 - any exception a template raises is a recorded result
        return "error", (type(e).__name__, str(e))


def fix_transformers_clock():
    """transformers' strftime_now calls datetime.now() of its module; make that the fixed time."""
    from transformers.utils import chat_template_utils

    class FixedClock(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return FIXED_NOW

    chat_template_utils.datetime = FixedClock


def read_template(name):
    # newline="" keeps the file's bytes (no newline translation).
    with open(os.path.join(TEMPLATE_DIR, name), encoding="utf-8", newline="") as f:
        return f.read()


def gguf_template(path, name):
    """Writes the GGUF's tokenizer.chat_template to chat_templates/<name> byte for byte; returns
    its text and the vocabulary's BOS/EOS token texts."""
    import gguf

    reader = gguf.GGUFReader(path)
    field = reader.fields["tokenizer.chat_template"]
    raw = bytes(field.parts[field.data[0]])
    with open(os.path.join(TEMPLATE_DIR, name), "wb") as f:
        f.write(raw)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    bos = tokens[reader.fields["tokenizer.ggml.bos_token_id"].contents()]
    eos = tokens[reader.fields["tokenizer.ggml.eos_token_id"].contents()]
    return raw.decode("utf-8"), bos, eos


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="models")
    ap.add_argument("--out", default="tests/reference/golden/chat_templates.json")
    args = ap.parse_args()

    import tokenizers
    import transformers
    from transformers.utils.chat_template_utils import render_jinja_template

    fix_transformers_clock()
    env = hf_environment()
    with open(CONVERSATIONS, encoding="utf-8") as f:
        conversations = json.load(f)

    files = gguf_vocab.VocabFiles(args.models)
    try:
        specs = [(name, read_template(name), bos, eos, tok) for name, bos, eos, tok in TEMPLATES]
        for name, key in GGUF_TEMPLATES:
            source, bos, eos = gguf_template(files.path(key), name)
            specs.append((name, source, bos, eos, key))
        pipelines = {key: make_tokenizer_golden.tokenizers_pipeline(files.path(key))
                     for key in sorted({s[4] for s in specs if s[4]})}
    finally:
        files.close()

    out_templates = []
    summary = []
    n_text = n_total = 0
    for name, source, bos, eos, tok in specs:
        template = env.from_string(source)
        extra = extra_variables(name, conversations)
        results = []
        for conv in conversations:
            variables = render_variables(conv, bos, eos, extra)
            kind, value = outcome(lambda: template.render(messages=template_messages(conv["messages"]), **variables))
            hf_kind, hf_value = outcome(lambda: render_jinja_template(
                [copy.deepcopy(conv["messages"])], chat_template=source,
                **render_variables(conv, bos, eos, extra))[0][0])
            if (kind, value) != (hf_kind, hf_value):
                raise SystemExit(f"{name} / {conv['name']}: jinja2 and transformers differ:\n"
                                 f"  jinja2:       {kind} {value!r}\n  transformers: {hf_kind} {hf_value!r}")
            result = {"conversation": conv["name"]}
            if kind == "text":
                result["text"] = value
                if tok:
                    result["ids"] = pipelines[tok].encode(value, add_special_tokens=False).ids
            else:
                result["error"] = value[1]
                result["error_type"] = value[0]
            results.append(result)
        rendered = [r["conversation"] for r in results if "text" in r]
        by_name = {r["conversation"]: r for r in results}
        if name in TOOL_USE_TEMPLATES:
            simple_ok = "text" in by_name["tools_flat"]
        else:
            system = by_name["system_user"]
            simple_ok = "text" in by_name["single_user"] and \
                ("text" in system or system["error_type"] == "TemplateError")
        if not simple_ok:
            raise SystemExit(f"{name}: does not render the simple conversations: {by_name}")
        n_text += len(rendered)
        n_total += len(results)
        errors = [f"{r['conversation']} ({r['error_type']})" for r in results if "error" in r]
        summary.append(f"{name:55s} rendered {len(rendered):2d}/{len(results)}"
                       + (f"; errors: {', '.join(errors)}" if errors else ""))
        entry = {"file": name, "bos_token": bos, "eos_token": eos, "tokenizer": tok}
        if extra:
            entry["extra_variables"] = extra
        entry["results"] = results
        out_templates.append(entry)

    share = n_text / n_total
    summary.append(f"{len(specs)} templates x {len(conversations)} conversations: {n_text}/{n_total} rendered "
                   f"({100 * share:.1f}%), {n_total - n_text} errors")
    print("\n".join(summary))
    if share < MIN_RENDERED_SHARE:
        raise SystemExit(f"only {100 * share:.1f}% of the pairs render text (need {100 * MIN_RENDERED_SHARE:.0f}%)")

    golden = {
        "generator": {"jinja2": jinja2.__version__, "transformers": transformers.__version__,
                      "tokenizers": tokenizers.__version__, "gguf": importlib.metadata.version("gguf"),
                      "python": platform.python_version()},
        "now": FIXED_NOW.isoformat(),
        "templates": out_templates,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
