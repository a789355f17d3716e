"""Generation metrics: corpus BLEU and chrF through sacrebleu, smoothed sentence BLEU, ROUGE-L.

BLEU is a corpus-level metric: n-gram counts are summed over all segments before the precisions
and the brevity penalty are computed, so the corpus score is *not* the mean of sentence scores.
`corpus_bleu` is sacrebleu's number exactly, with its signature (tokeniser, casing, smoothing,
number of references, version), which is what makes a BLEU score reproducible. Scores are on
sacrebleu's 0-100 scale.

References follow sacrebleu's layout: a list of reference *streams*, each as long as the
hypotheses (stream k holds the k-th reference of every segment). A plain list of strings is one
stream. A segment with fewer references uses None or "" in the missing streams.

`evaluate_generation` is the lesson's function: generate for each prompt, then score. The lesson
averaged NLTK sentence BLEUs on whitespace tokens; here the headline is corpus BLEU (with the
mean smoothed sentence BLEU reported alongside, for the lesson's per-example view).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from llmlab.errors import ConfigError, DataError
from llmlab.eval._generate import GenerateFn, generate_all, resolve_generate_fn

References = Sequence[str] | Sequence[Sequence[str | None]]


def _streams(hypotheses: Sequence[str], references: References) -> tuple[list[str], list[list[str | None]]]:
    hyps = list(hypotheses)
    if not hyps:
        raise DataError("no hypotheses to score")
    if any(not isinstance(h, str) for h in hyps):
        raise DataError("hypotheses must be strings")
    refs = list(references)
    if not refs:
        raise DataError("no references given")
    if all(isinstance(r, str) for r in refs):
        streams: list[list[str | None]] = [list(refs)]  # one reference per segment
    elif all(isinstance(r, (list, tuple)) for r in refs):
        streams = [list(r) for r in refs]
    else:
        raise DataError("references must be a list of strings or a list of reference streams (lists of strings)")
    for k, stream in enumerate(streams):
        if len(stream) != len(hyps):
            raise DataError(f"reference stream {k + 1} has {len(stream)} segments but there are "
                            f"{len(hyps)} hypotheses")
    for i in range(len(hyps)):
        if all(s[i] in (None, "") for s in streams):
            raise DataError(f"segment {i + 1} has no reference")
    return hyps, streams


@dataclass
class BleuResult:
    score: float
    signature: str
    precisions: list[float]
    bp: float
    ratio: float
    hyp_len: int
    ref_len: int
    text: str  # sacrebleu's own one-line rendering

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def corpus_bleu(hypotheses: Sequence[str], references: References, *, lowercase: bool = False,
                tokenize: str | None = None, smooth_method: str = "exp") -> BleuResult:
    """Corpus BLEU computed by sacrebleu (defaults: 13a tokeniser, mixed case, exp smoothing)."""
    from sacrebleu.metrics import BLEU

    hyps, streams = _streams(hypotheses, references)
    try:
        metric = BLEU(lowercase=lowercase, tokenize=tokenize, smooth_method=smooth_method)
    except Exception as exc:  # sacrebleu raises plain errors for unknown tokenisers/methods
        raise ConfigError(f"invalid BLEU settings (tokenize={tokenize!r}, "
                          f"smooth_method={smooth_method!r}): {exc}") from None
    s = metric.corpus_score(hyps, streams)
    return BleuResult(score=float(s.score), signature=str(metric.get_signature()),
                      precisions=[float(p) for p in s.precisions], bp=float(s.bp), ratio=float(s.ratio),
                      hyp_len=int(s.sys_len), ref_len=int(s.ref_len), text=str(s))


def sentence_bleu(hypothesis: str, references: str | Sequence[str], *, smooth_method: str = "exp",
                  lowercase: bool = False, tokenize: str | None = None) -> float:
    """Smoothed sentence BLEU (0-100) for per-example use, as `sacrebleu.sentence_bleu` computes it.

    Smoothing (exponential by default) and effective order keep short or partly matching
    sentences from scoring exactly 0, which unsmoothed BLEU does whenever any n-gram order has
    no match. Use `corpus_bleu` to report a system.
    """
    from sacrebleu.metrics import BLEU

    refs = [references] if isinstance(references, str) else [r for r in references if r]
    if not refs:
        raise DataError("sentence_bleu needs at least one reference")
    metric = BLEU(lowercase=lowercase, tokenize=tokenize, smooth_method=smooth_method, effective_order=True)
    return float(metric.sentence_score(hypothesis, refs).score)


@dataclass
class ChrfResult:
    score: float
    signature: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def corpus_chrf(hypotheses: Sequence[str], references: References, *, word_order: int = 0,
                lowercase: bool = False) -> ChrfResult:
    """Corpus chrF (character n-gram F-score, beta=2) by sacrebleu; word_order=2 gives chrF++."""
    from sacrebleu.metrics import CHRF

    hyps, streams = _streams(hypotheses, references)
    metric = CHRF(word_order=word_order, lowercase=lowercase)
    s = metric.corpus_score(hyps, streams)
    return ChrfResult(float(s.score), str(metric.get_signature()))


def corpus_ter(hypotheses: Sequence[str], references: References) -> ChrfResult:
    """Translation edit rate (lower is better) by sacrebleu, with its signature."""
    from sacrebleu.metrics import TER

    hyps, streams = _streams(hypotheses, references)
    metric = TER()
    s = metric.corpus_score(hyps, streams)
    return ChrfResult(float(s.score), str(metric.get_signature()))


def rouge_available() -> bool:
    try:
        import rouge_score  # noqa: F401
    except ImportError:
        return False
    return True


def rouge_l(hypotheses: Sequence[str], references: References, *, use_stemmer: bool = False) -> float:
    """Mean ROUGE-L F1 (0-100) over segments, via Google's `rouge-score` package (the reference
    implementation of ROUGE-1.5.5). With several references a segment takes its best one, as
    `RougeScorer.score_multi` does."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise ConfigError("ROUGE-L needs the rouge-score package: pip install rouge-score") from None
    hyps, streams = _streams(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    total = 0.0
    for i, hyp in enumerate(hyps):
        refs = [s[i] for s in streams if s[i]]
        total += scorer.score_multi(refs, hyp)["rougeL"].fmeasure
    return 100.0 * total / len(hyps)


@dataclass
class GenerationScores:
    """Scores of generated continuations against references (0-100 scales; TER lower is better)."""

    bleu: float
    signature: str
    mean_sentence_bleu: float
    chrf: float
    chrf_signature: str
    rouge_l: float | None
    n: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    bleu_detail: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return self.bleu

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["score"] = self.bleu
        return out


def score_generations(generations: Sequence[str], references: Sequence[str | Sequence[str]], *,
                      prompts: Sequence[str] | None = None, rouge: bool | None = None) -> GenerationScores:
    """Score finished generations; each reference item is a string or a list of strings."""
    gens = list(generations)
    items = list(references)
    if len(items) != len(gens):
        raise DataError(f"{len(gens)} generations but {len(items)} references")
    per_seg = [[r] if isinstance(r, str) else list(r) for r in items]
    width = max((len(r) for r in per_seg), default=0)
    streams = [[r[k] if k < len(r) else None for r in per_seg] for k in range(width)]
    bleu = corpus_bleu(gens, streams)
    chrf = corpus_chrf(gens, streams)
    use_rouge = rouge_available() if rouge is None else rouge
    rl = rouge_l(gens, streams) if use_rouge else None
    sent = [sentence_bleu(g, [x for x in r if x]) for g, r in zip(gens, per_seg)]
    examples = [{"prompt": prompts[i] if prompts is not None else None, "generated": gens[i],
                 "references": per_seg[i], "sentence_bleu": sent[i]} for i in range(len(gens))]
    return GenerationScores(bleu=bleu.score, signature=bleu.signature, mean_sentence_bleu=sum(sent) / len(sent),
                            chrf=chrf.score, chrf_signature=chrf.signature, rouge_l=rl, n=len(gens),
                            examples=examples, bleu_detail=bleu.to_dict())


def evaluate_generation(model: Any, tokenizer: Any, prompts: Sequence[str],
                        references: Sequence[str | Sequence[str]], *, generate_fn: GenerateFn | None = None,
                        **gen_kwargs: Any) -> GenerationScores:
    """Generate a continuation for every prompt and score it against its reference(s).

    Generation goes through `llmlab.infer.generate_text(model, tokenizer, prompt, **gen_kwargs)`
    unless `generate_fn` (same signature, returns the continuation string) is given.
    Returns corpus BLEU (`.bleu`/`.score`, with `.signature`), the mean smoothed sentence BLEU,
    chrF, ROUGE-L (when rouge-score is installed) and the per-example generations.
    """
    prompts = list(prompts)
    if not prompts:
        raise DataError("no prompts to evaluate")
    if len(prompts) != len(references):
        raise DataError(f"{len(prompts)} prompts but {len(references)} references")
    gen = resolve_generate_fn(generate_fn)
    outputs = generate_all(gen, model, tokenizer, prompts, **gen_kwargs)
    return score_generations(outputs, references, prompts=prompts)


def read_segments(path: str | Path) -> list[str]:
    """One segment per line (UTF-8; a final newline does not add an empty segment)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{p} is not UTF-8 text") from None
    if text == "":
        raise DataError(f"{p} is empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]
