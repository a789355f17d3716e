"""Checkpoint directories: save atomically, load with checks, never unpickle.

A checkpoint is a directory holding
    config.json              the ModelConfig (plus a format marker)
    model.safetensors        the weights
    tokenizer.json           the tokenizer (+ tokenizer_config.json with the chat template)
    generation_config.json   default decoding settings (eos/pad ids, ...)
and, for resumable training runs, trainer state files written by `llmlab.train`.

Writes go to a temporary sibling directory that is renamed into place, so a crash never leaves a
half-written checkpoint under the real name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from llmlab.config import ModelConfig
from llmlab.errors import CheckpointError, ConfigError, LLMLabError, OutputError
from llmlab.outputs import apply_umask, check_writable

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
GENERATION_CONFIG_FILE = "generation_config.json"
FORMAT = "llmlab"
_FLOAT_DTYPES = ("F32", "F16", "BF16")


# ---------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_directory(path: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes `path` on success; on error it is removed.

    An existing `path` (other than an empty directory) is refused (OutputError) unless replace=True,
    which a caller passes only after checking that the existing directory is its own (its earlier
    output): replacing whatever is there would delete a user's files. Even then the old directory is
    deleted only after the new one is in place. The result gets the modes a plain mkdir/open would
    give under the umask."""
    path = Path(path)
    _check_replaceable(path, replace)
    check_writable(path, kind="dir", replaced=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        apply_umask(tmp)
        _fsync_tree(tmp)
        _check_replaceable(path, replace)  # something may have appeared there during the work
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_replaceable(path: Path, replace: bool) -> None:
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} exists and is not a directory; refusing to replace it")
    # An empty directory holds nothing to lose (a user may make one for the output); checked again
    # just before the swap, so files put there during the work are not lost either.
    if not replace and path.is_dir() and any(path.iterdir()):
        raise OutputError(f"{path} already exists and is not empty; refusing to replace it "
                          "(choose a new path, or remove it first)")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a small file so readers see either the old or the new content, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as f:  # open(), not mkstemp: the file gets the umask's mode, like any other
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_tree(root: Path) -> None:
    for file in root.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------- save
def save_checkpoint(
    path: str | Path,
    model,
    tokenizer=None,
    *,
    generation_config: dict[str, Any] | None = None,
    write_extra: Callable[[Path], None] | None = None,
    replace: bool = False,
) -> Path:
    """Save `model` (and `tokenizer`) as a checkpoint directory at `path`, atomically.

    write_extra(tmp_dir) may add more files (the trainer's resume state) inside the same atomic write.
    An existing non-empty `path` is refused unless replace=True (see atomic_directory).
    """
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_directory(path, replace=replace) as tmp:
        config = {"format": FORMAT, **model.config.to_dict()}
        if getattr(model, "quantization", None):  # llmlab.infer.quantize: the layers to build before loading
            config["quantization"] = model.quantization
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        save_file(weights_for_saving(model), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save(tmp)
        gen = default_generation_config(tokenizer)
        gen.update(generation_config or getattr(model, "generation_config", None) or {})
        (tmp / GENERATION_CONFIG_FILE).write_text(json.dumps(gen, indent=2) + "\n")
        if write_extra is not None:
            write_extra(tmp)
    return path


def weights_for_saving(model) -> dict[str, Any]:
    """The model's tensors, contiguous, with a tied head stored once (safetensors forbids aliases)."""
    state = model.state_dict()
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)
    return {k: v.detach().contiguous() for k, v in state.items()}


def default_generation_config(tokenizer) -> dict[str, Any]:
    if tokenizer is None:
        return {}
    stop = tokenizer.stop_token_ids
    return {
        "eos_token_id": stop if len(stop) > 1 else (stop[0] if stop else None),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }


# ---------------------------------------------------------------------------- load
def load_config(path: str | Path) -> ModelConfig:
    """The ModelConfig of a checkpoint directory, with clear errors for anything else."""
    path = Path(path)
    if not path.exists():
        hint = ""
        olds = list(path.parent.glob(f".{path.name}.old-*")) if path.parent.exists() else []
        if olds:
            hint = f" (a previous version survives at {olds[0]}; a save was interrupted: rename it back)"
        raise CheckpointError(f"checkpoint directory not found: {path}{hint}")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file; a checkpoint is a directory holding {CONFIG_FILE} and {WEIGHTS_FILE}")
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        inner = path / "checkpoint"  # a run directory: training commands write their checkpoint here
        hint = f" (it is a run directory: use {inner})" if (inner / CONFIG_FILE).is_file() else ""
        raise CheckpointError(f"{path} is not an llmlab checkpoint: it has no {CONFIG_FILE}{hint}")
    try:
        data = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_file} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{config_file} must hold a JSON object")
    if data.get("format") != FORMAT:
        if "model_type" in data:
            raise CheckpointError(
                f"{path} looks like a Hugging Face model folder (model_type={data['model_type']!r}); "
                f"convert it first: llmlab import-hf {path} --out DIR"
            )
        raise CheckpointError(f"{config_file} is not an llmlab config (no \"format\": \"{FORMAT}\" marker)")
    data.pop("format")
    data.pop("quantization", None)  # read by load_quantization
    try:
        return ModelConfig.from_dict(data)
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{config_file}: {exc}") from None


def read_safetensors(file: Path) -> dict[str, Any]:
    """All tensors of a safetensors file, with a one-line error if it is missing or corrupt."""
    from safetensors.torch import load_file

    if not file.is_file():
        raise CheckpointError(f"weights file missing: {file}")
    try:
        return load_file(str(file))
    except Exception as exc:  # SafetensorError, OSError, ... : all mean "unreadable"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{file} is corrupt or truncated ({reason})") from None


def check_weights_header(path: str | Path, config: ModelConfig) -> str | None:
    """Check the names, shapes and dtypes in a checkpoint's model.safetensors against `config` from
    the file's header alone, and return the stored dtype ("F32", ...; None for an empty file).

    No tensor data is read and the model is built on the meta device (no memory; seconds even for
    175B): `llmlab info` uses it so it never reports counts that the weights contradict."""
    import torch
    from safetensors import safe_open

    from llmlab.model import TransformerLM

    file = Path(path) / WEIGHTS_FILE
    if not file.is_file():
        raise CheckpointError(f"weights file missing: {file}")
    try:
        with safe_open(str(file), framework="pt") as f:
            names = list(f.keys())  # a safe_open handle, not a dict: it cannot be iterated
            header = {name: (f.get_slice(name).get_shape(), f.get_slice(name).get_dtype()) for name in names}
    except Exception as exc:  # SafetensorError, OSError, ... : all mean "unreadable"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{file} is corrupt or truncated ({reason})") from None
    # Meta tensors carry shape and dtype without memory, which is all check_state_dict looks at.
    found = {name: torch.empty(shape, dtype=_torch_dtype(dt), device="meta") for name, (shape, dt) in header.items()}
    with torch.device("meta"):
        model = TransformerLM(config)
        saved = load_quantization(path)
        if saved:
            from llmlab.infer.quantize import quantize_model  # see load_model

            quantize_model(model, saved.get("mode"), saved.get("group_size"), empty=True)
        expected = weights_for_saving(model)
    check_state_dict(expected, found, file)
    # The float dtype: a quantised checkpoint also holds integer codes.
    return next((dt for _, dt in header.values() if dt in _FLOAT_DTYPES), None)


def _torch_dtype(name: str):
    """torch dtype of a safetensors dtype name; unknown names map to uint8 (reported as non-float)."""
    import torch

    known = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
             "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "BOOL": torch.bool}
    return known.get(name, torch.uint8)


def check_state_dict(expected: dict[str, Any], found: dict[str, Any], source: Path) -> None:
    """Raise a one-line CheckpointError naming the first mismatch between model and file."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise CheckpointError(f"{source} lacks weight {missing[0]!r}{more}; config and weights do not match")
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise CheckpointError(f"{source} has unexpected weight {unexpected[0]!r}{more}; config and weights do not match")
    for name, want in expected.items():
        got = found[name]
        if tuple(got.shape) != tuple(want.shape):
            raise CheckpointError(
                f"{source}: weight {name!r} has shape {list(got.shape)} but the config implies {list(want.shape)}"
            )
        if not got.is_floating_point() and got.dtype != want.dtype:  # quantised weights are integers
            raise CheckpointError(f"{source}: weight {name!r} has non-float dtype {got.dtype}")


def load_quantization(path: str | Path) -> dict[str, Any] | None:
    """The quantisation record of a checkpoint saved by `llmlab quantize` ({"mode", ...}), else None."""
    load_config(path)  # the checks and their messages
    return json.loads((Path(path) / CONFIG_FILE).read_text()).get("quantization")


def load_model(path: str | Path, device: str | Any = "cpu", dtype: Any = None, *, quantize: str | None = None):
    """Build the model of a checkpoint directory and load its weights (checked, never unpickled).

    quantize "int8" / "int4" quantises the linear layers after loading (llmlab.infer.quantize); a
    checkpoint saved quantised is built quantised, whatever `quantize` says, unless it names
    another mode."""
    import torch

    from llmlab.model import TransformerLM

    path = Path(path)
    config = load_config(path)
    saved = load_quantization(path)
    if saved and quantize and quantize != saved.get("mode"):
        raise CheckpointError(f"{path} is saved quantised as {saved.get('mode')}; it cannot be loaded as {quantize}")
    tensors = read_safetensors(path / WEIGHTS_FILE)
    model = TransformerLM(config)
    if saved or quantize:
        # Imported here: only quantised inference needs llmlab.infer, and it sits above this module.
        from llmlab.infer.quantize import quantize_model
    if saved:
        try:
            quantize_model(model, saved.get("mode"), saved.get("group_size"), empty=True)
        except LLMLabError as exc:
            raise CheckpointError(f"{path / CONFIG_FILE}: {exc}") from None
    expected = weights_for_saving(model)
    check_state_dict(expected, tensors, path / WEIGHTS_FILE)
    floats = [t.dtype for t in tensors.values() if t.is_floating_point()]
    stored_dtype = floats[0] if floats else torch.float32
    model.load_state_dict(tensors, strict=not config.tie_embeddings or bool(saved))
    if quantize and not saved:
        quantize_model(model, quantize)
    model.to(device=resolve_device(device), dtype=dtype or stored_dtype)
    gen_file = path / GENERATION_CONFIG_FILE
    model.generation_config = json.loads(gen_file.read_text()) if gen_file.is_file() else {}
    return model.eval()


def load(path: str | Path, device: str | Any = "cpu", dtype: Any = None, *, require_tokenizer: bool = False,
         quantize: str | None = None):
    """`model, tokenizer = llmlab.load(DIR)` for any checkpoint directory, the model in eval mode;
    the tokenizer is None if absent, or a CheckpointError with `require_tokenizer` (text in, text out).
    quantize: "int8" or "int4" for quantised inference (see load_model)."""
    from llmlab.tokenizer import Tokenizer

    path = Path(path)
    model = load_model(path, device=device, dtype=dtype, quantize=quantize)
    tokenizer = None
    if require_tokenizer and not (path / "tokenizer.json").is_file():
        raise CheckpointError(f"{path} has no tokenizer.json; reading and writing text needs one")
    if (path / "tokenizer.json").is_file():
        try:
            tokenizer = Tokenizer.from_pretrained(path)
        except LLMLabError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        if tokenizer.vocab_size > model.config.vocab_size:
            raise CheckpointError(
                f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                f"{model.config.vocab_size}; they do not belong together"
            )
        if tokenizer.model_max_length is None:
            tokenizer.model_max_length = model.config.context_length
    return model, tokenizer


def resolve_device(device: str | Any = "auto"):
    """'auto' picks CUDA, then Apple MPS, then the CPU."""
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}: {exc}") from None
    # Checked here, once, so the user reads this instead of an AssertionError from deep inside torch.
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: no CUDA GPU is available to PyTorch here; use cpu or auto")
    if resolved.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {device!r}: Apple MPS is not available here; use cpu or auto")
    return resolved
