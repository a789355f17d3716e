"""lm-evaluation-harness on llmlab checkpoints: the `llmlab` model class and a runner.

`LLMLabLM` is an `lm_eval.api.model.LM`, registered as "llmlab", so lm-eval runs any of its tasks
on an llmlab checkpoint:
    lm_eval.simple_evaluate(model="llmlab", model_args="pretrained=runs/qs/run/checkpoint", tasks=[...])
Its three request types run on llmlab's own inference code, batched:
- loglikelihood: `llmlab.infer.scoring` (encode_pair's token boundary, left-truncation that keeps the
  continuation whole, greedy check) over requests sorted by length, as lm-eval's HF model does;
- loglikelihood_rolling: lm-eval's rolling windows (`get_rolling_token_windows`, each token predicted
  once, the first after the bos / end-of-text token) scored by `score_token_pairs`;
- generate_until: the engine (`batch_generate`), greedy unless do_sample, `until` as stop strings,
  `max_gen_toks` new tokens at most.

`run_harness(model, tokenizer, tasks, folder)` writes llmlab `Task`s as an lm-eval task folder
(`llmlab.eval.harness_tasks`) and evaluates them with `lm_eval.simple_evaluate`.

Importing this module without lm-eval installed raises a one-line ConfigError naming the extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from llmlab.errors import ConfigError

INSTALL_HINT = "lm-evaluation-harness is not installed; pip install 'llmlab[harness]' (or pip install lm-eval)"

try:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
except ImportError:
    raise ConfigError(INSTALL_HINT) from None

DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's default when a task names none


@register_model("llmlab")
class LLMLabLM(LM):
    """An llmlab model and tokenizer behind lm-eval's LM interface.

    Either `pretrained` (a checkpoint directory; what `model_args="pretrained=DIR"` gives) or an
    already loaded `model` and `tokenizer`. batch_size: sequences per forward pass ("auto": 32).
    """

    def __init__(self, pretrained: str | None = None, *, model: Any = None, tokenizer: Any = None,
                 device: str = "cpu", batch_size: int | str = DEFAULT_BATCH_SIZE, **_ignored: Any):
        super().__init__()
        if model is None:
            if pretrained is None:
                raise ConfigError("the llmlab model needs pretrained=CHECKPOINT_DIR (or model= and tokenizer=)")
            from llmlab.checkpoint import load

            model, tokenizer = load(pretrained, device, require_tokenizer=True)
        if tokenizer is None:
            raise ConfigError("the llmlab model needs a tokenizer to read and write text")
        self.model, self.tokenizer = model, tokenizer
        self.name = str(pretrained) if pretrained is not None else "llmlab"
        if batch_size in (None, "auto") or str(batch_size).startswith("auto"):
            batch_size = DEFAULT_BATCH_SIZE
        try:
            self.batch_size = int(batch_size)
        except (TypeError, ValueError):
            raise ConfigError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}") from None
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}")
        self._device = next(model.parameters()).device

    # ------------------------------------------------------------------------ lm-eval's interface
    @property
    def tokenizer_name(self) -> str:
        return self.name

    @property
    def prefix_token_id(self) -> int:
        """What the first token of a text is predicted from: bos, else end-of-text (lm-eval's rule)."""
        tok = self.tokenizer
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if start is None:
            raise ConfigError("scoring a whole text needs a bos or end-of-text token to condition on")
        return start

    def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        from llmlab.infer import encode_pair

        args = [r.args for r in requests]
        pairs = [encode_pair(self.tokenizer, ctx, cont) for ctx, cont, *_ in args]
        scored = self._score(pairs, "loglikelihood", disable_tqdm)
        out = [(total, greedy) for total, _, greedy in scored]
        for a, res in zip(args, out):
            self.cache_hook.add_partial("loglikelihood", a, res)
        return out

    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[float]:
        C = self.model.config.context_length
        pairs, owner = [], []
        for i, r in enumerate(requests):
            tokens = self.tokenizer.encode(r.args[0], add_special_tokens=False)
            for window in get_rolling_token_windows(tokens, self.prefix_token_id, max_seq_len=C, context_len=1):
                pairs.append(make_disjoint_window(window))
                owner.append(i)
        totals = [0.0] * len(requests)
        for i, (total, _, _) in zip(owner, self._score(pairs, "loglikelihood_rolling", disable_tqdm)):
            totals[i] += total
        for r, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", r.args, total)
        return totals

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        from llmlab.eval._generate import batch_generate
        from llmlab.progress import progress_bar

        # One engine run per distinct set of generation settings (a task's), requests in their order.
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(json.dumps(r.args[1], sort_keys=True, default=str), []).append(i)
        out: list[str] = [""] * len(requests)
        bar = progress_bar(total=len(requests), desc="generate_until", unit="req", disable=disable_tqdm)
        for idx in groups.values():
            kwargs = dict(requests[idx[0]].args[1])
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.pop("max_gen_toks", DEFAULT_MAX_GEN_TOKS))
            sample = bool(kwargs.pop("do_sample", False))
            temperature = float(kwargs.pop("temperature", 1.0 if sample else 0.0)) if sample else 0.0
            texts = batch_generate(self.model, self.tokenizer, [requests[i].args[0] for i in idx],
                                   temperature=temperature, max_new_tokens=max_new, stop=until,
                                   truncation="left", max_batch_size=self.batch_size)
            for i, text in zip(idx, texts):
                out[i] = text
                self.cache_hook.add_partial("generate_until", requests[i].args, text)
            bar.update(len(idx))
        bar.close()
        return out

    # ------------------------------------------------------------------------ batching
    def _score(self, pairs: list[tuple[list[int], list[int]]], desc: str, disable_tqdm: bool
               ) -> list[tuple[float, int, bool]]:
        """score_token_pairs over all pairs, longest first in chunks (a progress bar per chunk)."""
        from llmlab.infer import score_token_pairs
        from llmlab.progress import progress_bar

        order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
        results: list[tuple[float, int, bool] | None] = [None] * len(pairs)
        chunk = self.batch_size * 4
        with progress_bar(total=len(pairs), desc=desc, unit="req", disable=disable_tqdm) as bar:
            for start in range(0, len(order), chunk):
                ids = order[start:start + chunk]
                for i, res in zip(ids, score_token_pairs(self.model, [pairs[i] for i in ids],
                                                         batch_size=self.batch_size)):
                    results[i] = res
                bar.update(len(ids))
        return results  # type: ignore[return-value]


# ---------------------------------------------------------------------------- running tasks
def run_harness(model: Any, tokenizer: Any, tasks: Sequence[Any], folder: str | Path, *,
                num_fewshot: int | None = None, limit: int | None = None, seed: int = 1234,
                batch_size: int = DEFAULT_BATCH_SIZE, bootstrap_iters: int = 1000) -> dict[str, Any]:
    """Evaluate llmlab `Task`s through lm-eval: written into `folder`, run by `simple_evaluate`.

    num_fewshot: examples per prompt (None: each task's own); seed: lm-eval's fewshot_random_seed (as
    `llmlab eval tasks --seed`). Returns {"tasks": {name: {kind, n, shots, metrics, stderr,
    samples}}, "lm_eval_version", "task_folder"}; a sample is {doc_id, prompt, loglikelihoods |
    output, and the metrics}.
    """
    import logging

    import datasets
    import lm_eval
    from lm_eval.tasks import TaskManager

    from llmlab.eval.harness_tasks import write_task_folder

    if num_fewshot is not None and (isinstance(num_fewshot, bool) or num_fewshot < 0):
        raise ConfigError(f"num_fewshot must be 0 or more, got {num_fewshot}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    names = write_task_folder(tasks, folder)
    datasets.disable_progress_bars()  # one "Generating test split" bar per task file otherwise
    for name in ("lm-eval", "lm_eval"):  # lm-eval logs every step at INFO/WARNING; llmlab prints its own table
        logging.getLogger(name).setLevel(logging.ERROR)
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    lm = LLMLabLM(model=model, tokenizer=tokenizer, batch_size=batch_size)
    out = lm_eval.simple_evaluate(model=lm, tasks=names, num_fewshot=num_fewshot, limit=limit,
                                  task_manager=manager, log_samples=True, fewshot_random_seed=seed,
                                  bootstrap_iters=bootstrap_iters)
    kinds = {t.name: t.kind for t in tasks}
    results = {}
    for name in names:
        raw = out["results"][name]
        metrics = ("acc", "acc_norm") if kinds[name] == "multiple_choice" else ("exact_match", "contains")
        results[name] = {
            "kind": kinds[name],
            "n": int(out["n-samples"][name]["effective"]),
            "shots": int(out["n-shot"][name]),
            "metrics": {m: float(raw[f"{m},none"]) for m in metrics},
            "stderr": {m: _number(raw.get(f"{m}_stderr,none")) for m in metrics},
            "samples": [_sample(s, kinds[name], metrics) for s in out["samples"][name]],
        }
    return {"tasks": results, "lm_eval_version": lm_eval.__version__, "task_folder": str(folder)}


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):  # "N/A" when lm-eval computed no stderr
        return None


def _sample(s: dict[str, Any], kind: str, metrics: Sequence[str]) -> dict[str, Any]:
    """One logged lm-eval sample, reduced to what llmlab's own task samples hold."""
    out: dict[str, Any] = {"doc_id": s["doc_id"], "prompt": s["arguments"][0][0]}
    if kind == "multiple_choice":
        out["loglikelihoods"] = [float(r[0][0]) for r in s["resps"]]
    else:
        out["output"] = s["resps"][0][0]
    out.update({m: float(s[m]) for m in metrics})
    return out


def compare_with_llmlab(harness: dict[str, Any], own: Sequence[tuple[Any, Any]]) -> dict[str, dict[str, Any]]:
    """Item by item, lm-eval's results (run_harness) against llmlab's own (`[(task, TaskResult)]`,
    `llmlab.eval.tasks.run_tasks` with the same shots, limit and seed), per task: llmlab's metrics,
    the differences of the aggregates, the share of identical prompts and of items whose every metric
    agrees, and (multiple choice) the largest log-likelihood difference."""
    out: dict[str, dict[str, Any]] = {}
    for task, r in own:
        h = harness["tasks"].get(task.name)
        if h is None:
            continue
        if len(h["samples"]) != len(r.samples):
            raise ConfigError(f"{task.name}: lm-eval scored {len(h['samples'])} items, llmlab {len(r.samples)}")
        pairs = list(zip(sorted(h["samples"], key=lambda s: s["doc_id"]), r.samples))
        n = max(1, len(pairs))
        row: dict[str, Any] = {
            "llmlab": dict(r.metrics),
            "difference": {m: h["metrics"][m] - v for m, v in r.metrics.items()},
            "same_prompt": sum(a["prompt"] == b["prompt"] for a, b in pairs) / n,
            "same_items": sum(all(a[m] == b[m] for m in r.metrics) for a, b in pairs) / n,
        }
        if task.kind == "multiple_choice":
            row["max_abs_loglikelihood_difference"] = max(
                (abs(x - y) for a, b in pairs for x, y in zip(a["loglikelihoods"], b["loglikelihoods"])), default=0.0)
        else:
            row["same_output"] = sum(a["output"] == b["output"] for a, b in pairs) / n
        out[task.name] = row
    return out
