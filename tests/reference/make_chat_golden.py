#!/usr/bin/env python3
# Makes tests/reference/golden/chat_<model>.tsv: the prompt text each test checkpoint's own Jinja
# chat template renders for a dozen conversations, and its token ids from llama.cpp and HF.
#
# Versions used for the committed goldens:
#   jinja2 3.1.6, transformers 5.24.0, tokenizers 0.23.3, gguf 0.19.0, torch 2.15.0 (CPU), Python 3.11 [this interpreter]
#   llama-cpp-python 0.3.36 (its vendored llama.cpp, built from source)                   [--llama-python]
# Usage:
#   /tmp/torchenv/bin/python tests/reference/make_chat_golden.py \
#       --models models --llama-python /tmp/llamaenv/bin/python --out tests/reference/golden
#
# Rendering follows HF apply_chat_template: a sandboxed jinja2 environment with trim_blocks and
# lstrip_blocks, the loopcontrols extension, raise_exception and a json.dumps tojson; variables
# messages, tools=None, documents=None, add_generation_prompt=True, bos_token and eos_token (the
# vocabulary's texts of the BOS/EOS ids). The text is cross-checked with transformers' own
# render_jinja_template. Ids: llama.cpp tokenize(text, add_bos=False, special=True) -- the
# template writes BOS itself where the model wants one -- and HF apply_chat_template(tokenize=True).
#
# File format (tab-separated, '#' comments), per conversation:
#   conv  index  name
#   msg   role   hex(content)        (one line per message)
#   text  hex(rendered prompt)
#   ids   llama.cpp ids
#   hf    transformers ids    agree(1/0 with llama.cpp)
#   tk    tokenizers ids (make_tokenizer_golden.tokenizers_pipeline, no BOS added)    agree
import argparse
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_vocab  # noqa: E402
import make_tokenizer_golden  # noqa: E402

CONVERSATIONS = [
    ("single_user", [("user", "Hello!")]),
    ("system_user", [("system", "You are a terse assistant."), ("user", "What is the capital of France?")]),
    ("multi_turn", [("user", "Hi, who are you?"), ("assistant", "I am a helpful assistant."),
                    ("user", "Tell me a joke.")]),
    ("system_multi_turn", [("system", "Answer in one word."), ("user", "Colour of the sky?"),
                           ("assistant", "Blue."), ("user", "And grass?"), ("assistant", "Green."),
                           ("user", "Snow?")]),
    ("assistant_think", [("user", "What is 2+2?"),
                         ("assistant", "<think>\nSimple arithmetic: 2+2=4.\n</think>\n\nThe answer is 4."),
                         ("user", "And 3+3?")]),
    ("two_thinks", [("user", "Q1"), ("assistant", "<think>a</think>mid<think>b</think> final"), ("user", "Q2")]),
    ("unicode_newlines", [("user", "Translate: 你好 😀\nLine two\n\nLine four"), ("assistant", "Hello 😀 — café"),
                          ("user", "Thanks\t!  ")]),
    ("ends_with_assistant", [("user", "Say hi."), ("assistant", "Hi!")]),
    ("system_in_middle", [("user", "First question?"), ("system", "Be brief."), ("user", "Second question?")]),
    ("two_systems", [("system", "System A."), ("user", "u1"), ("assistant", "a1"), ("system", "System B."),
                     ("user", "u2")]),
    ("tool_results", [("user", "Weather in Paris?"), ("assistant", "Let me check."), ("tool", "{\"temp\": 21}"),
                      ("tool", "{\"temp\": 22}"), ("assistant", "It is 21-22 degrees."), ("user", "Thanks")]),
    ("empty_contents", [("user", ""), ("assistant", ""), ("user", "ok")]),
    ("special_text_inside", [("user", "What does <|im_end|> or <｜User｜> mean?")]),
    ("code_block", [("system", "You write Python."),
                    ("user", "Write hello world.\n```python\n# here\n```"),
                    ("assistant", "```python\nprint(\"hello world\")\n```"), ("user", "Now in C.")]),
]


def hf_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def render(env, source, messages, bos, eos):
    return env.from_string(source).render(messages=messages, tools=None, documents=None,
                                          add_generation_prompt=True, bos_token=bos, eos_token=eos)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="models")
    ap.add_argument("--llama-python", default="/tmp/llamaenv/bin/python")
    ap.add_argument("--out", default="tests/reference/golden")
    args = ap.parse_args()

    import gguf
    import transformers
    from transformers.utils.chat_template_utils import render_jinja_template

    env = hf_environment()
    files = gguf_vocab.VocabFiles(args.models)
    summary = []
    try:
        for key in gguf_vocab.MODELS:
            path = files.path(key)
            reader = gguf.GGUFReader(path)
            source = reader.fields["tokenizer.chat_template"].contents()
            tokens = reader.fields["tokenizer.ggml.tokens"].contents()
            bos = tokens[reader.fields["tokenizer.ggml.bos_token_id"].contents()]
            eos = tokens[reader.fields["tokenizer.ggml.eos_token_id"].contents()]
            hf = make_tokenizer_golden.hf_tokenizer(path)
            pipe = make_tokenizer_golden.tokenizers_pipeline(path)

            texts = []
            for _name, conv in CONVERSATIONS:
                messages = [{"role": r, "content": c} for r, c in conv]
                text = render(env, source, messages, bos, eos)
                hf_text = render_jinja_template([messages], chat_template=source, add_generation_prompt=True,
                                                bos_token=bos, eos_token=eos)[0][0]
                if text != hf_text:
                    raise SystemExit(f"{key}: jinja2 and transformers render differently: {text!r} vs {hf_text!r}")
                texts.append(text)
            ll = make_tokenizer_golden.llama_tokenize(args.llama_python, path, texts, add_bos=False)

            lines = [
                f"# {gguf_vocab.MODELS[key]}: jinja2 {jinja2.__version__}, transformers {transformers.__version__},"
                f" llama-cpp-python {ll['version']}; bos_token={json.dumps(bos, ensure_ascii=False)}"
                f" eos_token={json.dumps(eos, ensure_ascii=False)}",
            ]
            n_agree = n_agree_pipe = 0
            for i, ((name, conv), text) in enumerate(zip(CONVERSATIONS, texts)):
                messages = [{"role": r, "content": c} for r, c in conv]
                hf_ids = hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
                if isinstance(hf_ids, dict) or hasattr(hf_ids, "keys"):
                    hf_ids = hf_ids["input_ids"]
                hf_ids = list(hf_ids)
                agree = int(hf_ids == ll["ids"][i])
                n_agree += agree
                lines.append(f"conv\t{i}\t{name}")
                for role, content in conv:
                    lines.append(f"msg\t{role}\t{content.encode('utf-8').hex()}")
                lines.append(f"text\t{text.encode('utf-8').hex()}")
                lines.append("ids\t" + " ".join(map(str, ll["ids"][i])))
                lines.append("hf\t" + " ".join(map(str, hf_ids)) + f"\t{agree}")
                tk_ids = pipe.encode(text, add_special_tokens=False).ids
                agree_pipe = int(tk_ids == ll["ids"][i])
                n_agree_pipe += agree_pipe
                lines.append("tk\t" + " ".join(map(str, tk_ids)) + f"\t{agree_pipe}")
            lines.insert(1, f"# {len(CONVERSATIONS)} conversations; llama.cpp ids agree with transformers on "
                            f"{n_agree}, with tokenizers on {n_agree_pipe}")
            if key in make_tokenizer_golden.DISAGREEMENT_NOTES:
                lines.insert(2, "# " + make_tokenizer_golden.DISAGREEMENT_NOTES[key])
            with open(os.path.join(args.out, f"chat_{key}.tsv"), "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            summary.append(f"{key}: {len(CONVERSATIONS)} conversations, llama.cpp ids agree with transformers on "
                           f"{n_agree}, with tokenizers on {n_agree_pipe}")
    finally:
        files.close()
    print("\n".join(summary))


if __name__ == "__main__":
    main()
