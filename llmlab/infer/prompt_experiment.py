"""The lesson's first practice exercise as an experiment: how much do examples in the prompt
(few-shot, k = 0, 1, 2, 4, 8) and step-by-step reasoning (chain-of-thought) help a model?

Two tasks, each with ground truth:
- review classification (`text`, `label`): label scoring (`few_shot_classification`), raw and with
  contextual calibration; chain-of-thought here is zero-shot CoT (Kojima et al., 2022): the model
  first writes "Let me think step by step: ..." and the label is then scored after its reasoning.
- arithmetic word problems (`question`, `solution`, `answer`), grouped by number of steps: direct
  answers after k question/answer examples, and chain-of-thought (the lesson's prompt, after k
  worked solutions), each answer extracted with `extract_answer`.

k examples that do not fit the context (leaving room for the answer) are dropped from the end, and
the table reports the k that actually fit; a test item that alone exceeds the context keeps its end
(the question), and label scoring keeps the end of its context likewise. Demonstrations are drawn from the training split with
a fixed seed and are the same for every test item.
"""

from __future__ import annotations

import json
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from llmlab.errors import DataError, at_line, json_error
from llmlab.infer.engine import Engine
from llmlab.infer.prompting import (
    QA_TEMPLATE,
    PromptTemplate,
    chain_of_thought_prompt,
    extract_answer,
    few_shot_classification,
)
from llmlab.infer.scoring import score_continuations

CLASSIFICATION_FIELDS = ("text", "label")
ARITHMETIC_FIELDS = ("question", "solution", "answer")


# ---------------------------------------------------------------------------- data
@dataclass
class ExperimentData:
    classification_train: list[dict] = field(default_factory=list)
    classification_test: list[dict] = field(default_factory=list)
    arithmetic: dict[str, list[dict]] = field(default_factory=dict)  # set name -> problems

    @property
    def has_classification(self) -> bool:
        return bool(self.classification_train and self.classification_test)


def read_jsonl(path: str | Path, fields: Sequence[str]) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    records = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(json_error(path, exc, i)) from None
        missing = [f for f in fields if not isinstance(record, dict) or f not in record]
        if missing:
            raise DataError(f"{at_line(path, i)}: missing field(s) {', '.join(missing)} (need {', '.join(fields)})")
        records.append({k: str(record[k]) for k in fields})
    if not records:
        raise DataError(f"{path} holds no records")
    return records


def load_data(
    data_dir: str | Path | None = None,
    classification_train: str | None = None,
    classification_test: str | None = None,
    arithmetic: Sequence[str] = (),
) -> ExperimentData:
    """From a tinyworld folder (its `probes/`, or the probes folder itself) and/or explicit files."""
    data = ExperimentData()
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise DataError(f"data folder not found: {root}")
        probes = root / "probes" if (root / "probes").is_dir() else root
        cls = probes / "classification"
        if (cls / "train.jsonl").is_file() and (cls / "test.jsonl").is_file():
            data.classification_train = read_jsonl(cls / "train.jsonl", CLASSIFICATION_FIELDS)
            data.classification_test = read_jsonl(cls / "test.jsonl", CLASSIFICATION_FIELDS)
        for f in sorted((probes / "arithmetic").glob("*.jsonl")):
            data.arithmetic[f.stem] = read_jsonl(f, ARITHMETIC_FIELDS)
        if not data.has_classification and not data.arithmetic:
            raise DataError(
                f"{root} has no probes/classification/{{train,test}}.jsonl or probes/arithmetic/*.jsonl"
            )
    if (classification_train is None) != (classification_test is None):
        raise DataError("pass both --classification-train and --classification-test")
    if classification_train is not None:
        data.classification_train = read_jsonl(classification_train, CLASSIFICATION_FIELDS)
        data.classification_test = read_jsonl(classification_test, CLASSIFICATION_FIELDS)
    for f in arithmetic:
        data.arithmetic[Path(f).stem] = read_jsonl(f, ARITHMETIC_FIELDS)
    return data


def make_tinyworld_probes(cache_dir: Path, seed: int) -> Path:
    """Generate tinyworld's probe sets with its Python API (when it is installed)."""
    import inspect

    try:
        from llmlab.data.tinyworld import generate_dataset
    except ImportError:
        raise DataError(
            "no data given and tinyworld's generate_dataset is not available; pass --data DIR "
            "(a tinyworld folder) or --classification-train/--classification-test/--arithmetic FILE"
        ) from None
    out = cache_dir / f"tinyworld-seed{seed}"
    if not (out / "probes").is_dir():
        params = inspect.signature(generate_dataset).parameters
        kwargs: dict[str, Any] = {}
        if "seed" in params:
            kwargs["seed"] = seed
        if "tokens" in params:
            kwargs["tokens"] = 100_000  # the probes are what we need; keep the pre-training part small
        if "progress" in params:
            kwargs["progress"] = False
        generate_dataset(out, **kwargs)
    return out


# ---------------------------------------------------------------------------- helpers
def _fit(build: Callable[[list], str], demos: list, tokenizer, room: int) -> tuple[str, int]:
    """The prompt with as many of `demos` as fit in `room` tokens, and that number."""
    k = len(demos)
    while True:
        prompt = build(demos[:k])
        if k == 0 or len(tokenizer.encode(prompt)) <= room:
            return prompt, k
        k -= 1


def _demos(pool: list[dict], k: int, seed: int) -> list[dict]:
    return random.Random(seed).sample(pool, min(k, len(pool)))


# ---------------------------------------------------------------------------- classification
def run_classification(model, tokenizer, data: ExperimentData, shots: Sequence[int], *, limit: int, seed: int,
                       log: Callable[[str], None] = lambda _: None) -> list[dict]:
    test = data.classification_test[:limit]
    labels = list(dict.fromkeys(r["label"] for r in data.classification_train + test))
    gold = [r["label"] for r in test]
    template = PromptTemplate()
    room = model.config.context_length - 8  # a label is a few tokens
    rows = []
    for k in shots:
        demos = _demos(data.classification_train, k, seed)
        longest = max(test, key=lambda r: len(r["text"]))["text"]
        _, fits = _fit(lambda d: template.build([(x["text"], x["label"]) for x in d], longest), demos, tokenizer, room)
        demos = demos[:fits]
        # One pass gives both: raw scores decide the plain prediction, calibrated ones the other.
        results = few_shot_classification(model, tokenizer, demos, [r["text"] for r in test], labels,
                                          calibrate=True, return_scores=True)
        acc = _accuracy([max(r.scores, key=r.scores.get) for r in results], gold)
        cal = _accuracy([r.label for r in results], gold)
        rows.append({"task": "classification", "method": "zero-shot" if k == 0 else "few-shot", "k": k, "k_fit": fits,
                     "accuracy": acc, "calibrated_accuracy": cal, "n": len(test)})
        log(f"classification  k={k} (fit {fits}): accuracy {acc:.3f}, calibrated {rows[-1]['calibrated_accuracy']:.3f}")

    # Zero-shot chain-of-thought: reason first, then score the labels after the reasoning.
    engine = Engine(model, tokenizer, max_batch_size=32)
    prompts = [f"{template.instruction}\n\nText: {r['text']}\nLet me think step by step:" for r in test]
    reasons = _generate(engine, prompts, temperature=0, max_new_tokens=48, stop=["\n\n", "\nSentiment:"])
    contexts = [p + res.text + "\nSentiment:" for p, res in zip(prompts, reasons)]
    scores = score_continuations(model, tokenizer, [c for c in contexts for _ in labels],
                                 [" " + label for _ in contexts for label in labels])
    preds = [labels[max(range(len(labels)), key=lambda j: scores[i * len(labels) + j][0])] for i in range(len(test))]
    acc = _accuracy(preds, gold)
    rows.append({"task": "classification", "method": "chain-of-thought", "k": 0, "k_fit": 0, "accuracy": acc,
                 "calibrated_accuracy": None, "n": len(test)})
    log(f"classification  chain-of-thought: accuracy {acc:.3f}")
    return rows


# ---------------------------------------------------------------------------- arithmetic
def run_arithmetic(model, tokenizer, data: ExperimentData, shots: Sequence[int], *, limit: int, seed: int,
                   cot_shots: Sequence[int] = (0, 2), self_consistency: int = 1,
                   log: Callable[[str], None] = lambda _: None) -> list[dict]:
    pool = [r for records in data.arithmetic.values() for r in records]
    engine = Engine(model, tokenizer, max_batch_size=32)
    rows = []
    for name, records in data.arithmetic.items():
        test = records[:limit]
        gold = [extract_answer(r["answer"]) or r["answer"].strip() for r in test]
        held_out = {id(r) for r in test}
        demo_pool = [r for r in pool if id(r) not in held_out] or pool  # never an answered item as a demo
        for k in shots:  # direct answers
            demos = _demos(demo_pool, k, seed)
            room = model.config.context_length - 16
            prompts, fits = [], []
            for r in test:
                p, f = _fit(lambda d: QA_TEMPLATE.build([(x["question"], x["answer"]) for x in d], r["question"]),
                            demos, tokenizer, room)
                prompts.append(p)
                fits.append(f)
            outs = _generate(engine, prompts, temperature=0, max_new_tokens=12, stop=["\n"])
            acc = _accuracy([extract_answer(o.text) for o in outs], gold)
            rows.append({"task": "arithmetic", "set": name, "method": "zero-shot" if k == 0 else "few-shot", "k": k,
                         "k_fit": min(fits), "accuracy": acc, "n": len(test)})
            log(f"arithmetic {name}  direct k={k} (fit {min(fits)}): accuracy {acc:.3f}")
        for k in cot_shots:  # chain-of-thought
            demos = _demos(demo_pool, k, seed)
            room = model.config.context_length - 96
            prompts, fits = [], []
            for r in test:
                p, f = _fit(lambda d: chain_of_thought_prompt(r["question"], d), demos, tokenizer, room)
                prompts.append(p)
                fits.append(f)
            answers = _cot_answers(engine, prompts, self_consistency, seed)
            acc = _accuracy(answers, gold)
            label = "chain-of-thought" + (f" (self-consistency {self_consistency})" if self_consistency > 1 else "")
            rows.append({"task": "arithmetic", "set": name, "method": label, "k": k, "k_fit": min(fits),
                         "accuracy": acc, "n": len(test)})
            log(f"arithmetic {name}  {label} k={k} (fit {min(fits)}): accuracy {acc:.3f}")
    return rows


def _cot_answers(engine: Engine, prompts: list[str], k: int, seed: int) -> list[str | None]:
    """Majority answer of k chains per prompt (greedy when k == 1)."""
    from collections import Counter

    settings = dict(max_new_tokens=96, stop=["\nProblem:", "\n\n\n"], truncation="left")
    ids = {}
    for i, p in enumerate(prompts):
        for j in range(k):
            sample = dict(temperature=0.0) if k == 1 else dict(temperature=0.7, seed=seed + i * k + j)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an item longer than the context keeps its end
                ids[engine.add_request(p, **settings, **sample)] = i
    done = engine.wait(ids)
    votes: list[Counter] = [Counter() for _ in prompts]
    for rid, i in ids.items():
        answer = extract_answer(done[rid].text)
        if answer is not None:
            votes[i][answer] += 1
    return [v.most_common(1)[0][0] if v else None for v in votes]


def _generate(engine: Engine, prompts: list[str], **settings):
    """engine.generate, keeping the end of any prompt longer than the context (the query is last)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return engine.generate(prompts, truncation="left", **settings)


def _accuracy(preds: Sequence, gold: Sequence) -> float:
    return sum(p == g for p, g in zip(preds, gold)) / max(1, len(gold))


# ---------------------------------------------------------------------------- report
def write_report(rows: list[dict], out: Path, title: str) -> dict[str, str]:
    """results.json, table.md and prompting.png in `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"# {title}", ""]
    cls = [r for r in rows if r["task"] == "classification"]
    if cls:
        lines += ["## Review classification (label scoring)", "", "| method | k (fit) | accuracy | calibrated |",
                  "|---|---|---|---|"]
        for r in cls:
            cal = "" if r["calibrated_accuracy"] is None else f"{r['calibrated_accuracy']:.3f}"
            lines.append(f"| {r['method']} | {r['k']} ({r['k_fit']}) | {r['accuracy']:.3f} | {cal} |")
        lines.append("")
    ari = [r for r in rows if r["task"] == "arithmetic"]
    if ari:
        sets = list(dict.fromkeys(r["set"] for r in ari))
        lines += ["## Arithmetic (exact answer)", "", "| method | k | " + " | ".join(sets) + " |",
                  "|---|---|" + "---|" * len(sets)]
        for method, k in dict.fromkeys((r["method"], r["k"]) for r in ari):
            cells = [next((f"{r['accuracy']:.3f}" for r in ari if r["method"] == method and r["k"] == k and r["set"] == s), "")
                     for s in sets]
            lines.append(f"| {method} | {k} | " + " | ".join(cells) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    _plot(cls, ari, out / "prompting.png", title)
    return {"results": str(out / "results.json"), "table": str(out / "table.md"), "plot": str(out / "prompting.png")}


def _plot(cls: list[dict], ari: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in (cls, ari) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, rows in zip(axes[0], panels):
        if rows is cls:
            shots = [r for r in rows if r["method"] != "chain-of-thought"]
            ax.plot([r["k"] for r in shots], [r["accuracy"] for r in shots], "o-", label="few-shot")
            ax.plot([r["k"] for r in shots], [r["calibrated_accuracy"] for r in shots], "s--", label="few-shot, calibrated")
            for r in rows:
                if r["method"] == "chain-of-thought":
                    ax.axhline(r["accuracy"], color="tab:red", ls=":", label="zero-shot chain-of-thought")
            ax.set_title("review classification")
        else:
            for s in dict.fromkeys(r["set"] for r in rows):
                direct = [r for r in rows if r["set"] == s and not r["method"].startswith("chain")]
                line, = ax.plot([r["k"] for r in direct], [r["accuracy"] for r in direct], "o-", label=f"{s} direct")
                cot = [r for r in rows if r["set"] == s and r["method"].startswith("chain")]
                ax.plot([r["k"] for r in cot], [r["accuracy"] for r in cot], "*", ms=12, color=line.get_color(),
                        label=f"{s} chain-of-thought")
            ax.set_title("arithmetic word problems")
        ax.set_xlabel("examples in the prompt (k)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
