# Shared by the golden scripts: opens the three test GGUFs for llama.cpp and HF, including the
# cut-off DeepSeek file, which both refuse; for it a vocabulary-only copy is made.
#
# The DeepSeek GGUF in the model cache is only the first ~100 MB of the real file: its header
# (with the whole tokenizer) is complete, its tensor data is not. llama.cpp refuses such a file
# even with vocab_only, and gguf.GGUFReader fails on the truncated tensors, so we write a copy
# that keeps the metadata and declares zero tensors.
import os
import struct
import tempfile

MODELS = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "qwen2.5": "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
    "deepseek-r1": "DeepSeek-R1-Distill-Qwen-7B.head.gguf",
}
NEEDS_VOCAB_COPY = {"deepseek-r1"}

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _skip_value(f, vtype):
    if vtype == 8:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(n, os.SEEK_CUR)
    elif vtype == 9:
        etype, count = struct.unpack("<IQ", f.read(12))
        if etype in _SCALAR:
            f.seek(struct.calcsize(_SCALAR[etype]) * count, os.SEEK_CUR)
        else:
            for _ in range(count):
                _skip_value(f, etype)
    else:
        f.seek(struct.calcsize(_SCALAR[vtype]), os.SEEK_CUR)


def metadata_only_copy(src, dst_dir):
    """Writes dst_dir/<name>: src's header and key/values, tensor_count 0, padded to 32 bytes."""
    with open(src, "rb") as f:
        magic, version, _n_tensors, n_kv = struct.unpack("<4sIQQ", f.read(24))
        assert magic == b"GGUF", src
        for _ in range(n_kv):
            (klen,) = struct.unpack("<Q", f.read(8))
            f.seek(klen, os.SEEK_CUR)
            (vtype,) = struct.unpack("<I", f.read(4))
            _skip_value(f, vtype)
        end = f.tell()
        f.seek(24)
        kv_bytes = f.read(end - 24)
    dst = os.path.join(dst_dir, os.path.basename(src))
    with open(dst, "wb") as out:
        out.write(struct.pack("<4sIQQ", magic, version, 0, n_kv))
        out.write(kv_bytes)
        out.write(b"\0" * ((-out.tell()) % 32))
    return dst


class VocabFiles:
    """Paths of GGUFs that both llama.cpp (vocab_only) and HF can open; cleans up on exit."""

    def __init__(self, models_dir):
        self.models_dir = models_dir
        self.tmp = tempfile.TemporaryDirectory(prefix="gridlm-vocab-")

    def path(self, key):
        src = os.path.join(self.models_dir, MODELS[key])
        if not os.path.exists(src):
            raise SystemExit(f"missing model file {src}: run launch/fetch_models.sh first")
        if key in NEEDS_VOCAB_COPY:
            dst = os.path.join(self.tmp.name, MODELS[key])
            if not os.path.exists(dst):
                metadata_only_copy(src, self.tmp.name)
            return dst
        return src

    def close(self):
        self.tmp.cleanup()
