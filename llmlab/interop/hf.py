"""Hugging Face model folders <-> llmlab checkpoints.

    import_hf("hf/gpt2", "ckpt/gpt2")        # GPT2LMHeadModel / LlamaForCausalLM (+ Mistral, Qwen2) -> llmlab
    export_hf("ckpt/gpt2", "hf/gpt2-again")  # llmlab -> a folder AutoModelForCausalLM.from_pretrained loads

Only local folders are read (no hub downloads). Weights come from safetensors; PyTorch pickles
(`pytorch_model.bin`) only with `trust_pickle=True`, and even then through
`torch.load(weights_only=True)`. Anything llmlab's model cannot represent exactly is refused
with a one-line error rather than converted approximately. Each family's config mapping and weight
table is a registered bundle (`family.py`, one module per family in `families/`); this module only
looks the family up and moves files.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmlab.config import ModelConfig
from llmlab.errors import CheckpointError, ConfigError, LLMLabError
from llmlab.interop.common import Unsupported
from llmlab.interop.family import (
    expected_weights, families, family_for_config, family_for_model_type, weights_from_hf, weights_to_hf,
)
from llmlab.interop.weights import WeightSource

DTYPES = {
    "auto": None, "float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
    "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16",
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# generation_config.json keys worth carrying across (decoding defaults and special ids).
GENERATION_KEYS = (
    "bos_token_id", "eos_token_id", "pad_token_id", "do_sample", "temperature", "top_k", "top_p", "min_p",
    "repetition_penalty", "max_new_tokens", "max_length",
)


@dataclass
class ConversionResult:
    """What import_hf / export_hf wrote (the CLI prints it, or its dict as JSON)."""

    src: str
    out: str
    model_type: str  # the Hugging Face family: gpt2, llama, mistral, qwen2
    architecture: str
    dtype: str
    parameters: int
    tokenizer: bool  # whether a tokenizer was converted too
    config: dict[str, Any]  # the llmlab ModelConfig
    notes: list[str] = field(default_factory=list)  # what was adapted, what was left out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- import
def import_hf(
    src_dir: str | Path, out_dir: str | Path, trust_pickle: bool = False, dtype: str | None = None
) -> ConversionResult:
    """Convert a local Hugging Face GPT-2 or Llama-family folder into an llmlab checkpoint at `out_dir`.

    dtype: "auto" / None keeps the stored dtype; or float32, float16, bfloat16.
    """
    import torch

    from llmlab.checkpoint import save_checkpoint

    src, out = Path(src_dir), Path(out_dir)
    hf_config = _read_hf_config(src)
    model_type = hf_config.get("model_type")
    family = family_for_model_type(model_type)
    if family is None:
        supported = [t for f in families().values() for t in f.model_types]
        raise CheckpointError(
            f"{src}: model_type {model_type!r} is not supported; llmlab imports {', '.join(supported)}"
        )
    _check_destination(out, src)
    notes: list[str] = []
    try:
        cfg = family.config_from_hf(hf_config, notes)
    except Unsupported as exc:
        raise CheckpointError(f"cannot import {src}: {exc}") from None
    except (TypeError, ValueError) as exc:  # ConfigError, or a value of the wrong type
        raise CheckpointError(f"{src}/config.json: {str(exc).splitlines()[0]}") from None

    target = _resolve_dtype(dtype)
    source = WeightSource(src, trust_pickle=trust_pickle)
    try:
        state = weights_from_hf(family, source, cfg)
    except Unsupported as exc:
        raise CheckpointError(f"cannot import {src}: {exc}") from None
    extra = [n for n in source.leftover() if not family.ignorable(n, cfg)]
    if extra:
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        raise CheckpointError(
            f"{src} has unexpected weight {extra[0]!r}{more} that its config.json does not describe; "
            "config and weights do not match"
        )
    # One dtype for the whole checkpoint: the one asked for, else the token embedding's.
    target = getattr(torch, target) if target else state["embed.weight"].dtype
    state = {k: v.to(target) for k, v in state.items()}

    tokenizer = _import_tokenizer(src, cfg, notes)
    generation = _read_generation_config(src, cfg, notes)
    model = _model_from_state(cfg, state, src)
    save_checkpoint(out, model, tokenizer, generation_config=generation)
    return ConversionResult(
        src=str(src), out=str(out), model_type=model_type, architecture=_architecture(hf_config, family),
        dtype=str(target).removeprefix("torch."), parameters=model.num_parameters(),
        tokenizer=tokenizer is not None, config=cfg.to_dict(), notes=notes,
    )


def _read_hf_config(src: Path) -> dict[str, Any]:
    if not src.exists():
        raise CheckpointError(f"Hugging Face model folder not found: {src}")
    if not src.is_dir():
        raise CheckpointError(f"{src} is a file; pass the Hugging Face model folder that holds config.json")
    file = src / "config.json"
    if not file.is_file():
        raise CheckpointError(f"{src} is not a Hugging Face model folder: it has no config.json")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{file} must hold a JSON object")
    if data.get("format") == "llmlab":
        raise CheckpointError(f"{src} is already an llmlab checkpoint; use it directly (or export-hf it)")
    if "model_type" not in data:
        raise CheckpointError(f"{file} has no model_type; is {src} a Hugging Face model folder?")
    return data


def _resolve_dtype(dtype: Any) -> str | None:
    if dtype is None:
        return None
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose one of: auto, float32, float16, bfloat16")
    return DTYPES[name]


def _architecture(hf_config: dict[str, Any], family) -> str:
    archs = hf_config.get("architectures") or [family.architecture]
    return archs[0]


def _import_tokenizer(src: Path, cfg: ModelConfig, notes: list[str]):
    from llmlab.tokenizer import Tokenizer

    has_json = (src / "tokenizer.json").is_file()
    has_bpe = (src / "vocab.json").is_file() and (src / "merges.txt").is_file()
    if not (has_json or has_bpe):
        sentencepiece = (src / "tokenizer.model").is_file()
        reason = " (a SentencePiece tokenizer.model alone is not converted)" if sentencepiece else ""
        notes.append(f"no tokenizer.json or vocab.json + merges.txt: the checkpoint has no tokenizer{reason}")
        return None
    try:
        tokenizer = Tokenizer.from_pretrained(src)
    except LLMLabError as exc:
        raise CheckpointError(f"{src}: cannot read its tokenizer: {exc}") from None
    template = src / "chat_template.jinja"  # transformers 5 saves the chat template beside tokenizer_config.json
    if tokenizer.chat_template is None and template.is_file():
        tokenizer.chat_template = template.read_text()
    if tokenizer.vocab_size > cfg.vocab_size:
        raise CheckpointError(
            f"{src}: the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is {cfg.vocab_size}; "
            "they do not belong together"
        )
    return tokenizer


def _read_generation_config(src: Path, cfg: ModelConfig, notes: list[str]) -> dict[str, Any]:
    data = _load_json(src / "generation_config.json")
    kept = {k: v for k, v in data.items() if k in GENERATION_KEYS and v is not None}
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        ids = kept.get(key)
        if ids is None:
            continue
        ids_list = ids if isinstance(ids, list) else [ids]
        if any(not isinstance(i, int) or not 0 <= i < cfg.vocab_size for i in ids_list):
            notes.append(f"generation_config.json's {key} {ids} is outside the vocabulary; dropped")
            del kept[key]
    return kept


def _model_from_state(cfg: ModelConfig, state: dict[str, Any], src: Path):
    """A TransformerLM holding `state`, built without allocating or initialising its own weights
    (the meta device), so importing a 7B model needs one copy of it in memory, not two."""
    import torch

    from llmlab.checkpoint import check_state_dict, weights_for_saving
    from llmlab.model import TransformerLM

    with torch.device("meta"):
        model = TransformerLM(cfg)
    check_state_dict(weights_for_saving(model), state, src)
    model.load_state_dict(state, strict=False, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed.weight
    return model


# ---------------------------------------------------------------------------- export
def export_hf(ckpt_dir: str | Path, out_dir: str | Path) -> ConversionResult:
    """Write the llmlab checkpoint at `ckpt_dir` as a Hugging Face folder at `out_dir` in the layout of
    its config's family (gpt2, llama, mistral, qwen2), plus tokenizer and generation config."""
    from safetensors.torch import save_file

    from llmlab.checkpoint import (
        GENERATION_CONFIG_FILE,
        WEIGHTS_FILE,
        atomic_directory,
        check_state_dict,
        load_config,
        read_safetensors,
    )

    ckpt, out = Path(ckpt_dir), Path(out_dir)
    cfg = load_config(ckpt)
    _check_destination(out, ckpt)
    family = family_for_config(cfg, ckpt)
    problems = family.export_problems(cfg)
    if problems:
        raise CheckpointError(f"cannot export {ckpt} as {family.title} (family {cfg.family!r}): {'; '.join(problems)}")
    tensors = read_safetensors(ckpt / WEIGHTS_FILE)
    check_state_dict(expected_weights(cfg), tensors, ckpt / WEIGHTS_FILE)
    dtype = next(iter(tensors.values())).dtype
    try:
        hf_state = {k: v.to(dtype).contiguous() for k, v in weights_to_hf(family, tensors, cfg).items()}
    except Unsupported as exc:
        raise CheckpointError(f"cannot export {ckpt} as {family.title}: {exc}") from None

    generation = _load_json(ckpt / GENERATION_CONFIG_FILE)
    generation = {k: v for k, v in generation.items() if k in GENERATION_KEYS and v is not None}
    hf_config = family.config_to_hf(cfg)
    hf_config["dtype"] = str(dtype).removeprefix("torch.")
    hf_config["torch_dtype"] = hf_config["dtype"]  # transformers 4.x spelling
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        hf_config[key] = generation.get(key)

    has_tokenizer = (ckpt / "tokenizer.json").is_file()
    with atomic_directory(out) as tmp:
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
        save_file(hf_state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
        for name in TOKENIZER_FILES:
            if (ckpt / name).is_file():
                shutil.copyfile(ckpt / name, tmp / name)
    notes = [] if has_tokenizer else ["the checkpoint has no tokenizer; none was written"]
    return ConversionResult(
        src=str(ckpt), out=str(out), model_type=hf_config["model_type"], architecture=family.architecture,
        dtype=hf_config["dtype"], parameters=sum(t.numel() for k, t in tensors.items()),
        tokenizer=has_tokenizer, config=cfg.to_dict(), notes=notes,
    )


def _load_json(file: Path) -> dict[str, Any]:
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{file} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------- destinations
def _check_destination(out: Path, src: Path) -> None:
    """Refuse to write over the source or over anything that exists: a converter that silently
    replaced a trained checkpoint or a downloaded model folder would destroy work."""
    out_r, src_r = out.resolve(), src.resolve()
    if out_r == src_r or src_r in out_r.parents or out_r in src_r.parents:
        raise CheckpointError(f"--out {out} overlaps the source {src}; choose a separate directory")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"--out {out} already exists; choose a new directory or remove it first")
