"""A small task harness: multiple-choice and generative tasks in JSONL, few-shot, lm-eval's metrics.

Multiple choice (lm-evaluation-harness's `multiple_choice` output type): each choice is scored as a
continuation of the prompt by its summed log-probability (`llmlab.infer.score_continuations`),
    acc      = 1 if argmax_i  log p(choice_i | prompt)              is the gold choice
    acc_norm = 1 if argmax_i  log p(choice_i | prompt) / len(choice_i) is the gold choice
where len is the choice's number of characters (without the delimiter that precedes it), exactly as
lm-eval's `completion_len`; it stops long choices from losing just for having more tokens.

Generative: the model continues the prompt greedily through the engine until a stop string;
    exact_match = 1 if the normalised output equals a normalised gold answer
    contains    = 1 if a normalised gold answer occurs in the normalised output (whole words)
normalised: lower case, whitespace collapsed, leading/trailing punctuation and spaces removed.
With `extract: "answer"` the final answer (the number after "Answer:", else the last number,
`llmlab.infer.extract_answer`) is compared instead of the whole output.

Prompts (lm-eval's layout): description, then k examples, then the query, joined by
`fewshot_delimiter` ("\\n\\n"); an example is its query + `target_delimiter` (" ") + its target.
Examples are drawn with one seeded RNG, document after document, from the task's few-shot pool
(records with "split": "train" when the file has them, else the other records), never the document
itself, exactly as lm-eval's sampler draws them (`Task.fewshot_examples`), so the same seed gives
the same prompts in `llmlab eval tasks` and `llmlab eval harness`.

JSONL schema (one record per line; docs/evaluation.md):
    multiple choice: {"query": str, "choices": [str, ...], "gold": int | str}
    generative:      {"query": str, "answer": str | [str, ...], "target"?: str, "extract"?: "answer"}
    optional on any record: "split": "train" | "test", "id"
    optional first line: {"task_config": {"name", "description", "target_delimiter",
                          "fewshot_delimiter", "shots", "max_new_tokens", "stop"}}
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from llmlab.errors import ConfigError, DataError

CONFIG_KEYS = {"name", "description", "target_delimiter", "fewshot_delimiter", "shots", "max_new_tokens", "stop"}


@dataclass
class Task:
    name: str
    kind: str  # "multiple_choice" | "generate"
    docs: list[dict[str, Any]]  # evaluated
    fewshot_docs: list[dict[str, Any]]  # example pool (may be `docs` itself; a doc is never its own example)
    description: str = ""
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    shots: int = 0  # default number of examples
    max_new_tokens: int = 32
    stop: list[str] = field(default_factory=lambda: ["\n"])
    about: str = ""  # one line for tables

    def target(self, doc: Mapping[str, Any]) -> str:
        """How a document's answer is written when it serves as an example."""
        if self.kind == "multiple_choice":
            return doc["choices"][doc["gold"]]
        return doc.get("target") or doc["answer"][0]

    def doc_key(self, doc: Mapping[str, Any]) -> tuple:
        """What makes two documents the same one (for keeping a document out of its own examples):
        the fields a prompt and a score use, as the lm-eval export writes them (harness_tasks)."""
        if self.kind == "multiple_choice":
            return doc["query"], tuple(doc["choices"]), doc["gold"]
        return doc["query"], tuple(doc["answer"]), self.target(doc), doc.get("extract") or ""

    def fewshot_examples(self, doc: Mapping[str, Any], k: int, rng: random.Random) -> list[dict[str, Any]]:
        """k examples for `doc`, drawn exactly as lm-eval's ContextSampler does (so that the same seed
        gives the same prompts in both): from a separate pool, `rng.sample(pool, k)`; from the
        documents themselves, `rng.sample(pool, k + 1)` less `doc`, cut to k (redrawn from the pool
        without `doc` in the rare case that copies of it left fewer than k)."""
        if k == 0:
            return []
        pool = self.fewshot_docs
        shared = pool is self.docs
        key = self.doc_key(doc)
        others = [d for d in pool if self.doc_key(d) != key] if shared else pool
        if k > len(others):
            raise ConfigError(f"task {self.name}: {k} shots asked but only {len(others)} examples available")
        if not shared:
            return rng.sample(pool, k)
        picked = [d for d in rng.sample(pool, k + 1) if self.doc_key(d) != key][:k]
        return picked if len(picked) == k else rng.sample(others, k)

    def fewshot_context(self, doc: Mapping[str, Any], k: int, rng: random.Random) -> str:
        examples = self.fewshot_examples(doc, k, rng)
        parts = ([self.description] if self.description else [])
        parts += [d["query"] + self.target_delimiter + self.target(d) for d in examples]
        return self.fewshot_delimiter.join(parts + [doc["query"]])


@dataclass
class TaskResult:
    name: str
    kind: str
    n: int
    shots: int
    metrics: dict[str, float]  # acc/acc_norm or exact_match/contains
    ci: dict[str, tuple[float, float]]  # Wilson 95% intervals of each metric
    chance: float | None = None  # accuracy of guessing (multiple choice)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, with_samples: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not with_samples:
            out.pop("samples")
        return out


# ---------------------------------------------------------------------------- loading
def _check_doc(doc: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(doc, dict):
        raise DataError(f"{where}: expected a JSON object")
    if not isinstance(doc.get("query"), str):
        raise DataError(f"{where}: needs a string \"query\"")
    if "choices" in doc:
        choices = doc["choices"]
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
            raise DataError(f"{where}: \"choices\" must be a list of at least two non-empty strings")
        gold = doc.get("gold")
        if isinstance(gold, str):
            if gold not in choices:
                raise DataError(f"{where}: gold {gold!r} is not one of the choices")
            gold = choices.index(gold)
        if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(choices):
            raise DataError(f"{where}: \"gold\" must be a choice index (0..{len(choices) - 1}) or a choice string")
        return "multiple_choice", {**doc, "gold": gold}
    if "answer" in doc:
        answer = doc["answer"]
        answers = [answer] if isinstance(answer, (str, int, float)) else answer
        if not isinstance(answers, list) or not answers or not all(isinstance(a, (str, int, float)) for a in answers):
            raise DataError(f"{where}: \"answer\" must be a string or a list of strings")
        if doc.get("extract") not in (None, "answer"):
            raise DataError(f"{where}: \"extract\" must be \"answer\" if given")
        return "generate", {**doc, "answer": [str(a) for a in answers]}
    raise DataError(f"{where}: a record needs \"choices\" and \"gold\" (multiple choice) or \"answer\" (generative)")


def task_from_records(records: Sequence[Any], name: str = "task", where: str = "task") -> Task:
    """A Task from JSONL records (see the module docstring for the schema)."""
    records = list(records)
    config: dict[str, Any] = {}
    if records and isinstance(records[0], dict) and "task_config" in records[0]:
        config = records.pop(0)["task_config"]
        if not isinstance(config, dict) or set(config) - CONFIG_KEYS:
            raise DataError(f"{where}: task_config keys must be among {', '.join(sorted(CONFIG_KEYS))}")
    if not records:
        raise DataError(f"{where} has no task records")
    kinds, docs = set(), []
    for i, rec in enumerate(records, 1):
        kind, doc = _check_doc(rec, f"{where}, record {i}")
        kinds.add(kind)
        docs.append(doc)
    if len(kinds) > 1:
        raise DataError(f"{where} mixes multiple-choice and generative records; use one kind per file")
    train = [d for d in docs if d.get("split") == "train"]
    test = [d for d in docs if d.get("split") != "train"]
    if not test:
        raise DataError(f"{where}: every record is split \"train\"; nothing left to evaluate")
    kind = kinds.pop()
    task = Task(name=str(config.get("name", name)), kind=kind, docs=test, fewshot_docs=train or test,
                description=str(config.get("description", "")),
                target_delimiter=str(config.get("target_delimiter", " ")),
                fewshot_delimiter=str(config.get("fewshot_delimiter", "\n\n")),
                shots=int(config.get("shots", 0)), max_new_tokens=int(config.get("max_new_tokens", 32)),
                stop=list(config.get("stop", ["\n"])), about=f"from {where}")
    return task


def load_task_file(path: str | Path) -> Task:
    from llmlab.eval.tinyworld_probes import read_jsonl

    p = Path(path)
    return task_from_records(read_jsonl(p), name=p.stem, where=str(p))


# ---------------------------------------------------------------------------- metrics
def _wilson(hits: float, n: int) -> tuple[float, float]:
    from llmlab.eval.stats import wilson_interval

    return wilson_interval(int(round(hits)), n)


def _argmax(values: Sequence[float]) -> int:
    """First index of the maximum (numpy's argmax, which lm-eval uses)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


_PUNCT = " \t\n.,!?;:\"'"


def normalize_answer(text: str) -> str:
    return re.sub(r"\s+", " ", str(text).lower()).strip(_PUNCT)


def _contains(output: str, answer: str) -> bool:
    if not answer:
        return False
    return re.search(r"(?<!\w)" + re.escape(answer) + r"(?!\w)", output) is not None


def score_generation(output: str, answers: Sequence[str], extract: str | None = None) -> dict[str, float]:
    """exact_match and contains of one generation against its gold answers (a list, or one string)."""
    if isinstance(answers, (str, int, float)):
        answers = [str(answers)]  # a bare "14" must not be read as the answers "1" and "4"
    if extract == "answer":
        from llmlab.infer import extract_answer

        got = extract_answer(output) or ""
        return {"exact_match": float(any(got == str(a).strip() for a in answers)),
                "contains": float(any(_contains(output, str(a).strip()) for a in answers))}
    out = normalize_answer(output)
    golds = [normalize_answer(a) for a in answers]
    return {"exact_match": float(any(out == g for g in golds)),
            "contains": float(any(_contains(out, g) for g in golds))}


# ---------------------------------------------------------------------------- running
def evaluate_task(model: Any, tokenizer: Any, task: Task, shots: int | None = None, *, limit: int | None = None,
                  seed: int = 1234, batch_size: int = 32) -> TaskResult:
    """Run `task` with `shots` examples per query (default: the task's own) on its first `limit` docs."""
    k = task.shots if shots is None else shots
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigError(f"shots must be a non-negative integer, got {k!r}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    docs = task.docs[:limit] if limit else task.docs
    rng = random.Random(seed)
    contexts = [task.fewshot_context(d, k, rng) for d in docs]
    if task.kind == "multiple_choice":
        return _run_multiple_choice(model, tokenizer, task, docs, contexts, k, batch_size)
    return _run_generate(model, tokenizer, task, docs, contexts, k, batch_size)


def _run_multiple_choice(model, tokenizer, task, docs, contexts, k, batch_size) -> TaskResult:
    from llmlab.infer import score_continuations

    ctx = [c for c, d in zip(contexts, docs) for _ in d["choices"]]
    cont = [task.target_delimiter + ch for d in docs for ch in d["choices"]]
    scored = score_continuations(model, tokenizer, ctx, cont, batch_size=batch_size)
    samples, pos = [], 0
    for d, c in zip(docs, contexts):
        lls = [s for s, _, _ in scored[pos:pos + len(d["choices"])]]
        pos += len(d["choices"])
        pred = _argmax(lls)
        pred_norm = _argmax([ll / len(ch) for ll, ch in zip(lls, d["choices"])])
        samples.append({"query": d["query"], "prompt": c, "choices": d["choices"], "gold": d["gold"],
                        "loglikelihoods": lls,
                        "pred": pred, "pred_norm": pred_norm, "acc": float(pred == d["gold"]),
                        "acc_norm": float(pred_norm == d["gold"])})
    n = len(samples)
    metrics = {m: sum(s[m] for s in samples) / n for m in ("acc", "acc_norm")}
    chance = sum(1 / len(d["choices"]) for d in docs) / n
    return TaskResult(task.name, task.kind, n, k, metrics, {m: _wilson(v * n, n) for m, v in metrics.items()},
                      chance, samples)


def _run_generate(model, tokenizer, task, docs, contexts, k, batch_size) -> TaskResult:
    from llmlab.eval._generate import batch_generate

    outputs = batch_generate(model, tokenizer, contexts, temperature=0.0, max_new_tokens=task.max_new_tokens,
                             stop=task.stop, truncation="left", max_batch_size=batch_size)
    samples = []
    for d, c, out in zip(docs, contexts, outputs):
        samples.append({"query": d["query"], "prompt": c, "answer": d["answer"], "output": out,
                        **score_generation(out, d["answer"], d.get("extract"))})
    n = len(samples)
    metrics = {m: sum(s[m] for s in samples) / n for m in ("exact_match", "contains")}
    return TaskResult(task.name, task.kind, n, k, metrics, {m: _wilson(v * n, n) for m, v in metrics.items()},
                      None, samples)


# ---------------------------------------------------------------------------- tinyworld tasks
SINGLE_VALUED = ("home_town", "age", "job", "pet_species", "pet_name", "favourite_food", "favourite_colour",
                 "group", "located_in", "shop_type", "owner")


def _fact_docs(probes: Any, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Fact questions about single-valued relations, with the true answer and three wrong values of
    the same relation (tinyworld's own question and answer sentences)."""
    from llmlab.data.tinyworld.facts import fact_question, person_answer, shop_answer
    from llmlab.data.tinyworld.world import Person

    world = probes.world
    values: dict[str, list[str]] = {}
    for t in world.triples():
        values.setdefault(t["relation"], [])
        if t["object"] not in values[t["relation"]]:
            values[t["relation"]].append(t["object"])
    rng = random.Random(f"llmlab-eval/facts/{seed}")
    docs: list[dict[str, Any]] = []
    while len(docs) < n:
        q = fact_question(world, rng)
        if q["relation"] not in SINGLE_VALUED or len(values[q["relation"]]) < 4:
            continue
        is_person = world.has_person(q["subject"])
        subject = world.person(q["subject"]) if is_person else world.shop(q["subject"])
        say = person_answer if isinstance(subject, Person) else shop_answer
        wrong = rng.sample([v for v in values[q["relation"]] if v != q["answer"]], 3)
        options = [q["answer"]] + wrong
        rng.shuffle(options)
        docs.append({"question": q["question"], "answer": q["answer"], "relation": q["relation"],
                     "options": options, "gold": options.index(q["answer"]),
                     "sentences": [say(world, subject, q["relation"], v) for v in options],
                     "answer_sentence": q["answer_sentence"]})
    return docs


def _facts_mc(probes: Any, n: int = 200) -> Task:
    docs = [{"query": f"User: {d['question']}\nAssistant:", "choices": d["sentences"], "gold": d["gold"],
             "relation": d["relation"]} for d in _fact_docs(probes, n)]
    return Task("tinyworld_facts_mc", "multiple_choice", docs, docs, about="fact questions; 4 answer sentences "
                "(true + 3 wrong values of the same relation), tinyworld's dialogue format")


def _facts_gen(probes: Any, n: int = 200) -> Task:
    docs = [{"query": f"User: {d['question']}\nAssistant:", "answer": [d["answer"], d["answer_sentence"]],
             "target": d["answer_sentence"], "relation": d["relation"]} for d in _fact_docs(probes, n, seed=1)]
    return Task("tinyworld_facts_gen", "generate", docs, docs, max_new_tokens=32, stop=["\n"],
                about="the same questions answered freely; exact = the answer or tinyworld's answer sentence")


def _reviews(probes: Any) -> Task:
    def doc(r: Mapping[str, Any]) -> dict[str, Any]:
        return {"query": f"Text: {r['text']}\nSentiment:", "choices": ["positive", "negative"],
                "gold": 0 if r["label"] == "positive" else 1}

    return Task("tinyworld_reviews", "multiple_choice", [doc(r) for r in probes.load("classification/test")],
                [doc(r) for r in probes.load("classification/train")],
                description="Classify the sentiment of these texts:", shots=4, about="shop reviews, positive or negative, in the lesson's few-shot format")


def _arithmetic(probes: Any, steps: int) -> Task:
    docs = [{"query": r["question"], "answer": [str(r["answer"])], "target": r["solution"], "extract": "answer"}
            for r in probes.load(f"arithmetic/steps_{steps}")]
    return Task(f"tinyworld_arithmetic_{steps}", "generate", docs, docs, target_delimiter="\n",
                max_new_tokens=24 + 24 * steps, stop=["\n\n"],
                about=f"{steps}-step word problems, solved step by step; the final answer is compared")


TINYWORLD_TASKS: dict[str, Callable[[Any], Task]] = {
    "tinyworld_reviews": _reviews,
    "tinyworld_facts_mc": _facts_mc,
    "tinyworld_facts_gen": _facts_gen,
    **{f"tinyworld_arithmetic_{s}": (lambda p, s=s: _arithmetic(p, s)) for s in (1, 2, 3, 4)},
}


def tinyworld_task(name: str, probes: Any = None) -> Task:
    """A built-in task by name (see TINYWORLD_TASKS); probes: a TinyworldProbes (default seed 0)."""
    from llmlab.eval.tinyworld_probes import TinyworldProbes

    if name not in TINYWORLD_TASKS:
        raise ConfigError(f"unknown task {name!r}; built in: {', '.join(TINYWORLD_TASKS)}")
    return TINYWORLD_TASKS[name](probes or TinyworldProbes())


def resolve_task_names(names: Sequence[str], default_all: bool = True) -> list[str]:
    """Built-in task names as given on a command line (repeated or comma-separated; "tinyworld" for
    all), in order without repeats; all of them when none is given and `default_all`."""
    out: list[str] = []
    for item in names:
        for n in (p.strip() for p in str(item).split(",")):
            if not n:
                continue
            for name in (list(TINYWORLD_TASKS) if n == "tinyworld" else [n]):
                if name not in TINYWORLD_TASKS:
                    raise ConfigError(f"unknown task {name!r}; built in: tinyworld, {', '.join(TINYWORLD_TASKS)}")
                if name not in out:
                    out.append(name)
    return out if out or not default_all else list(TINYWORLD_TASKS)


def accuracy_summary(result: TaskResult) -> tuple[str, float]:
    """The headline metric of a result: acc_norm (multiple choice) or exact_match (generative)."""
    key = "acc_norm" if result.kind == "multiple_choice" else "exact_match"
    return key, result.metrics[key]



def run_tasks(model: Any, tokenizer: Any, names: Sequence[str], files: Sequence[str | Path], shots: int | None,
              limit: int | None, probes: Any, seed: int = 1234) -> list[tuple[Task, TaskResult]]:
    """Built-in tasks by name and task files, each evaluated: [(task, result)] (`llmlab eval tasks`)."""
    tasks = [tinyworld_task(n, probes) for n in names] + [load_task_file(f) for f in files]
    return [(t, evaluate_task(model, tokenizer, t, shots, limit=limit, seed=seed)) for t in tasks]


TABLE_COLUMNS = ["task", "metric", "n", "shots", "value", "95% CI", "chance"]


def result_rows(results: Sequence[tuple[Task, TaskResult]]) -> list[list[Any]]:
    """One TABLE_COLUMNS row per task and metric: the terminal's table and the report's."""
    rows = []
    for task, r in results:
        for metric, value in r.metrics.items():
            lo, hi = r.ci[metric]
            rows.append([task.name, metric, r.n, r.shots, f"{value:.3f}", f"{lo:.2f}-{hi:.2f}",
                         "-" if r.chance is None else f"{r.chance:.2f}"])
    return rows
