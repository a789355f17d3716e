"""GGUF export: an llmlab checkpoint -> one `.gguf` file that llama.cpp and Ollama run.

Written with the `gguf` package (llama.cpp's own writer) in llama.cpp's `gpt2` or `llama`
architecture, with the names and metadata keys its converter (convert_hf_to_gguf.py) writes:
    gpt2:  token_embd, position_embd, blk.N.{attn_norm, attn_qkv, attn_output, ffn_norm, ffn_up,
           ffn_down}, output_norm, output; gpt2.* hyperparameters
    llama: token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate,
           ffn_up, ffn_down}, output_norm, output; llama.* hyperparameters
A tied head is left out (llama.cpp then reads token_embd). llama.cpp's `llama` architecture
rotates interleaved pairs where llmlab (like Hugging Face) rotates halves, so q and k rows are
permuted as the converter permutes Hugging Face's. The tokenizer goes in as llama.cpp's `gpt2`
(byte-level BPE) vocabulary: tokens, token types, merges, special ids, chat template.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmlab.errors import CheckpointError, ConfigError, OutputError

QUANTIZE_CHOICES = ("f32", "f16", "q8_0")


@dataclass
class GGUFResult:
    src: str
    out: str
    architecture: str  # llama.cpp's: gpt2 or llama
    quantize: str
    tensors: int
    bytes: int
    vocab: int  # tokens in the file (the model's vocab_size; unused ids padded)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_gguf(ckpt_dir: str | Path, out_file: str | Path, quantize: str = "f32") -> GGUFResult:
    """Write the llmlab checkpoint at `ckpt_dir` as the GGUF file `out_file` (which must not exist):
    weights in f32, f16 or q8_0 (2-D weight matrices; norms, biases and position embeddings stay f32)."""
    import gguf

    from llmlab.checkpoint import WEIGHTS_FILE, check_state_dict, load_config, load_quantization, read_safetensors
    from llmlab.interop.family import expected_weights
    from llmlab.tokenizer import Tokenizer

    ckpt, out = Path(ckpt_dir), Path(out_file)
    if quantize not in QUANTIZE_CHOICES:
        raise ConfigError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, got {quantize!r}")
    if out.exists():
        raise OutputError(f"--out {out} already exists; choose a new file name or remove it first")
    cfg = load_config(ckpt)
    arch = _architecture(cfg, ckpt)
    if load_quantization(ckpt) is not None:
        raise CheckpointError(f"cannot export {ckpt} as GGUF: it is a quantised checkpoint; export the "
                              "unquantised one (--quantize q8_0 quantises for llama.cpp)")
    if not (ckpt / "tokenizer.json").is_file():
        raise CheckpointError(f"cannot export {ckpt} as GGUF: it has no tokenizer.json (llama.cpp needs the vocabulary)")
    tokenizer = Tokenizer.from_pretrained(ckpt)
    vocab = _vocabulary(tokenizer, cfg.vocab_size, ckpt)
    tensors = read_safetensors(ckpt / WEIGHTS_FILE)
    check_state_dict(expected_weights(cfg), tensors, ckpt / WEIGHTS_FILE)
    named = _gpt2_tensors(cfg, tensors) if arch == "gpt2" else _llama_tensors(cfg, tensors)

    qtype = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
             "q8_0": gguf.GGMLQuantizationType.Q8_0}[quantize]
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quantize]
    notes: list[str] = []
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(tmp, arch)
    try:
        writer.add_name(ckpt.resolve().name)
        _hyperparameters(writer, cfg, arch)
        writer.add_file_type(int(file_type))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _tokenizer_metadata(writer, tokenizer, vocab)
        for name, array in named.items():
            data, raw = _encode(name, array, qtype, notes)
            writer.add_tensor(name, data, raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        # A hard link never replaces: a file that appeared at `out` during the work is kept.
        try:
            os.link(tmp, out)
        except FileExistsError:
            raise OutputError(f"--out {out} appeared while exporting; refusing to replace it") from None
        except OSError:  # a file system without hard links: check, then rename
            if out.exists():
                raise OutputError(f"--out {out} appeared while exporting; refusing to replace it") from None
            os.replace(tmp, out)
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    return GGUFResult(src=str(ckpt), out=str(out), architecture=arch, quantize=quantize, tensors=len(named),
                      bytes=out.stat().st_size, vocab=len(vocab[0]), notes=notes)


# ---------------------------------------------------------------------------- what GGUF can express
def _architecture(cfg, ckpt: Path) -> str:
    """llama.cpp's architecture for `cfg`, or a one-line CheckpointError saying why there is none."""
    from llmlab.interop.families.llama import slides
    from llmlab.interop.family import families

    arch = {"gpt2": "gpt2", "llama": "llama", "mistral": "llama"}.get(cfg.family)
    if arch is None:
        raise CheckpointError(f"cannot export {ckpt} as GGUF: family {cfg.family!r} is not supported "
                              "(llmlab writes GGUF for the gpt2, llama and mistral families)")
    problems = [p for p in families()[cfg.family].export_problems(cfg) if "sliding" not in p and "mixes" not in p]
    if slides(cfg):
        problems.append(f"sliding_window is {cfg.sliding_window} (llama.cpp's {arch} architecture attends to the "
                        "whole context)")
    if arch == "gpt2" and cfg.mlp != "gelu":
        problems.append(f"mlp is {cfg.mlp!r} (llama.cpp's gpt2 has a GELU MLP)")
    if arch == "llama" and (cfg.attention_bias or cfg.mlp_bias):
        problems.append("the model has biases (llama.cpp's llama architecture is exported without them here)")
    if problems:
        raise CheckpointError(f"cannot export {ckpt} as GGUF ({arch}): {'; '.join(problems)}")
    return arch


# ---------------------------------------------------------------------------- tensors
def _np(t) -> Any:
    return t.detach().float().cpu().numpy()


def _gpt2_tensors(cfg, state: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    def get(name: str, shape: tuple[int, ...]) -> Any:
        # llama.cpp's gpt2 requires every bias: a model without them gets zeros, which is exact.
        return _np(state[name]) if name in state else np.zeros(shape, dtype=np.float32)

    d, ff = cfg.d_model, cfg.d_ff
    out = {"token_embd.weight": _np(state["embed.weight"]), "position_embd.weight": _np(state["pos_embed.weight"])}
    for i in range(cfg.n_layer):
        b, o = f"blocks.{i}.", f"blk.{i}."
        out |= {
            o + "attn_norm.weight": get(b + "attn_norm.weight", (d,)), o + "attn_norm.bias": get(b + "attn_norm.bias", (d,)),
            o + "attn_qkv.weight": get(b + "attn.qkv.weight", (3 * d, d)), o + "attn_qkv.bias": get(b + "attn.qkv.bias", (3 * d,)),
            o + "attn_output.weight": get(b + "attn.out.weight", (d, d)), o + "attn_output.bias": get(b + "attn.out.bias", (d,)),
            o + "ffn_norm.weight": get(b + "mlp_norm.weight", (d,)), o + "ffn_norm.bias": get(b + "mlp_norm.bias", (d,)),
            o + "ffn_up.weight": get(b + "mlp.up.weight", (ff, d)), o + "ffn_up.bias": get(b + "mlp.up.bias", (ff,)),
            o + "ffn_down.weight": get(b + "mlp.down.weight", (d, ff)), o + "ffn_down.bias": get(b + "mlp.down.bias", (d,)),
        }
    out |= {"output_norm.weight": get("final_norm.weight", (d,)), "output_norm.bias": get("final_norm.bias", (d,))}
    if not cfg.tie_embeddings:
        out["output.weight"] = _np(state["lm_head.weight"])
    return out


def _llama_tensors(cfg, state: dict[str, Any]) -> dict[str, Any]:
    q_dim, kv_dim = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
    out = {"token_embd.weight": _np(state["embed.weight"])}
    for i in range(cfg.n_layer):
        b, o = f"blocks.{i}.", f"blk.{i}."
        q, k, v = state[b + "attn.qkv.weight"].split([q_dim, kv_dim, kv_dim])
        out |= {
            o + "attn_norm.weight": _np(state[b + "attn_norm.weight"]),
            o + "attn_q.weight": _np(rotary_rows(q, cfg.n_head)),
            o + "attn_k.weight": _np(rotary_rows(k, cfg.n_kv_head)),
            o + "attn_v.weight": _np(v),
            o + "attn_output.weight": _np(state[b + "attn.out.weight"]),
            o + "ffn_norm.weight": _np(state[b + "mlp_norm.weight"]),
            o + "ffn_gate.weight": _np(state[b + "mlp.gate.weight"]),
            o + "ffn_up.weight": _np(state[b + "mlp.up.weight"]),
            o + "ffn_down.weight": _np(state[b + "mlp.down.weight"]),
        }
    out["output_norm.weight"] = _np(state["final_norm.weight"])
    if not cfg.tie_embeddings:
        out["output.weight"] = _np(state["lm_head.weight"])
    return out


def rotary_rows(w, n_head: int):
    """Reorder each head's rows from rotate-half pairs (i, i + d/2) to adjacent pairs (2i, 2i + 1),
    llama.cpp's RoPE layout (convert_hf_to_gguf's `permute`)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _encode(name: str, array: Any, qtype: Any, notes: list[str]) -> tuple[Any, Any]:
    """The array as written, and its GGML type when quantised. As llama.cpp's converter does, only
    2-D weight matrices are quantised; a matrix whose rows q8_0 cannot block (a length not a
    multiple of 32) is written in f16."""
    import gguf
    import numpy as np

    F32, F16 = gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16
    if array.ndim != 2 or not name.endswith(".weight") or name == "position_embd.weight":
        qtype = F32
    if qtype == gguf.GGMLQuantizationType.Q8_0 and array.shape[-1] % 32:
        notes.append(f"{name}: rows of {array.shape[-1]} do not fit q8_0's blocks of 32; written in f16")
        qtype = F16
    if qtype == F32:
        return np.ascontiguousarray(array, dtype=np.float32), None
    if qtype == F16:
        return np.ascontiguousarray(array, dtype=np.float16), None
    return gguf.quants.quantize(np.ascontiguousarray(array, dtype=np.float32), qtype), qtype


# ---------------------------------------------------------------------------- metadata
def _hyperparameters(writer: Any, cfg, arch: str) -> None:
    writer.add_context_length(cfg.context_length)
    writer.add_embedding_length(cfg.d_model)
    writer.add_block_count(cfg.n_layer)
    writer.add_feed_forward_length(cfg.d_ff)
    writer.add_head_count(cfg.n_head)
    writer.add_vocab_size(cfg.vocab_size)
    if arch == "gpt2":
        writer.add_layer_norm_eps(cfg.norm_eps)
        return
    writer.add_head_count_kv(cfg.n_kv_head)
    writer.add_layer_norm_rms_eps(cfg.norm_eps)
    writer.add_rope_dimension_count(cfg.head_dim)
    writer.add_rope_freq_base(cfg.rope_theta)


def _vocabulary(tokenizer, vocab_size: int, ckpt: Path) -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges) as llama.cpp's gpt2 (byte-level BPE) vocabulary wants them,
    padded with unused tokens to the model's vocab_size."""
    import gguf

    spec = json.loads(tokenizer.backend.to_str())
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    # llama.cpp's "gpt-2" pre-tokenizer is GPT-2's regex, which ByteLevel(use_regex=True) applies.
    gpt2_pre = pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space", False)
    if model.get("type") != "BPE" or not gpt2_pre:
        raise CheckpointError(
            f"cannot export {ckpt} as GGUF: its tokenizer ({model.get('type')}, pre-tokenizer {pre.get('type')}) is not "
            "GPT-2's byte-level BPE, the vocabulary llmlab writes for llama.cpp"
        )
    added = tokenizer.backend.get_added_tokens_decoder()
    tokens, types = [], []
    for i in range(tokenizer.vocab_size):
        tokens.append(tokenizer.id_to_token(i))
        if i in added:
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    for i in range(tokenizer.vocab_size, vocab_size):
        tokens.append(f"[PAD{i}]")
        types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return tokens, [int(t) for t in types], merges


def _tokenizer_metadata(writer: Any, tokenizer, vocab: tuple[list[str], list[int], list[str]]) -> None:
    tokens, types, merges = vocab
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    eos = tokenizer.eos_token_id
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos  # GPT-2: <|endoftext|> both
    if bos is not None:
        writer.add_bos_token_id(bos)
    if eos is not None:
        writer.add_eos_token_id(eos)
    if tokenizer.pad_token_id is not None:
        writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)  # llmlab models are trained without a leading BOS
    template = getattr(tokenizer, "chat_template", None)
    if template:
        writer.add_chat_template(template)
