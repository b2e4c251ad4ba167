#!/usr/bin/env python3
# Makes tests/reference/golden/tokenizer_<model>.tsv: token ids of ~330 varied strings for the
# three test tokenizers, from llama.cpp and from HF transformers, plus llama.cpp's pieces.
#
# Versions used for the committed goldens:
#   llama-cpp-python 0.3.36 (its vendored llama.cpp, built from source), numpy 2.4.6 [--llama-python]
#   transformers 5.24.0, tokenizers 0.23.3, gguf 0.19.0, torch 2.15.0 (CPU), Python 3.11 [this interpreter]
# Usage (two interpreters, since the packages live in separate virtual environments):
#   /tmp/torchenv/bin/python tests/reference/make_tokenizer_golden.py \
#       --models models --llama-python /tmp/llamaenv/bin/python --out tests/reference/golden
#
# Output, one line per string (lines starting with '#' are comments):
#   index  hex(UTF-8 text)  llama.cpp ids  transformers ids  agree  tokenizers ids  agree  text (JSON)
# llama.cpp: Llama(path, vocab_only=True).tokenize(text, add_bos=True, special=True).
# transformers: AutoTokenizer.from_pretrained(dir, gguf_file=name).encode(text), special tokens added.
# tokenizers: the GGUF vocabulary in a tokenizers.Tokenizer set up like the model's tokenizer.json
#   (tokenizers_pipeline below), encode(text).ids.
# agree: 1 when that column equals llama.cpp's. The C++ tests must equal llama.cpp on every line
# (and so each HF column wherever it agrees); the header counts the disagreements.
# tokenizer_pieces_<model>.tsv: id, hex of llama.cpp's token_to_piece(id, special=True).
# pretokenize_<kind>.tsv: hex(text), then the hex of each word HF tokenizers' pre-tokenizer makes
# (Split(Regex(tokenizer.json regex), behavior="isolated") for llama3 / qwen2; Digits + ByteLevel
# for smollm; ByteLevel for gpt2, its words mapped back to bytes).
import argparse
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_vocab  # noqa: E402


def test_strings():
    s = []
    # Plain English and contractions (both cases: the Qwen2/Llama3 regex folds case, GPT-2's not).
    s += [
        "Hello world", "Hello, world!", "The quick brown fox jumps over the lazy dog.",
        "hello", " hello", "  hello", "Hello World HELLO world", "a", "I", "A.", "x y z",
        "don't", "DON'T", "I'm here", "I'M HERE", "they're", "THEY'RE", "we've", "We'VE", "she'll",
        "SHE'LL", "he'd", "HE'D", "it's", "IT'S", "'s", "'S", "'t", "'re", "'ve", "'m", "'ll", "'d",
        "O'Neil's rock 'n' roll", "''", "'''", "it''s", "'ſ long s", "can't won't shan't",
        "y'all'd've", "'hello'", "\"quoted\"", "`backticks`",
    ]
    # Numbers and digit runs (SmolLM2 splits every digit; Llama 3 groups by three).
    s += [
        "1", "12", "123", "1234", "12345", "123456789", "12345678901234567890", " 42", "42 ",
        "3.14159", "-273.15", "1,000,000", "1e-10", "0x1F3A", "v1.2.3", "2024-01-31", "10:45pm",
        "x2y3z4", "abc123def", "123abc", "٣٤٥ arabic-indic", "१२३ devanagari", "①②③", "½ ¼ ¾",
        "Ⅻ roman", "x² + y³", "$5.00", "€100", "100%", "#1", "9" * 40,
    ]
    # Whitespace runs, newlines, tabs, exotic spaces.
    s += [
        " ", "  ", "   ", "    x", "x    ", "x    y", "\t", "\t\tx", "x\t", "a\tb\tc", "\n", "\n\n",
        "\n\n\n", "a\n", "\na", "a\nb", "a\n\nb", "a \n b", "a  \n  b", "\r\n", "a\r\nb", "\r",
        "line1\r\nline2\r\n", " \n ", "\n \n", "\u00a0", "a\u00a0b", "a\u3000b", "\u2003em space",
        "\u2028sep", "\v", "\f", "end with spaces   ", "   ", "\t \t \n", " " * 17 + "x",
        "\n" * 9 + "x", "tabs\t\t\t\tend",
    ]
    # CJK, emoji, accents, other scripts.
    s += [
        "你好", "你好世界", "我爱北京天安门。", "中文，标点！", "日本語のテキスト", "ひらがな", "カタカナ",
        "한국어 텍스트", "안녕하세요", "😀", "😀😀😀", "I ❤️ NY", "👍🏽", "👨‍👩‍👧‍👦 family", "🇫🇷🇩🇪",
        "🎉 party 🎊", "☕️", "✓ done ✗", "→ ← ↑ ↓", "café", "naïve", "Ångström", "e\u0301 combining",
        "résumé", "Straße", "İstanbul", "Tiếng Việt", "ñandú", "Ελληνικά", "Привет, мир!",
        "مرحبا بالعالم", "שלום עולם", "हिन्दी भाषा", "ภาษาไทย", "ქართული", "Հայերեն",
        "mixed 中文 and English", "Русский и English 混合", "αβγ123δεζ", "emoji😀inside", "日本語123",
        "a\u200bzero width", "\ufeffbom", "\u00ad soft hyphen", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟙𝟚𝟛",
    ]
    # Punctuation and symbols.
    s += [
        "!!!", "...", "?!?", "—", "– en dash", "“smart quotes”", "‘single’", "«guillemets»",
        "a.b.c", "foo_bar_baz", "camelCaseWord", "kebab-case-word", "@user", "#hashtag", "a/b\\c",
        "(parens) [brackets] {braces}", "<tag attr=\"v\">", "&amp; &lt;", "***bold***", "~~strike~~",
        "|pipe|", "^caret", "a+b=c", "x<=y>=z", "!=", "==", "=>", "->", "::", "...?", ".,;:",
    ]
    # Code.
    s += [
        "def f(x):\n    return x * 2\n",
        "for i in range(10):\n\tprint(i)",
        "int main() {\n  return 0;\n}\n",
        "#include <stdio.h>\n",
        "std::vector<int> v{1, 2, 3};",
        "if (a && b || !c) { x++; }",
        '{"key": "value", "n": [1, 2, 3]}',
        "<html><body><p>Hi</p></body></html>",
        "SELECT * FROM users WHERE id = 42;",
        "ls -la | grep foo > out.txt 2>&1",
        "^\\s*([A-Za-z_]\\w*)\\s*=\\s*(.+)$",
        "| a | b |\n|---|---|\n| 1 | 2 |",
        "```python\nprint('hi')\n```",
        "    indented four\n        eight",
        "x = {'a': 1}  # comment",
        "fn main() { println!(\"hello\"); }",
        "const f = (a, b) => a + b;",
        "    \n    \n",
        "class Foo:\n    def __init__(self):\n        self.x = None\n",
        "https://example.com/path?q=1&r=two#frag",
        "user@example.com",
        "C:\\Users\\name\\file.txt",
        "/usr/local/bin/gridlm --help",
    ]
    # Special tokens of the three vocabularies inside text (only special where the vocab has them).
    s += [
        "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nHi<|im_end|>",
        "<|im_start|><|im_end|>", "text<|im_end|>more", "<<|im_end|>>", "<|im_start", "|im_start|>",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n",
        "<think>", "</think>", "<think>\nreasoning\n</think>\n\nanswer", "<think></think>",
        "<｜User｜>Hello<｜Assistant｜>", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>",
        "<｜begin▁of▁sentence｜>You are helpful.<｜User｜>1+1?<｜Assistant｜>",
        "<tool_call>\n{\"name\": \"f\"}\n</tool_call>", "<|fim_prefix|>def<|fim_suffix|>x<|fim_middle|>",
        "<repo_name>gridlm<file_sep>main.cpp", "<filename>a.py", "<|EOT|>", "<|vision_start|>",
        " <|im_end|> ", "\n<|im_end|>\n", "<|im_end|><|im_end|>", "[PAD151665]", "<|endoftext|>text",
    ]
    # Long words and repetitive runs.
    s += [
        "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "Donaudampfschifffahrtsgesellschaftskapitän", "a" * 200, "ab" * 150, "abc" * 100,
        "z" * 1000, "The" * 50, "ha" * 64, "x" * 63 + " " + "y" * 65, "🙂" * 30, "中" * 100,
        "é" * 80, "-" * 80, "=" * 64, "_" * 40, "." * 100, "0" * 100, " " * 100, "\n" * 50,
        "QmFzZTY0RW5jb2RlZFN0cmluZ1dpdGhOb1NwYWNlc0F0QWxsMTIzNDU2Nzg5MA==",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "ThisIsAVeryLongCamelCaseIdentifierThatKeepsGoingAndGoingForeverAndEver",
    ]
    # Longer prose.
    s += [
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
        "age of foolishness, it was the epoch of belief, it was the epoch of incredulity.",
        "Large language models split text into tokens before they read it. A tokenizer that differs "
        "from the one used in training by even a single merge produces ids the model has never seen.",
        "Mr. Smith's 3 cats (aged 2, 5 & 11) didn't like the new 12-storey building's 1st-floor flat!",
    ]
    # Deterministic random mixtures of the fragments above and of single characters.
    rng = random.Random(20250129)
    fragments = [x for x in s if len(x) < 40]
    alphabet = "abcXYZ019 \t\n'.,!?-_()[]{}<>|你好😀éß\u00a0\u3000" + "\u0301"
    for _ in range(40):
        s.append("".join(rng.choice(fragments) for _ in range(rng.randint(2, 6))))
    for _ in range(30):
        s.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))))
    s.append("")  # the empty prompt: BOS alone where the model adds one
    return list(dict.fromkeys(s))  # drop repeats, keep order


def llama_worker():
    """Runs under the llama-cpp-python interpreter: JSON {path, texts, pieces} in, ids out."""
    import llama_cpp

    req = json.load(sys.stdin)
    llm = llama_cpp.Llama(model_path=req["path"], vocab_only=True, verbose=False)
    ids = [llm.tokenize(t.encode("utf-8"), add_bos=req.get("add_bos", True), special=True) for t in req["texts"]]
    pieces = {}
    for i in req.get("pieces", []):
        pieces[str(i)] = llm.detokenize([i], special=True).hex()
    json.dump({"ids": ids, "pieces": pieces, "version": llama_cpp.__version__}, sys.stdout)


def llama_tokenize(llama_python, path, texts, add_bos=True, pieces=()):
    req = json.dumps({"path": path, "texts": texts, "add_bos": add_bos, "pieces": list(pieces)})
    out = subprocess.run([llama_python, os.path.abspath(__file__), "--llama-worker"], input=req.encode(),
                         capture_output=True, check=True)
    return json.loads(out.stdout)


def hf_tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))


def tokenizers_pipeline(path):
    """HF tokenizers built from the GGUF vocabulary the way the models' tokenizer.json files
    configure it (transformers' GGUF loader drops SmolLM2's digit split and mangles DeepSeek's
    full-width special tokens, so this is the second, independent reference)."""
    import gguf
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers, processors

    r = gguf.GGUFReader(path)
    field = lambda k: r.fields[k].contents() if k in r.fields else None  # noqa: E731
    tokens, types, merges = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type"), field("tokenizer.ggml.merges")
    pre = field("tokenizer.ggml.pre")
    kind = {"deepseek-r1-qwen": "qwen2", "llama-bpe": "llama3"}.get(pre, pre)
    vocab = {t: i for i, t in enumerate(tokens)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges],
                              ignore_merges=kind == "llama3"))
    if kind == "smollm":
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        tk.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(HF_SPLIT_REGEX[kind]), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    tk.add_tokens([AddedToken(t, special=False, normalized=False) for t, ty in zip(tokens, types) if ty == 4])
    if field("tokenizer.ggml.add_bos_token"):
        bos = tokens[field("tokenizer.ggml.bos_token_id")]
        tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, vocab[bos])])
    return tk


# The regexes as the models' tokenizer.json files spell them (case-insensitive contractions).
HF_SPLIT_REGEX = {
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}


def write_pretokenize_goldens(texts, out_dir):
    import tokenizers
    from tokenizers import Regex, pre_tokenizers

    byte_of = {}
    n = 0
    for b in range(256):
        printable = 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or b >= 0xAE
        byte_of[chr(b) if printable else chr(256 + n)] = b
        n += 0 if printable else 1

    def unmap(word):
        return bytes(byte_of[c] for c in word)

    kinds = {
        "llama3": (pre_tokenizers.Split(Regex(HF_SPLIT_REGEX["llama3"]), behavior="isolated"), False),
        "qwen2": (pre_tokenizers.Split(Regex(HF_SPLIT_REGEX["qwen2"]), behavior="isolated"), False),
        "smollm": (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]), True),
        "gpt2": (pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), True),
    }
    for kind, (pre, mapped) in kinds.items():
        with open(os.path.join(out_dir, f"pretokenize_{kind}.tsv"), "w", encoding="utf-8") as f:
            f.write(f"# HF tokenizers {tokenizers.__version__} pre-tokenizer words for kind {kind}: "
                    "hex(text) then hex of each word\n")
            for t in texts:
                if not t:
                    continue
                words = [w for w, _ in pre.pre_tokenize_str(t)]
                hexes = [(unmap(w) if mapped else w.encode("utf-8")).hex() for w in words]
                f.write("\t".join([t.encode("utf-8").hex()] + hexes) + "\n")


# Why the transformers column differs from llama.cpp (investigated; the tokenizers column, set up
# like the original tokenizer.json files, agrees with llama.cpp on every string of all three).
DISAGREEMENT_NOTES = {
    "smollm2": "transformers' GGUF loader gives SmolLM2 a plain ByteLevel pre-tokenizer, without the "
               "Digits(individual_digits) step of its tokenizer.json, so a space or a number character "
               "such as '½' next to other text groups differently; llama.cpp (smollm: \\p{N} first) and "
               "tokenizers split every number character off first.",
    "deepseek-r1": "transformers' GGUF loader (5.24.0) mishandles this vocabulary: it adds BOS as a new id "
                   "152065 instead of 151646, reads the full-width control tokens (<｜User｜>, ...) as plain "
                   "text, and adds <|endoftext|> as a new token 152064; so no string agrees.",
}


def piece_sample(n_vocab, special_ids):
    rng = random.Random(7)
    ids = set(range(0, 300)) | set(rng.sample(range(n_vocab), 300)) | set(special_ids)
    return sorted(i for i in ids if i < n_vocab)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-worker", action="store_true")
    ap.add_argument("--models", default="models")
    ap.add_argument("--llama-python", default="/tmp/llamaenv/bin/python")
    ap.add_argument("--out", default="tests/reference/golden")
    args = ap.parse_args()
    if args.llama_worker:
        return llama_worker()

    import tokenizers
    import transformers

    texts = test_strings()
    write_pretokenize_goldens(texts, args.out)
    files = gguf_vocab.VocabFiles(args.models)
    summary = []
    try:
        for key in gguf_vocab.MODELS:
            path = files.path(key)
            hf = hf_tokenizer(path)
            pipe = tokenizers_pipeline(path)
            n_vocab = pipe.get_vocab_size(with_added_tokens=False)
            specials = sorted(pipe.get_added_tokens_decoder().keys())
            res = llama_tokenize(args.llama_python, path, texts, pieces=piece_sample(n_vocab, specials))
            n_agree = n_agree_pipe = 0
            lines = [
                f"# {gguf_vocab.MODELS[key]}: llama-cpp-python {res['version']}, transformers "
                f"{transformers.__version__}, tokenizers {tokenizers.__version__}",
                "# index\thex(text)\tllama.cpp ids\ttransformers ids\tagree\ttokenizers ids\tagree\ttext (JSON)",
            ]
            for i, t in enumerate(texts):
                ll = res["ids"][i]
                h = hf.encode(t, add_special_tokens=True)
                p = pipe.encode(t).ids
                agree, agree_pipe = int(ll == h), int(ll == p)
                n_agree += agree
                n_agree_pipe += agree_pipe
                lines.append("\t".join([str(i), t.encode("utf-8").hex(), " ".join(map(str, ll)), " ".join(map(str, h)),
                                        str(agree), " ".join(map(str, p)), str(agree_pipe),
                                        json.dumps(t, ensure_ascii=False)]))
            lines.insert(2, f"# {len(texts)} strings; llama.cpp agrees with transformers on {n_agree}, "
                            f"with tokenizers on {n_agree_pipe}")
            if key in DISAGREEMENT_NOTES:
                lines.insert(3, "# " + DISAGREEMENT_NOTES[key])
            with open(os.path.join(args.out, f"tokenizer_{key}.tsv"), "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            with open(os.path.join(args.out, f"tokenizer_pieces_{key}.tsv"), "w", encoding="utf-8") as f:
                f.write(f"# {gguf_vocab.MODELS[key]}: id\thex(llama.cpp token_to_piece(id, special=True))\n")
                for i, p in sorted(res["pieces"].items(), key=lambda kv: int(kv[0])):
                    f.write(f"{i}\t{p}\n")
            summary.append(f"{key}: {len(texts)} strings, llama.cpp agrees with transformers on {n_agree}, "
                           f"with tokenizers on {n_agree_pipe}")
    finally:
        files.close()
    print("\n".join(summary))


if __name__ == "__main__":
    main()
