"""Prompting strategies: zero-shot, few-shot and chain-of-thought.

- `few_shot_classification` picks the label the model finds most likely after the prompt (each
  label scored by its log-likelihood as a continuation, as lm-evaluation-harness does) instead of
  parsing free text, so a small model cannot "answer" with something that is not a label. Optional
  contextual calibration (Zhao et al., 2021) divides out the model's prior for each label, measured
  on content-free inputs such as "N/A" with the same examples.
- `chain_of_thought_reasoning` generates a step-by-step solution, extracts the final answer, and
  with `self_consistency=k` samples k chains and takes the majority answer (Wang et al., 2022).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from llmlab.errors import ConfigError, DataError
from llmlab.infer.engine import Engine
from llmlab.infer.scoring import score_continuations

CLASSIFY_INSTRUCTION = "Classify the sentiment of these texts:"
COT_CUE = "Let me think step by step:"
CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")  # the calibration paper's content-free inputs


# ---------------------------------------------------------------------------- prompt builders
@dataclass
class PromptTemplate:
    """How examples and the query are laid out. The default is the lesson's sentiment format:

        Classify the sentiment of these texts:

        Text: <example>
        Sentiment: <label>

        Text: <query>
        Sentiment:
    """

    instruction: str = CLASSIFY_INSTRUCTION
    input_prefix: str = "Text: "
    output_prefix: str = "Sentiment:"
    separator: str = "\n\n"

    def example(self, text: str, output: str) -> str:
        return f"{self.input_prefix}{text}\n{self.output_prefix} {output}"

    def query(self, text: str) -> str:
        return f"{self.input_prefix}{text}\n{self.output_prefix}"

    def build(self, examples: Sequence[tuple[str, str]], query: str) -> str:
        parts = ([self.instruction] if self.instruction else []) + [self.example(t, o) for t, o in examples]
        return self.separator.join(parts + [self.query(query)])


QA_TEMPLATE = PromptTemplate(instruction="", input_prefix="Question: ", output_prefix="Answer:")


def zero_shot_prompt(query: str, template: PromptTemplate | None = None) -> str:
    """The instruction and the query, no examples."""
    return (template or PromptTemplate()).build([], query)


def few_shot_prompt(examples: Sequence[Any], query: str, template: PromptTemplate | None = None) -> str:
    """The instruction, k worked examples, then the query (examples: dicts with text/label, or pairs)."""
    return (template or PromptTemplate()).build(_pairs(examples), query)


def chain_of_thought_prompt(
    problem: str, examples: Sequence[Mapping[str, str]] = (), *, cue: str = COT_CUE, first_step: str | None = None
) -> str:
    """The lesson's chain-of-thought prompt, optionally after worked examples
    (dicts with `question` and `solution`):

        Problem: <problem>

        Let me think step by step:

        Step 1:

    first_step (default "Step 1:") primes the format; it is left out when the examples' solutions
    do not start with it, so the prompt matches the demonstrations.
    """
    demos = []
    for i, ex in enumerate(examples):
        if "question" not in ex or "solution" not in ex:
            raise DataError(f"chain-of-thought example {i} needs 'question' and 'solution' fields")
        demos.append(f"Problem: {ex['question']}\n\n{cue}\n\n{ex['solution'].strip()}")
    if first_step is None:
        first_step = "Step 1:" if all(ex["solution"].lstrip().startswith("Step 1") for ex in examples) else ""
    query = f"Problem: {problem}\n\n{cue}\n\n{first_step}".rstrip()
    return "\n\n".join(demos + [query])


def _pairs(examples: Sequence[Any]) -> list[tuple[str, str]]:
    """(input, output) pairs from dicts with text/label (classification) or question/answer (QA),
    or from 2-tuples."""
    pairs = []
    for i, ex in enumerate(examples):
        if isinstance(ex, Mapping):
            input_key, label_key = ("question", "answer") if "question" in ex else ("text", "label")
            if input_key not in ex or label_key not in ex:
                raise DataError(f"example {i} needs {input_key!r} and {label_key!r} fields, got {sorted(ex)}")
            pairs.append((str(ex[input_key]), str(ex[label_key])))
        elif isinstance(ex, (tuple, list)) and len(ex) == 2:
            pairs.append((str(ex[0]), str(ex[1])))
        else:
            raise DataError(f"example {i} must be a dict (text/label or question/answer) or a (text, label) pair")
    return pairs


# ---------------------------------------------------------------------------- classification
@dataclass
class ClassificationResult:
    label: str
    scores: dict[str, float]  # label -> log p(label | prompt) (summed over its tokens)
    probs: dict[str, float]  # scores renormalised over the labels
    calibrated: dict[str, float] | None = None  # label -> log(p / p_content_free), renormalised

    def __str__(self) -> str:
        return self.label


def few_shot_classification(
    model,
    tokenizer,
    examples: Sequence[Any],
    query: str | Sequence[str],
    labels: Sequence[str] | None = None,
    *,
    template: PromptTemplate | None = None,
    calibrate: bool = False,
    normalize: str = "none",
    return_scores: bool = False,
    batch_size: int = 16,
) -> str | ClassificationResult | list:
    """Classify `query` (or each query of a list) given labelled `examples`, by label likelihood.

    labels: the candidates (default: the examples' labels, in order of first appearance).
    calibrate: contextual calibration against content-free inputs.
    normalize: "none" (sum of log-probabilities, lm-eval's acc) or "chars" (per character of the
        label, lm-eval's acc_norm), which matters when labels have different lengths.
    Returns the label (or a ClassificationResult with return_scores=True); a list for a list.
    """
    template = template or PromptTemplate()
    pairs = _pairs(examples)
    if labels is None:
        labels = list(dict.fromkeys(label for _, label in pairs))
    labels = [str(label) for label in labels]
    if not labels:
        raise ConfigError("no labels: pass labels=[...] (or examples that carry them)")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"labels must be distinct, got {labels}")
    if normalize not in ("none", "chars"):
        raise ConfigError(f"normalize must be 'none' or 'chars', got {normalize!r}")
    single = isinstance(query, str)
    queries = [query] if single else list(query)

    def label_scores(texts: Sequence[str]) -> list[dict[str, float]]:
        prompts = [template.build(pairs, t) for t in texts]
        ctx = [p for p in prompts for _ in labels]
        cont = [" " + label for _ in prompts for label in labels]
        scored = score_continuations(model, tokenizer, ctx, cont, batch_size=batch_size)
        out = []
        for q in range(len(texts)):
            row = scored[q * len(labels):(q + 1) * len(labels)]
            out.append({
                label: (s / max(1, len(label) + 1) if normalize == "chars" else s)
                for label, (s, _, _) in zip(labels, row)
            })
        return out

    prior = None
    if calibrate:
        # p_cf(label): the model's label distribution when the input says nothing, averaged over
        # several content-free inputs.
        content_free = [_normalise(s) for s in label_scores(CONTENT_FREE_INPUTS)]
        prior = {label: sum(p[label] for p in content_free) / len(content_free) for label in labels}

    results = []
    for scores in label_scores(queries):
        probs = _normalise(scores)
        calibrated = None
        if prior is not None:
            calibrated = _normalise({k: math.log(probs[k] + 1e-30) - math.log(prior[k] + 1e-30) for k in labels})
            best = max(labels, key=lambda k: calibrated[k])
        else:
            best = max(labels, key=lambda k: scores[k])
        results.append(ClassificationResult(best, scores, probs, calibrated) if return_scores else best)
    return results[0] if single else results


def _normalise(logits: Mapping[str, float]) -> dict[str, float]:
    """softmax over a label -> log-score mapping."""
    top = max(logits.values())
    exp = {k: math.exp(v - top) for k, v in logits.items()}
    z = sum(exp.values())
    return {k: v / z for k, v in exp.items()}


# ---------------------------------------------------------------------------- chain of thought
_ANSWER_RE = re.compile(r"answer\s*(?:is)?\s*[:=]?\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_STEP_RE = re.compile(r"\bstep\s+\d+\s*[:.]", re.IGNORECASE)  # "Step 2:" labels are not answers


def extract_answer(text: str) -> str | None:
    """The final answer of a solution: the number after the first "Answer:" / "answer is", else
    the last number in the text (step labels such as "Step 2:" aside), else None. Commas and a
    trailing ".0" are normalised away."""
    match = _ANSWER_RE.search(text)
    value = match.group(1) if match else (_NUMBER_RE.findall(_STEP_RE.sub(" ", text)) or [None])[-1]
    if value is None:
        return None
    value = value.replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value


@dataclass
class ReasoningResult:
    answer: str | None  # the (majority) final answer
    reasoning: str  # the chain that gave it (the first one that did)
    chains: list[str] = field(default_factory=list)  # every sampled chain
    answers: list[str | None] = field(default_factory=list)  # each chain's extracted answer
    votes: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:  # the lesson's function returned the reasoning text
        return self.reasoning


def chain_of_thought_reasoning(
    model,
    tokenizer,
    problem: str | Sequence[str],
    *,
    examples: Sequence[Mapping[str, str]] = (),
    self_consistency: int = 1,
    temperature: float | None = None,
    max_new_tokens: int = 200,
    seed: int | None = None,
    engine: Engine | None = None,
    **generation: Any,
) -> ReasoningResult | list[ReasoningResult]:
    """Solve `problem` step by step and extract the answer; a list of problems gives a list.

    self_consistency=k samples k chains (temperature 0.7 unless given) and returns the majority
    answer; k=1 decodes greedily unless a temperature is given. Generation stops where the model
    starts a new "Problem:".
    """
    if isinstance(self_consistency, bool) or not isinstance(self_consistency, int) or self_consistency < 1:
        raise ConfigError(f"self_consistency must be a positive integer, got {self_consistency!r}")
    k = self_consistency
    if temperature is None:
        temperature = 0.0 if k == 1 else 0.7
    if k > 1 and temperature == 0:
        raise ConfigError("self_consistency > 1 needs temperature > 0 (greedy chains would all be the same)")
    single = isinstance(problem, str)
    problems = [problem] if single else list(problem)
    engine = engine or Engine(model, tokenizer, max_batch_size=min(64, max(1, len(problems) * k)))
    stop = list(generation.pop("stop", [])) + ["\nProblem:"]
    base = engine.make_config(temperature=temperature, max_new_tokens=max_new_tokens, stop=stop, **generation)
    ids: dict[tuple[int, int], str] = {}
    prompts = [chain_of_thought_prompt(p, examples) for p in problems]
    for i, prompt in enumerate(prompts):
        for j in range(k):
            # Distinct, reproducible seeds per chain when a seed is given.
            s = None if seed is None else seed + i * k + j
            ids[i, j] = engine.add_request(prompt, base.replace(seed=s))
    done = engine.wait(ids.values())

    results = []
    for i, prompt in enumerate(prompts):
        # The prompt's "Step 1:" belongs to the reasoning the lesson's function returned.
        head = "Step 1:" if prompt.endswith("Step 1:") else ""
        chains = [(head + done[ids[i, j]].text).strip() for j in range(k)]
        answers = [extract_answer(c) for c in chains]
        votes = Counter(a for a in answers if a is not None)
        answer = max(votes, key=lambda a: (votes[a], -answers.index(a))) if votes else None
        reasoning = chains[answers.index(answer)] if answer is not None else chains[0]
        results.append(ReasoningResult(answer, reasoning, chains, answers, dict(votes)))
    return results[0] if single else results


def few_shot_generate(
    model,
    tokenizer,
    examples: Sequence[Any],
    queries: Sequence[str],
    *,
    template: PromptTemplate = QA_TEMPLATE,
    max_new_tokens: int = 16,
    engine: Engine | None = None,
    **generation: Any,
) -> list[str]:
    """Answer each query after k examples in `template`'s format, greedily, one line each."""
    engine = engine or Engine(model, tokenizer, max_batch_size=min(64, max(1, len(queries))))
    pairs = _pairs(examples)
    prompts = [template.build(pairs, q) for q in queries]
    generation.setdefault("temperature", 0.0)
    stop = list(generation.pop("stop", [])) + ["\n"]
    results = engine.generate(prompts, max_new_tokens=max_new_tokens, stop=stop, **generation)
    return [r.text.strip() for r in results]
