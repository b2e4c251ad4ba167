#!/usr/bin/env python3
# The peer of bench_chat_template: the same templates and conversations rendered by Python jinja2
# set up as HF transformers sets it up (tests/reference/make_template_golden.py), each render
# starting from the messages' JSON text as gridlm's does. Prints the same JSON line.
#   /tmp/tplenv/bin/python tests/bench/bench_chat_template_jinja2.py [--repeat N]
# (jinja2 3.1.6; see tests/reference/make_template_golden.py for the environment.)
import argparse
import json
import os
import statistics
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
ref = os.path.join(here, "..", "reference")
sys.path.insert(0, ref)
from make_template_golden import hf_environment, template_messages  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    env = hf_environment()
    with open(os.path.join(ref, "chat_conversations.json"), encoding="utf-8") as f:
        convs = json.load(f)
    texts = [[json.dumps(m, ensure_ascii=False) for m in c["messages"]] for c in convs]

    def render(tmpl, conv, msgs):
        messages = template_messages([json.loads(m) for m in msgs])
        return tmpl.render(messages=messages, tools=conv.get("tools"), documents=None,
                           add_generation_prompt=conv.get("add_generation_prompt", True),
                           bos_token="<s>", eos_token="</s>", **conv.get("chat_template_kwargs", {}))

    per_template_us, renders, total = [], 0, 0.0
    folder = os.path.join(ref, "chat_templates")
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".jinja")):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            tmpl = env.from_string(f.read())
        ok = []
        for conv, msgs in zip(convs, texts):
            try:
                render(tmpl, conv, msgs)
                ok.append((conv, msgs))
            except Exception:  # noqa: BLE001 -- a refusal or failure leaves the pair out, as in gridlm's run
                pass
        if not ok:
            continue
        t0 = time.perf_counter()
        for _ in range(args.repeat):
            for conv, msgs in ok:
                render(tmpl, conv, msgs)
        s = time.perf_counter() - t0
        n = args.repeat * len(ok)
        per_template_us.append(1e6 * s / n)
        renders += n
        total += s
    print(json.dumps({"engine": "jinja2", "templates": len(per_template_us), "renders": renders,
                      "median_us_per_render": round(statistics.median(per_template_us), 1),
                      "max_us_per_render": round(max(per_template_us), 1),
                      "renders_per_s": round(renders / total)}))


if __name__ == "__main__":
    main()
