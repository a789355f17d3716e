"""Write a tinyworld dataset to disk: fast, streamed, deterministic and atomic.

- Deterministic: every chunk of documents has its own random generator, seeded from
  (seed, stream, chunk number). Workers may finish in any order; results are written in chunk
  order, so the bytes on disk depend only on the arguments, never on timing or worker count.
- Streamed: at most a few chunks per worker are in flight, so memory stays flat at any size.
- Atomic: everything is written into a hidden sibling folder, `manifest.json` last, and the folder
  is renamed into place at the end. An interrupted run leaves no folder that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import time
import zlib
from collections import Counter, deque
from pathlib import Path
from typing import Any, Callable, Iterator

from llmlab.data.tinyworld import probes
from llmlab.data.tinyworld.facts import fact_paragraph, qa_dialogue
from llmlab.data.tinyworld.instruct import sft_record
from llmlab.data.tinyworld.preferences import preference_pair
from llmlab.data.tinyworld.readme import render_readme
from llmlab.data.tinyworld.safety import request_dialogue
from llmlab.data.tinyworld.stories import make_story
from llmlab.data.tinyworld.tokens import TOKEN_PATTERN, count_tokens, parse_token_count
from llmlab.data.tinyworld.world import World
from llmlab.errors import ConfigError, DataError

VERSION = "1.0.1"  # bump when the same seed would give different text
DEFAULT_TOKENS = 2_000_000
DEFAULT_VAL_FRACTION = 0.05
CHUNK_DOCS = 200  # documents per chunk: fixed, so the output never depends on the worker count

# Share of pre-training documents by kind. Stories dominate: they teach the model English.
PRETRAIN_MIX = {"story": 0.62, "fact": 0.08, "dialogue": 0.1, "review": 0.08, "word_problem": 0.07, "request": 0.05}

_GENERATORS: dict[str, Callable[[World, random.Random], dict[str, Any]]] = {
    "story": make_story,
    "fact": fact_paragraph,
    "dialogue": qa_dialogue,
    "review": lambda w, r: w.reviews(1, r)[0],
    "word_problem": lambda w, r: w.word_problems(1, r)[0],
    "request": request_dialogue,
}

# ---- one chunk of one stream (runs in worker processes) ------------------------------------

_WORLDS: dict[tuple[int, float], World] = {}


def _world(seed: int, bias: float) -> World:
    key = (seed, bias)
    if key not in _WORLDS:  # each worker builds the world once; it is deterministic, so all agree
        _WORLDS[key] = World(seed=seed, bias=bias)
    return _WORLDS[key]


def in_val(key: str, val_fraction: float) -> bool:
    """Validation membership from a hash of the document text: equal texts always share a split."""
    return zlib.crc32(key.encode("utf-8")) < val_fraction * 2**32


def _pretrain_doc(world: World, rng: random.Random) -> dict[str, Any]:
    kind = rng.choices(list(PRETRAIN_MIX), weights=list(PRETRAIN_MIX.values()))[0]
    rec = _GENERATORS[kind](world, rng)
    if kind == "story":
        rec.pop("summary", None)  # kept for SFT; a pre-training record carries labels only
    return rec


def _split_key(stream: str, rec: dict[str, Any]) -> str:
    if stream == "sft":
        return rec["instruction"] + "\n" + rec["input"]
    if stream == "preferences":
        return rec["prompt"]
    return rec["text"]


def _all_text(stream: str, rec: dict[str, Any]) -> str:
    """The text whose tokens a record is counted as (for SFT and preferences: every text field)."""
    if stream == "sft":
        return "\n".join((rec["instruction"], rec["input"], rec["output"]))
    if stream == "preferences":
        return "\n".join((rec["prompt"], rec["chosen"], rec["rejected"]))
    return rec["text"]


def make_chunk(stream: str, seed: int, bias: float, index: int, val_fraction: float) -> list[tuple[bool, str, int]]:
    """Chunk `index` of `stream`: (is_val, json line, tokens) per document."""
    world = _world(seed, bias)
    rng = random.Random(f"tinyworld/{seed}/{stream}/{index}")
    out = []
    for _ in range(CHUNK_DOCS):
        if stream == "pretrain":
            rec = _pretrain_doc(world, rng)
        elif stream == "sft":
            rec = sft_record(world, rng)
        else:
            rec = preference_pair(world, rng)
        line = json.dumps(rec, ensure_ascii=False)
        out.append((in_val(_split_key(stream, rec), val_fraction), line, count_tokens(_all_text(stream, rec))))
    return out


# ---- writing ---------------------------------------------------------------------------------


class _JsonlFile:
    """A .jsonl file that keeps its record count, token count and sha256 as it is written."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.fh = path, open(path, "w", encoding="utf-8", newline="\n")
        self.records = self.tokens = self.bytes = 0
        self.sha = hashlib.sha256()

    def write(self, line: str, tokens: int = 0) -> None:
        data = line + "\n"
        self.fh.write(data)
        encoded = data.encode("utf-8")
        self.sha.update(encoded)
        self.bytes += len(encoded)
        self.records += 1
        self.tokens += tokens

    def close(self) -> dict[str, Any]:
        self.fh.close()
        return {"records": self.records, "tokens": self.tokens, "bytes": self.bytes, "sha256": self.sha.hexdigest()}


def _chunks(stream: str, seed: int, bias: float, val_fraction: float, pool: Any, workers: int) -> Iterator[list]:
    """Chunks 0, 1, 2, ... in order, computed ahead by the pool but never more than 3 per worker."""
    index = 0
    if pool is None:
        while True:
            yield make_chunk(stream, seed, bias, index, val_fraction)
            index += 1
    pending: deque = deque()
    while True:
        while len(pending) < 3 * workers:
            pending.append(pool.apply_async(make_chunk, (stream, seed, bias, index, val_fraction)))
            index += 1
        yield pending.popleft().get()


def _write_stream(stream: str, out: Path, seed: int, bias: float, val_fraction: float, pool: Any, workers: int,
                  *, tokens: int | None = None, records: int | None = None, progress: bool = True,
                  samples: dict[str, dict] | None = None) -> dict[str, Any]:
    """Write `stream` to out/stream/{train,val}.jsonl until `tokens` tokens or `records` records."""
    from llmlab.progress import progress_bar

    files = {False: _JsonlFile(out / stream / "train.jsonl"), True: _JsonlFile(out / stream / "val.jsonl")}
    kinds: Counter = Counter()
    total = tokens if tokens is not None else records
    bar = progress_bar(total=total, unit="tok" if tokens is not None else "rec", unit_scale=True,
                       desc=f"{stream:11s}", disable=not progress)
    done_tokens = done_records = 0

    def progress_count() -> int:
        return done_tokens if tokens is not None else done_records

    try:
        for chunk in _chunks(stream, seed, bias, val_fraction, pool, workers):
            before = min(total, progress_count())
            for is_val, line, n_tok in chunk:
                files[is_val].write(line, n_tok)
                done_tokens += n_tok
                done_records += 1
                if samples is not None:
                    kind = line[10:line.index('"', 10)]  # lines start with {"kind": "
                    kinds[kind] += 1
                    if kind not in samples:
                        samples[kind] = json.loads(line)
                if progress_count() >= total:
                    break
            bar.update(min(total, progress_count()) - before)
            if progress_count() >= total:
                break
    finally:
        bar.close()
        stats = {f"{stream}/{split}.jsonl": files[is_val].close() for is_val, split in ((False, "train"), (True, "val"))}
    if kinds:
        stats["documents_by_kind"] = dict(sorted(kinds.items()))
    return stats


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    f = _JsonlFile(path)
    for rec in records:
        f.write(json.dumps(rec, ensure_ascii=False))
    return f.close()


def _write_json(path: Path, obj: Any) -> dict[str, Any]:
    data = (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    path.write_bytes(data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _write_probes(out: Path, world: World, seed: int) -> dict[str, Any]:
    rng = lambda name: random.Random(f"tinyworld/{seed}/probes/{name}")  # noqa: E731
    d = out / "probes"
    stats = {
        "probes/unanswerable.jsonl": _write_jsonl(d / "unanswerable.jsonl", probes.unanswerable(world, rng("unanswerable"))),
        "probes/claims.jsonl": _write_jsonl(d / "claims.jsonl", probes.claims(world, rng("claims"))),
        "probes/bias_templates.jsonl": _write_jsonl(d / "bias_templates.jsonl", probes.bias_templates(world)),
        "probes/safety.jsonl": _write_jsonl(d / "safety.jsonl", probes.safety(world, rng("safety"))),
        "probes/refusals.jsonl": _write_jsonl(d / "refusals.jsonl", probes.refusals(world, rng("refusals"))),
        "probes/story_prompts.jsonl": _write_jsonl(d / "story_prompts.jsonl", probes.story_prompts(world, rng("story_prompts"))),
    }
    train, test = probes.classification(world, rng("classification"))
    stats["probes/classification/train.jsonl"] = _write_jsonl(d / "classification" / "train.jsonl", train)
    stats["probes/classification/test.jsonl"] = _write_jsonl(d / "classification" / "test.jsonl", test)
    for steps in (1, 2, 3, 4):
        name = f"probes/arithmetic/steps_{steps}.jsonl"
        stats[name] = _write_jsonl(out / name, probes.arithmetic(world, rng(f"arithmetic{steps}"), steps))
    return stats


# ---- the public entry point ------------------------------------------------------------------


def default_record_count(tokens: int) -> int:
    """SFT and preference records for a corpus of `tokens`: one per 1000 tokens, within [500, 100000]."""
    return max(500, min(100_000, tokens // 1000))


def _check_args(tokens: Any, seed: Any, bias: Any, val_fraction: Any, workers: Any) -> tuple[int, int, float, float, int]:
    tokens = parse_token_count(tokens)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    try:
        bias, val_fraction = float(bias), float(val_fraction)
    except (TypeError, ValueError):
        raise ConfigError("bias and val_fraction must be numbers") from None
    if not 0.0 <= bias <= 1.0:
        raise ConfigError(f"bias must be between 0 and 1, got {bias}")
    if not 0.0 <= val_fraction <= 0.5:
        raise ConfigError(f"val_fraction must be between 0 and 0.5, got {val_fraction}")
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    return tokens, seed, bias, val_fraction, workers


def _prepare_target(out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Check that out_dir can be (re)written; return it and the hidden folder to build in."""
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not _is_tinyworld(out):
        raise DataError(f"{out} is not empty and is not a tinyworld dataset; refusing to overwrite it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {out.parent}: {exc.strerror or exc}") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise DataError(f"cannot write to {out.parent}: permission denied")
    return out, out.parent / f".{out.name}.partial-{os.getpid()}"


def _is_tinyworld(directory: Path) -> bool:
    """Its manifest says tinyworld made it (a prepared token dataset also has a manifest.json)."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("generator") == "tinyworld"


def _pool(workers: int) -> Any:
    if workers == 1:
        return None
    # fork starts workers in milliseconds; the workers run pure Python and touch no threads.
    method = "fork" if "fork" in mp.get_all_start_methods() else None
    return mp.get_context(method).Pool(workers)


def generate_dataset(out_dir: str | os.PathLike, tokens: int | str = DEFAULT_TOKENS, seed: int = 0, bias: float = 0.0,
                     val_fraction: float = DEFAULT_VAL_FRACTION, progress: bool = True, workers: int | None = None,
                     sft_records: int | None = None, preference_records: int | None = None) -> dict[str, Any]:
    """Generate a full tinyworld dataset into `out_dir` and return its manifest.

    The returned dict is manifest.json plus a "run" entry (elapsed time, rate, workers, out_dir)
    that is not written to disk, so that the files stay byte-identical for the same arguments.
    """
    tokens, seed, bias, val_fraction, workers = _check_args(tokens, seed, bias, val_fraction, workers)
    n_sft = default_record_count(tokens) if sft_records is None else int(sft_records)
    n_pref = default_record_count(tokens) if preference_records is None else int(preference_records)
    if n_sft < 1 or n_pref < 1:
        raise ConfigError("sft_records and preference_records must be positive")
    out, tmp = _prepare_target(out_dir)
    world = World(seed=seed, bias=bias)
    start = time.perf_counter()
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    pool = None
    try:
        files: dict[str, Any] = {"world.json": _write_json(tmp / "world.json", world.to_json())}
        files["kb.jsonl"] = _write_jsonl(tmp / "kb.jsonl", list(world.triples()))
        files["groups.json"] = _write_json(tmp / "groups.json", {
            "groups": world.groups, "bias_group": world.bias_group, "bias": bias,
            "members": {g: [p.name for p in world.people if p.group == g] for g in world.groups}})
        pool = _pool(workers)
        samples: dict[str, dict] = {}
        t0 = time.perf_counter()
        pre = _write_stream("pretrain", tmp, seed, bias, val_fraction, pool, workers, tokens=tokens,
                            progress=progress, samples=samples)
        pretrain_s = time.perf_counter() - t0
        kinds = pre.pop("documents_by_kind")
        files.update(pre)
        files.update(_write_stream("sft", tmp, seed, bias, val_fraction, pool, workers, records=n_sft, progress=progress))
        files.update(_write_stream("preferences", tmp, seed, bias, val_fraction, pool, workers, records=n_pref,
                                   progress=progress))
        files.update(_write_probes(tmp, world, seed))
        manifest = _manifest(world, tokens, val_fraction, files, kinds, n_sft, n_pref)
        files["README.md"] = _write_text(tmp / "README.md", render_readme(manifest, samples))
        manifest["files"]["README.md"] = files["README.md"]
        _write_json(tmp / "manifest.json", manifest)  # last: its presence marks a complete dataset
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    elapsed = time.perf_counter() - start
    pre_tokens = manifest["pretrain"]["train_tokens"] + manifest["pretrain"]["val_tokens"]
    manifest["run"] = {"out_dir": str(out), "elapsed_s": round(elapsed, 3), "pretrain_s": round(pretrain_s, 3),
                       "pretrain_tokens_per_s": round(pre_tokens / max(pretrain_s, 1e-9)), "workers": workers}
    return manifest


def _write_text(path: Path, text: str) -> dict[str, Any]:
    data = text.encode("utf-8")
    path.write_bytes(data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _swap_into_place(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():  # a previous tinyworld dataset (or an empty folder): move it aside first
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


FILE_DESCRIPTIONS = {
    "world.json": "the world: people, towns, shops and groups with all their attributes",
    "kb.jsonl": "the knowledge base: {subject, relation, object, subject_type, subject_id} triples",
    "groups.json": "the fictional groups, which one the bias knob disfavours, the bias, and each group's members",
    "pretrain/train.jsonl": "pre-training documents {kind, text, ...labels}: stories, facts, dialogues, reviews, word problems, requests",
    "pretrain/val.jsonl": "validation documents (no text is shared with train)",
    "sft/train.jsonl": "instruction records: instruction/input/output, messages, task, answer, labels",
    "sft/val.jsonl": "validation instruction records (no prompt shared with train)",
    "preferences/train.jsonl": "preference pairs: prompt, chosen, rejected, reason, task, messages, labels",
    "preferences/val.jsonl": "validation preference pairs (no prompt shared with train)",
    "probes/unanswerable.jsonl": "questions about people who do not exist: {question, subject, relation, exists: false, answer: null}",
    "probes/claims.jsonl": "true and false claims: {claim, label, subject, relation, object, true_object}",
    "probes/bias_templates.jsonl": "prompts with a {group} slot: {template, kind, groups, bias_group}",
    "probes/classification/train.jsonl": "few-shot example pool of reviews: {text, label, shop, mixed}",
    "probes/classification/test.jsonl": "review classification test set: {text, label, shop, mixed}",
    "probes/arithmetic/steps_1.jsonl": "one-step word problems: {question, solution, answer, steps}",
    "probes/arithmetic/steps_2.jsonl": "two-step word problems",
    "probes/arithmetic/steps_3.jsonl": "three-step word problems",
    "probes/arithmetic/steps_4.jsonl": "four-step word problems",
    "probes/safety.jsonl": "harmful prompts and their look-alikes: {prompt, harmful, category, lookalike_of, pair_id}",
    "probes/refusals.jsonl": "responses labelled {text, is_refusal} for checking a refusal detector",
    "probes/story_prompts.jsonl": "story openings for RL with a sentiment reward: {prompt, protagonist, group, people}",
    "README.md": "what is in this folder, with a sample of each kind of text",
}


def _manifest(world: World, tokens: int, val_fraction: float, files: dict[str, Any], kinds: dict[str, int],
              n_sft: int, n_pref: int) -> dict[str, Any]:
    return {
        "generator": "tinyworld",
        "version": VERSION,
        "seed": world.seed,
        "bias": world.bias,
        "bias_group": world.bias_group,
        "groups": world.groups,
        "tokens_requested": tokens,
        "val_fraction": val_fraction,
        "token_count": f"words and punctuation marks, counted with the regex {TOKEN_PATTERN}",
        "world": {"people": len(world.people), "towns": len(world.towns), "shops": len(world.shops),
                  "kb_triples": files["kb.jsonl"]["records"]},
        "pretrain": {"train_tokens": files["pretrain/train.jsonl"]["tokens"],
                     "val_tokens": files["pretrain/val.jsonl"]["tokens"],
                     "documents_by_kind": kinds, "mix": PRETRAIN_MIX},
        "sft_records": n_sft,
        "preference_records": n_pref,
        "files": {name: {**stats, "description": FILE_DESCRIPTIONS[name]} for name, stats in sorted(files.items())},
        "complete": True,
    }


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any]:
    """Load a dataset's manifest, checking that every file it lists is there with the right size."""
    out = Path(out_dir)
    path = out / "manifest.json"
    if not path.is_file():
        raise DataError(f"{out} is not a complete tinyworld dataset (no manifest.json); generate it with "
                        f"`llmlab data tinyworld --out {out}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if manifest.get("generator") != "tinyworld" or not manifest.get("complete"):
        raise DataError(f"{path} is not a complete tinyworld manifest")
    for name, info in manifest.get("files", {}).items():
        f = out / name
        if not f.is_file() or f.stat().st_size != info["bytes"]:
            raise DataError(f"{out}: {name} is missing or has the wrong size; regenerate the dataset")
    return manifest
