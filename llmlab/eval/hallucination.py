"""Hallucination detectors, and their precision, recall and AUROC on claims with known truth.

`detect_hallucination(model, tokenizer, claim, knowledge_base)` keeps the lesson's name and
signature and its meaning (True = the claim looks hallucinated), but decides properly:

1. Knowledge-base check: when a KB fact matches the claim, the claim is compared with it. A claim
   stated word for word by a KB sentence (case, spacing and punctuation aside) is supported. A
   claim dict with subject/relation/object is compared directly with the KB triples; a sentence is
   matched by finding a KB subject in it (the earliest mention) and then any known value of that
   subject's relations (e.g. "goldfish" is a value of pet_species): a value the KB does not give
   the subject contradicts the claim; only values the KB confirms support it.
2. Otherwise the model answers a verification prompt (the lesson's, with the subject's KB facts as
   evidence when there are any), and the decision is by the likelihood of its own answer:
   P(" No") vs P(" Yes") (`llmlab.infer.score_continuations`) rather than by grepping the first
   ten characters of a sampled explanation.

Two model-only detectors need no verification skill, only the model's knowledge:
- `claim_likelihood`: how surprised the model is by the claimed value given the claim's start
  (mean negative log-probability per token); flagged when greedy decoding would not produce it.
- `self_consistency` (in the spirit of SelfCheckGPT, Manakul et al. 2023): sample several
  continuations or answers; a fact the model knows comes back the same every time, a fabricated
  one varies. For claims: the share of samples that do not repeat the claimed value. For
  questions: 1 - the share of the most common answer (abstentions such as "I don't know" count
  as one answer).

`evaluate_hallucination` measures them on tinyworld: true vs false claims (positive = false) and
questions about people who do not exist vs the same questions about real people (positive =
the person does not exist), with `stats.binary_metrics` and `stats.auroc`.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from llmlab.errors import DataError

VERIFY_TEMPLATE = "Claim: {claim}\n{knowledge}Is this claim accurate? Answer: Yes or No\nAnswer:"
ABSTAIN = re.compile(r"\b(don'?t know|do not know|not sure|nobody|no one|never heard|can'?t answer|cannot answer|"
                     r"not aware|no idea|unknown)\b", re.IGNORECASE)


# ---------------------------------------------------------------------------- knowledge base
def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def _sentence_key(text: str) -> str:
    """A sentence reduced to its lower-case words, so that case, spacing and punctuation do not
    keep a claim from matching the KB sentence that states it."""
    return " ".join(re.findall(r"\w+", text.lower()))


def _split_sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if _sentence_key(s)]


@dataclass
class KBCheck:
    """What the knowledge base says about a claim: supported True/False, and why."""

    supported: bool
    subject: str
    evidence: list[str]  # the facts compared with
    values: list[dict[str, Any]] = field(default_factory=list)  # matched values: value, relations, supported


class KnowledgeBase:
    """Facts as (subject, relation, object) triples and/or free sentences.

    Build from a path (kb.jsonl of triples, or .txt with one fact per line), a list of triples
    (dicts with subject/relation/object, or 3-tuples), a list of sentences, or one text.
    """

    def __init__(self, triples: Sequence[Mapping[str, str]] = (), sentences: Sequence[str] = ()):
        self.triples = [{"subject": str(t["subject"]), "relation": str(t["relation"]), "object": str(t["object"])}
                        for t in triples]
        self.sentences = [s for s in sentences if s.strip()]
        # Each sentence of each KB entry, by key: a claim any of them states word for word is supported.
        self._by_sentence = {_sentence_key(part): s for s in self.sentences for part in _split_sentences(s)}
        self.by_subject: dict[str, list[dict[str, str]]] = {}
        self.values: dict[str, set[str]] = {}  # relation -> every object it takes (lower case)
        for t in self.triples:
            self.by_subject.setdefault(_norm(t["subject"]), []).append(t)
            self.values.setdefault(t["relation"], set()).add(_norm(t["object"]))
        # Longest subjects first so "Mia Lopez" wins over a subject "Mia".
        names = sorted(self.by_subject, key=len, reverse=True)
        self._subject_re = (re.compile(r"(?<!\w)(" + "|".join(re.escape(n) for n in names) + r")(?!\w)", re.IGNORECASE)
                            if names else None)
        self._value_re: dict[str, re.Pattern[str]] = {}

    # -- construction
    @classmethod
    def from_any(cls, kb: Any) -> "KnowledgeBase":
        if isinstance(kb, KnowledgeBase):
            return kb
        if kb is None:
            return cls()
        is_path = isinstance(kb, str) and "\n" not in kb and kb.endswith((".jsonl", ".json", ".txt"))
        if isinstance(kb, Path) or is_path:
            return _load_kb_file(str(kb))
        if isinstance(kb, str):
            return cls(sentences=[line for line in kb.splitlines() if line.strip()])
        triples, sentences = [], []
        for i, item in enumerate(kb):
            if isinstance(item, str):
                sentences.append(item)
            elif isinstance(item, Mapping) and {"subject", "relation", "object"} <= set(item):
                triples.append(item)
            elif isinstance(item, (tuple, list)) and len(item) == 3:
                triples.append({"subject": item[0], "relation": item[1], "object": item[2]})
            else:
                raise DataError(f"knowledge base item {i + 1}: expected a sentence, a (subject, relation, object) "
                                "triple or a dict with those keys")
        return cls(triples, sentences)

    def __len__(self) -> int:
        return len(self.triples) + len(self.sentences)

    # -- look-ups
    def facts_about(self, subject: str) -> list[dict[str, str]]:
        return self.by_subject.get(_norm(subject), [])

    def subject_of(self, text: str) -> tuple[str, tuple[int, int]] | None:
        """The KB subject mentioned first in `text` (longest on ties) and its span."""
        if self._subject_re is None:
            return None
        m = self._subject_re.search(text)
        return (_norm(m.group(1)), m.span()) if m else None

    def _values_re(self, relation: str) -> re.Pattern[str]:
        """What can fill `relation` in a sentence: any number when all its values are numbers;
        any KB subject when its values are KB subjects (people, towns: a friend the KB has never
        listed as anyone's friend is still recognisably a person); else the values it takes."""
        if relation not in self._value_re:
            vals = self.values[relation]
            if all(v.isdigit() for v in vals):
                pattern = r"\d+"
            else:
                if sum(v in self.by_subject for v in vals) > len(vals) / 2:
                    vals = vals | set(self.by_subject)
                pattern = "|".join(re.escape(v) for v in sorted(vals, key=len, reverse=True))
            self._value_re[relation] = re.compile(r"(?<!\w)(" + pattern + r")(?!\w)", re.IGNORECASE)
        return self._value_re[relation]

    def check(self, claim: str | Mapping[str, Any]) -> KBCheck | None:
        """Compare a claim with the KB; None when no fact matches it."""
        stated = self._stated_by_sentences(claim)
        if stated is not None:
            return stated
        if isinstance(claim, Mapping) and {"subject", "relation", "object"} <= set(claim):
            facts = [t for t in self.facts_about(claim["subject"]) if t["relation"] == claim["relation"]]
            if not facts:
                return None
            known = {_norm(t["object"]) for t in facts}
            parts = [_norm(p) for p in str(claim["object"]).split("|")]
            return KBCheck(all(p in known for p in parts), _norm(claim["subject"]), [render_fact(t) for t in facts],
                           [{"value": p, "relations": [claim["relation"]], "supported": p in known} for p in parts])
        text = claim_text(claim)
        found = self.subject_of(text)
        if found is None:
            return None
        subject, (s0, s1) = found
        facts = self.facts_about(subject)
        rest = text[:s0] + " " * (s1 - s0) + text[s1:]  # the subject itself is not a value
        spans: dict[tuple[int, int], dict[str, Any]] = {}
        for relation in sorted({t["relation"] for t in facts}):
            known = {_norm(t["object"]) for t in facts if t["relation"] == relation}
            for m in self._values_re(relation).finditer(rest):
                v = spans.setdefault(m.span(), {"value": _norm(m.group(1)), "relations": [], "supported": False})
                v["relations"].append(relation)
                v["supported"] = v["supported"] or v["value"] in known
        # Keep the longest of overlapping matches ("ice cream maker" over "ice cream").
        values = []
        for span in sorted(spans, key=lambda s: (s[0] - s[1], s[0])):
            if all(span[1] <= a or span[0] >= b for a, b in (v["span"] for v in values)):
                values.append({**spans[span], "span": span})
        if not values:
            return None
        used = {r for v in values for r in v["relations"]}
        evidence = [render_fact(t) for t in facts if t["relation"] in used]
        values = [{k: v[k] for k in ("value", "relations", "supported")}
                  for v in sorted(values, key=lambda v: v["span"])]
        return KBCheck(all(v["supported"] for v in values), subject, evidence, values)

    def _stated_by_sentences(self, claim: str | Mapping[str, Any]) -> KBCheck | None:
        """Supported when KB sentences state every sentence of the claim word for word; else None
        (a sentence that says something else neither supports nor contradicts it)."""
        if not self._by_sentence or (isinstance(claim, Mapping) and not isinstance(claim.get("claim"), str)):
            return None
        parts = _split_sentences(claim_text(claim))
        found = [self._by_sentence.get(_sentence_key(p)) for p in parts]
        if not parts or None in found:
            return None
        return KBCheck(True, "", list(dict.fromkeys(found)))

    def evidence(self, claim: str | Mapping[str, Any], limit: int = 12) -> list[str]:
        """Facts to show the model with a claim: its subject's facts, else sentences sharing words with it."""
        text = claim_text(claim)
        found = self.subject_of(text)
        if found is not None:
            return [render_fact(t) for t in self.facts_about(found[0])][:limit]
        words = {w for w in re.findall(r"\w+", text.lower()) if len(w) > 3}
        scored = sorted(((len(words & set(re.findall(r"\w+", s.lower()))), s) for s in self.sentences), reverse=True)
        return [s for overlap, s in scored[:limit] if overlap > 0]


def render_fact(t: Mapping[str, str]) -> str:
    return f"{t['subject']} | {t['relation'].replace('_', ' ')} | {t['object']}"


@lru_cache(maxsize=4)
def _load_kb_cached(path: str, mtime: float) -> KnowledgeBase:
    p = Path(path)
    if p.suffix == ".txt":
        return KnowledgeBase(sentences=p.read_text(encoding="utf-8").splitlines())
    from llmlab.eval.tinyworld_probes import read_jsonl

    return KnowledgeBase.from_any(read_jsonl(p))


def _load_kb_file(path: str) -> KnowledgeBase:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"knowledge base not found: {p}")
    return _load_kb_cached(str(p.resolve()), p.stat().st_mtime)


def claim_text(claim: str | Mapping[str, Any]) -> str:
    """The claim as text: the sentence, a dict's "claim", or a subject/relation/object dict
    rendered like a KB fact (what the verification prompt shows the model)."""
    if isinstance(claim, str):
        text = claim
    elif isinstance(claim, Mapping) and isinstance(claim.get("claim"), str):
        text = claim["claim"]
    elif isinstance(claim, Mapping) and {"subject", "relation", "object"} <= set(claim):
        text = render_fact({k: str(claim[k]) for k in ("subject", "relation", "object")})
    else:
        raise DataError("a claim is a sentence, a dict with a \"claim\" sentence, or a dict with subject, "
                        "relation and object")
    if not text.strip():
        raise DataError("the claim is empty")
    return text


# ---------------------------------------------------------------------------- the lesson's function
@dataclass
class Verdict:
    hallucinated: bool
    method: str  # "kb" or "yes_no"
    score: float  # P(No) among {Yes, No} for yes_no; 1.0 / 0.0 for kb
    evidence: list[str] = field(default_factory=list)
    p_yes: float | None = None
    p_no: float | None = None
    kb: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.hallucinated

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verification_prompt(claim: str, evidence: Sequence[str] = ()) -> str:
    knowledge = ("Based on the following knowledge:\n" + "\n".join(evidence) + "\n") if evidence else ""
    return VERIFY_TEMPLATE.format(claim=claim, knowledge=knowledge)


def verify_claims(model: Any, tokenizer: Any, claims: Sequence[str | Mapping[str, Any]], knowledge_base: Any = None,
                  *, use_kb: bool = True, threshold: float = 0.5, batch_size: int = 32) -> list[Verdict]:
    """`detect_hallucination` for many claims, scored in batches."""
    import math

    from llmlab.infer import score_continuations

    kb = KnowledgeBase.from_any(knowledge_base)
    verdicts: list[Verdict | None] = [None] * len(claims)
    ask: list[tuple[int, str]] = []
    for i, claim in enumerate(claims):
        text = claim_text(claim)
        check = kb.check(claim) if (use_kb and len(kb)) else None
        if check is not None:
            verdicts[i] = Verdict(not check.supported, "kb", 0.0 if check.supported else 1.0, check.evidence,
                                  kb=asdict(check))
        else:
            evidence = kb.evidence(claim) if len(kb) else []
            ask.append((i, verification_prompt(text, evidence)))
            verdicts[i] = Verdict(False, "yes_no", 0.0, evidence)
    if ask:
        prompts = [p for _, p in ask]
        scored = score_continuations(model, tokenizer, [p for p in prompts for _ in (0, 1)],
                                     [" Yes", " No"] * len(prompts), batch_size=batch_size)
        for j, (i, _) in enumerate(ask):
            lp_yes, lp_no = scored[2 * j][0], scored[2 * j + 1][0]
            p_no = 1.0 / (1.0 + math.exp(lp_yes - lp_no))
            v = verdicts[i]
            v.p_no, v.p_yes, v.score, v.hallucinated = p_no, 1 - p_no, p_no, p_no > threshold
    return verdicts  # type: ignore[return-value]


def detect_hallucination(model: Any, tokenizer: Any, claim: str | Mapping[str, Any], knowledge_base: Any = None, *,
                         threshold: float = 0.5, return_details: bool = False) -> bool | Verdict:
    """Is `claim` a hallucination? (True = not supported.)

    claim: a sentence, a dict with a "claim" sentence, or a subject/relation/object dict.
    knowledge_base: triples, sentences, a path to kb.jsonl (or a .txt of facts), or None. A
    matching KB fact (or a KB sentence stating the claim word for word) decides; otherwise the model's own Yes/No answer to a verification prompt
    (with the KB's relevant facts as evidence) decides: hallucinated when P(No) > threshold.
    return_details=True returns a Verdict (method, P(Yes)/P(No), evidence) that is truthy when
    the claim looks hallucinated.
    """
    verdict = verify_claims(model, tokenizer, [claim], knowledge_base, threshold=threshold)[0]
    return verdict if return_details else verdict.hallucinated


# ---------------------------------------------------------------------------- model-only detectors
def split_claim(claim: str | Mapping[str, Any]) -> tuple[str, str]:
    """(prefix, claimed value + the rest): where the claim states its object (the earliest part of
    `object`, which may list several values joined by "|"), else before its last word."""
    text = claim_text(claim)
    obj = claim.get("object") if isinstance(claim, Mapping) else None
    if obj:
        positions = [m.start() for part in str(obj).split("|") if part
                     for m in [re.search(r"(?<!\w)" + re.escape(part) + r"(?!\w)", text)] if m]
        if positions and min(positions) > 0:
            pos = min(positions)
            return text[:pos], text[pos:]
    m = re.search(r"\s(\S+)\s*$", text.strip())
    if not m:
        raise DataError(f"cannot split a one-word claim into a start and a value: {text!r}")
    return text[:m.start() + 1], text[m.start() + 1:]


def claim_likelihood(model: Any, tokenizer: Any, claims: Sequence[str | Mapping[str, Any]], *, batch_size: int = 32
                     ) -> list[dict[str, Any]]:
    """Per claim: mean negative log-probability per token of the claimed value given the claim's
    start (`score`, higher = more surprising), and whether greedy decoding would produce it."""
    from llmlab.infer import score_continuations

    parts = [split_claim(c) for c in claims]
    scored = score_continuations(model, tokenizer, [p for p, _ in parts], [v for _, v in parts], batch_size=batch_size)
    return [{"score": -lp / n, "logprob": lp, "tokens": n, "greedy": greedy, "flagged": not greedy}
            for lp, n, greedy in scored]


def _answer_key(text: str) -> str:
    """An answer reduced to what two samples must share to agree: its first sentence, normalised;
    every abstention ("I don't know ...") is one answer."""
    first = re.split(r"(?<=[.!?])\s|\n", text.strip(), maxsplit=1)[0]
    if ABSTAIN.search(first):
        return "<abstain>"
    return re.sub(r"[^\w ]+", "", first.lower()).strip()


def self_consistency(model: Any, tokenizer: Any, prompts: Sequence[str], *, samples: int = 5,
                     temperature: float = 1.0, max_new_tokens: int = 24, seed: int = 0, stop: Sequence[str] = ("\n",),
                     claimed: Sequence[str | None] | None = None, prompt_format: str = "none",
                     generate_fn: Any = None) -> list[dict[str, Any]]:
    """Sample `samples` continuations per prompt through the engine and measure disagreement.

    Without `claimed`: score = 1 - (count of the most common answer) / samples (0: always the same).
    With claimed[i] (a claimed value): score = share of samples that do not start with that value
    (SelfCheckGPT's question: do the model's own samples support the claim?).
    """
    from llmlab.eval._generate import batch_generate

    if samples < 2:
        raise DataError(f"self-consistency needs at least 2 samples, got {samples}")
    if temperature <= 0:
        raise DataError("self-consistency needs sampling (temperature > 0)")
    if claimed is not None:  # room for the longest claimed value and its full stop
        longest = max((len(tokenizer.encode(" " + c)) for c in claimed if c), default=0)
        max_new_tokens = max(max_new_tokens, longest + 2)
    flat = [p for p in prompts for _ in range(samples)]
    seeds = [seed + i for i in range(len(flat))]
    outs = batch_generate(model, tokenizer, flat, seeds=seeds, prompt_format=prompt_format, temperature=temperature,
                          max_new_tokens=max_new_tokens, stop=list(stop), generate_fn=generate_fn)
    results = []
    for i in range(len(prompts)):
        group = outs[i * samples:(i + 1) * samples]
        if claimed is not None and claimed[i] is not None:
            want = _norm(claimed[i]).rstrip(".")
            agree = sum(_norm(o).startswith(want) for o in group)
            results.append({"score": 1 - agree / samples, "support": agree / samples, "samples": group})
        else:
            keys = [_answer_key(o) for o in group]
            top = max(set(keys), key=keys.count)
            results.append({"score": 1 - keys.count(top) / samples, "majority": top,
                            "abstained": keys.count("<abstain>") / samples, "samples": group})
    return results


# ---------------------------------------------------------------------------- evaluation on tinyworld
def _metrics(labels: list[bool], scores: list[float], flags: list[bool]) -> dict[str, Any]:
    from llmlab.eval.stats import auroc, binary_metrics

    out = binary_metrics(labels, flags)
    out["auroc"] = auroc(labels, scores) if 0 < sum(labels) < len(labels) else float("nan")
    return out


def control_questions(unanswerable: Sequence[Mapping[str, Any]], real_names: Sequence[str], seed: int = 0
                      ) -> list[dict[str, Any]]:
    """The same questions about real people: each question with its made-up name replaced."""
    rng = random.Random(f"llmlab-eval/controls/{seed}")
    out = []
    for q in unanswerable:
        name = rng.choice(list(real_names))
        out.append({**q, "question": q["question"].replace(q["subject"], name), "subject": name, "exists": True})
    return out


def evaluate_hallucination(model: Any, tokenizer: Any, probes: Any = None, *, n_claims: int = 200,
                           n_questions: int = 100, samples: int = 5, seed: int = 0, prompt_format: str = "dialogue",
                           temperature: float = 1.0) -> dict[str, Any]:
    """Precision, recall and AUROC of each detector on tinyworld (see the module docstring).

    prompt_format for questions: "dialogue" (tinyworld's "User: ... Assistant:"), "chat" (the
    tokenizer's chat template, for chat-tuned models) or "none".
    """
    from llmlab.eval.tinyworld_probes import TinyworldProbes

    probes = probes or TinyworldProbes()
    claims = probes.load("claims")[:n_claims]
    kb = KnowledgeBase.from_any(probes.kb())
    labels = [not c["label"] for c in claims]  # positive = a false claim (a hallucination)
    out: dict[str, Any] = {"probes": probes.source, "claims": {"n": len(claims), "false": sum(labels)}, "questions": {}}

    kb_verdicts = verify_claims(model, tokenizer, claims, kb)
    matched = [(lab, v) for lab, v in zip(labels, kb_verdicts) if v.method == "kb"]
    if matched:
        out["claims"]["kb"] = {**_metrics([m[0] for m in matched], [m[1].score for m in matched],
                                          [m[1].hallucinated for m in matched]),
                               "coverage": len(matched) / len(claims)}
    yes_no = verify_claims(model, tokenizer, claims, None)
    out["claims"]["yes_no"] = _metrics(labels, [v.score for v in yes_no], [v.hallucinated for v in yes_no])
    lik = claim_likelihood(model, tokenizer, claims)
    out["claims"]["likelihood"] = _metrics(labels, [r["score"] for r in lik], [r["flagged"] for r in lik])
    parts = [split_claim(c) for c in claims]
    claimed = [c["object"].split("|")[0] for c in claims]
    # A prompt must not end in a space: BPE attaches it to the next word, so generation would
    # start from an unnatural token.
    sc = self_consistency(model, tokenizer, [p.rstrip() for p, _ in parts], samples=samples, temperature=temperature,
                          max_new_tokens=12, seed=seed, claimed=claimed, stop=[".", "\n"])
    out["claims"]["self_consistency"] = _metrics(labels, [r["score"] for r in sc], [r["score"] > 0.5 for r in sc])

    unknown = probes.load("unanswerable")[:n_questions]
    real = sorted({t["subject"] for t in kb.triples if t["relation"] == "home_town"})
    known = control_questions(unknown, real, seed)
    qs = unknown + known
    q_labels = [True] * len(unknown) + [False] * len(known)  # positive = nobody by that name exists
    res = self_consistency(model, tokenizer, [q["question"] for q in qs], samples=samples, temperature=temperature,
                           max_new_tokens=32, seed=seed + 100_000, prompt_format=prompt_format, stop=["\n"])
    out["questions"] = {
        "n_unknown": len(unknown), "n_known": len(known), "prompt_format": prompt_format,
        "self_consistency": _metrics(q_labels, [r["score"] for r in res], [r["score"] > 0.5 for r in res]),
        # An answer about someone who does not exist that is not an abstention is a fabrication.
        "fabrication_rate": sum(1 - r["abstained"] for r in res[:len(unknown)]) / max(1, len(unknown)),
        "abstention_rate_known": sum(r["abstained"] for r in res[len(unknown):]) / max(1, len(known)),
        "examples": [{"question": qs[i]["question"], "exists": qs[i]["exists"], "samples": res[i]["samples"][:3],
                      "score": res[i]["score"]} for i in [0, 1, 2, len(unknown), len(unknown) + 1, len(unknown) + 2]
                     if i < len(qs)],
    }
    out["scores"] = {  # for ROC plots
        "claims": {"labels": labels, "yes_no": [v.score for v in yes_no], "likelihood": [r["score"] for r in lik],
                   "self_consistency": [r["score"] for r in sc]},
        "questions": {"labels": q_labels, "self_consistency": [r["score"] for r in res]},
    }
    return out


def roc_curve(labels: Sequence[bool], scores: Sequence[float]) -> tuple[list[float], list[float]]:
    """(false-positive rates, true-positive rates) over every threshold, ties stepped together."""
    pairs = sorted(zip(scores, labels), key=lambda p: -p[0])
    pos = sum(labels)
    neg = len(labels) - pos
    fpr, tpr, tp, fp = [0.0], [0.0], 0, 0
    for i, (s, y) in enumerate(pairs):
        tp += bool(y)
        fp += not y
        if i + 1 == len(pairs) or pairs[i + 1][0] != s:
            fpr.append(fp / max(1, neg))
            tpr.append(tp / max(1, pos))
    return fpr, tpr


def plot_roc(report: Mapping[str, Any], path: str | Path) -> Path:
    """ROC curves of every detector (claims and questions) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, (title, key) in zip(axes, (("true vs false claims", "claims"), ("unknown vs real people", "questions"))):
        data = report["scores"][key]
        for name, scores in data.items():
            if name == "labels":
                continue
            fpr, tpr = roc_curve(data["labels"], scores)
            auc = report[key][name]["auroc"]
            ax.plot(fpr, tpr, label=f"{name} (AUROC {auc:.2f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(title=title, xlabel="false-positive rate", ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="lower right", fontsize=8)
    from llmlab.eval._plot import save_png

    return save_png(fig, path)


DETECTORS = {
    "kb": "compare with the KB fact (upper bound; decides only claims a fact matches)",
    "yes_no": "model's P(No) vs P(Yes) after the verification prompt, no KB",
    "likelihood": "surprise at the claimed value; flagged when not the greedy continuation",
    "self_consistency": "sampled continuations disagree with the claimed value",
}


def detector_rows(report: Mapping[str, Any]) -> list[list[Any]]:
    """One ROW_COLUMNS row per detector of an `evaluate_hallucination` report (terminal and HTML)."""
    rows = []
    for name, about in DETECTORS.items():
        m = report["claims"].get(name)
        if m:
            label = name + (f" (covers {m['coverage']:.0%})" if "coverage" in m else "")
            rows.append(["claims: false vs true", label, m["n"], m["precision"], m["recall"], m["auroc"]])
    m = report["questions"]["self_consistency"]
    rows.append(["questions: unknown vs real people", "self_consistency", m["n"], m["precision"], m["recall"],
                 m["auroc"]])
    return rows


ROW_COLUMNS = ["probe set (positive first)", "detector", "n", "precision", "recall", "AUROC"]
