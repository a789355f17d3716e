"""`SafetyFilter`: named hazard categories, normalised word-boundary matching, a classifier hook.

The lesson's filter lower-cases the text and looks for substrings, which both misses trivial
obfuscation ("k1ll", "k i l l", Cyrillic "кill") and flags harmless text ("skill" contains
"kill", "kill the process", "shoot a photo"). Here:

- text is normalised first (`llmlab.eval.textnorm`: unicode folding, accents, lookalikes,
  leetspeak, separators between letters, repeated letters);
- patterns are whole-word phrases in a small syntax (see `llmlab.eval.safety_taxonomy`) that
  encode intent and target ("kill {person}", "{intent} ~2 steal") rather than topic words, and
  `allow` patterns veto idioms they overlap ("kill time", "bath bomb");
- each category has a Llama Guard-style code and name, and `check()` says which categories
  matched, on which words, by which pattern (`SafetyVerdict`);
- an optional classifier (any callable text -> score, {category: score}, categories, or bool)
  adds a learned judgement; the verdict is unsafe if either says so.

The taxonomy is data: a dict, JSON or YAML file with `lexicons`, `allow` and `categories`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from llmlab.errors import ConfigError, DataError, json_error
from llmlab.eval._generate import GenerateFn, resolve_generate_fn
from llmlab.eval.textnorm import normalize_variants

DEFAULT_REFUSAL = "I cannot generate a safe response to this request."

# ----------------------------------------------------------------------------------------------
# Pattern compiler
# ----------------------------------------------------------------------------------------------

_WORD = " "  # normalised text: words separated by exactly one space, padded at both ends


class _Parser:
    """Recursive-descent parser for the pattern syntax; emits a regular expression."""

    def __init__(self, src: str, lexicons: Mapping[str, Sequence[str]], stack: tuple[str, ...],
                 cache: dict[str, str] | None = None):
        self.src, self.pos, self.lexicons, self.stack = src, 0, lexicons, stack
        self.cache = {} if cache is None else cache  # lexicon name -> compiled alternation

    def error(self, msg: str) -> ConfigError:
        return ConfigError(f"bad pattern {self.src!r}: {msg}")

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else ""

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def parse_alternatives(self, closing: str = "") -> str:
        options = [self.parse_sequence(closing)]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.parse_sequence(closing))
        if len(options) > 1 and any(re.fullmatch(o, "") for o in options):
            # "(a|b?)" would make the whole group optional, which is never what was meant.
            raise self.error("an alternative can match nothing; put '?' after the group instead")
        return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"

    def parse_sequence(self, closing: str) -> str:
        parts = []
        while True:
            self.skip_spaces()
            c = self.peek()
            if c == "" or c == "|" or (closing and c == closing):
                break
            parts.append(self.parse_term())
        if not parts:
            raise self.error("empty alternative")
        return "".join(parts)

    def parse_term(self) -> str:
        c = self.peek()
        if c == "(":
            self.pos += 1
            inner = self.parse_alternatives(")")
            if self.peek() != ")":
                raise self.error("missing ')'")
            self.pos += 1
            atom = f"(?:{inner})"
        elif c == "{":
            end = self.src.find("}", self.pos)
            if end < 0:
                raise self.error("missing '}'")
            name = self.src[self.pos + 1:end].strip()
            self.pos = end + 1
            atom = self.lexicon(name)
        elif c == "~":
            m = re.match(r"~(\d+)", self.src[self.pos:])
            if not m:
                raise self.error("'~' must be followed by a number of words")
            self.pos += m.end()
            atom = f"(?:[a-z0-9]+{_WORD}){{0,{int(m.group(1))}}}"
        elif self.src.startswith("...", self.pos):
            self.pos += 3
            atom = f"(?:[a-z0-9]+{_WORD}){{0,3}}"
        else:
            m = re.match(r"[a-z0-9]+\*?", self.src[self.pos:])
            if not m:
                raise self.error(f"unexpected character {c!r} (words are lowercase letters and digits)")
            self.pos += m.end()
            word = m.group(0)
            prefix = word.rstrip("*")
            # Every letter may repeat ("kiiill"); a trailing * allows any word ending; words of
            # three or more letters also take a plural or possessive s ("wife's" -> "wifes").
            atom = "".join(re.escape(ch) + "+" for ch in prefix)
            if word.endswith("*"):
                atom += "[a-z0-9]*"
            elif len(prefix) >= 3:
                atom += "s?"
            atom += _WORD
        if self.peek() == "?":
            self.pos += 1
            atom = f"(?:{atom})?"
        return atom

    def lexicon(self, name: str) -> str:
        if name not in self.lexicons:
            raise self.error(f"unknown lexicon {{{name}}}")
        if name in self.stack:
            raise self.error(f"lexicon {{{name}}} refers to itself")
        if name not in self.cache:
            entries = self.lexicons[name]
            if isinstance(entries, str) or not entries:
                raise ConfigError(f"lexicon {name!r} must be a non-empty list of phrases")
            compiled = [_Parser(str(e).strip().lower(), self.lexicons, self.stack + (name,), self.cache).compile_body()
                        for e in entries]
            self.cache[name] = "(?:" + "|".join(compiled) + ")"
        return self.cache[name]

    def compile_body(self) -> str:
        body = self.parse_alternatives()
        if self.pos != len(self.src):
            raise self.error(f"unexpected {self.src[self.pos]!r}")
        return body


def compile_pattern(pattern: str, lexicons: Mapping[str, Sequence[str]] | None = None,
                    _cache: dict[str, str] | None = None) -> re.Pattern[str]:
    """Compile one pattern (see `llmlab.eval.safety_taxonomy` for the syntax) to a regex that
    runs on `normalize_variants` output."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise ConfigError(f"a pattern must be a non-empty string, got {pattern!r}")
    src = pattern.strip()
    if src.startswith("re:"):
        try:
            return re.compile(src[3:])
        except re.error as exc:
            raise ConfigError(f"bad regular expression {src[3:]!r}: {exc}") from None
    body = _Parser(src.lower(), lexicons or {}, (), _cache).compile_body()
    return re.compile(f"(?<= ){body}")


# ----------------------------------------------------------------------------------------------
# Taxonomy
# ----------------------------------------------------------------------------------------------


@dataclass
class Category:
    key: str
    id: str
    name: str
    description: str
    patterns: list[str]
    allow: list[str] = field(default_factory=list)
    compiled: list[re.Pattern[str]] = field(default_factory=list, repr=False)
    compiled_allow: list[re.Pattern[str]] = field(default_factory=list, repr=False)


def load_taxonomy(source: str | Path | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A taxonomy dict from None (the default), a dict, or a JSON/YAML file path."""
    if source is None:
        from llmlab.eval.safety_taxonomy import default_taxonomy

        return default_taxonomy()
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"taxonomy file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise ConfigError(f"cannot parse taxonomy {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"taxonomy {path} must be a mapping with 'categories'")
    return data


def _build_categories(data: Mapping[str, Any]) -> tuple[list[Category], list[re.Pattern[str]]]:
    cats_raw = data.get("categories")
    if not isinstance(cats_raw, Mapping) or not cats_raw:
        raise ConfigError("a taxonomy needs a non-empty 'categories' mapping")
    lexicons = data.get("lexicons") or {}
    if not isinstance(lexicons, Mapping):
        raise ConfigError("'lexicons' must map names to lists of phrases")
    categories = []
    cache: dict[str, str] = {}  # each lexicon is compiled once per taxonomy
    for key, spec in cats_raw.items():
        if isinstance(spec, (list, tuple)):
            spec = {"patterns": list(spec)}
        if not isinstance(spec, Mapping) or not spec.get("patterns"):
            raise ConfigError(f"category {key!r} needs a non-empty list of patterns")
        patterns = [str(p) for p in spec["patterns"]]
        allow = [str(p) for p in spec.get("allow") or []]
        try:
            compiled = [compile_pattern(p, lexicons, cache) for p in patterns]
            compiled_allow = [compile_pattern(p, lexicons, cache) for p in allow]
        except ConfigError as exc:
            raise ConfigError(f"category {key!r}: {exc}") from None
        categories.append(Category(str(key), str(spec.get("id", key)), str(spec.get("name", key)),
                                   str(spec.get("description", "")), patterns, allow, compiled, compiled_allow))
    global_allow = [compile_pattern(str(p), lexicons, cache) for p in data.get("allow") or []]
    return categories, global_allow


@lru_cache(maxsize=1)
def _default_categories() -> tuple[tuple[Category, ...], list[re.Pattern[str]]]:
    cats, allow = _build_categories(load_taxonomy(None))
    return tuple(cats), allow


# ----------------------------------------------------------------------------------------------
# Verdicts and the filter
# ----------------------------------------------------------------------------------------------


@dataclass
class SafetyMatch:
    category: str  # the category key, e.g. "violent_crimes"
    category_id: str  # e.g. "S1"
    pattern: str  # the pattern as written in the taxonomy ("classifier" for the hook)
    matched: str  # the normalised words that matched
    score: float | None = None  # classifier score, when the hook flagged it


@dataclass
class SafetyVerdict:
    """The outcome of `SafetyFilter.check`: unsafe categories and why."""

    safe: bool
    categories: list[str]
    matches: list[SafetyMatch]
    classifier_score: float | None = None
    normalized: str = ""

    @property
    def reasons(self) -> list[str]:
        return [f"{m.category_id} {m.category}: {m.matched.strip()!r} ~ {m.pattern!r}" for m in self.matches]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = self.reasons
        return out


Classifier = Callable[[str], Any]


class SafetyFilter:
    """Check texts against named hazard categories; generate with retries and a refusal.

    SafetyFilter()                         the default taxonomy (`llmlab.eval.safety_taxonomy`)
    SafetyFilter(["kill", "bomb*"])        the lesson's form: a list of patterns, one category
    SafetyFilter(taxonomy="mine.yaml")     a taxonomy dict or JSON/YAML file
    SafetyFilter(classifier=fn)            plus a classifier: fn(text) returns a probability of
                                           harm, a {category: score} dict, a list of category
                                           names, a bool, or None (no opinion)
    `categories` restricts checking to some category keys.
    """

    def __init__(self, harmful_patterns: Sequence[str] | None = None, *,
                 taxonomy: str | Path | Mapping[str, Any] | None = None, classifier: Classifier | None = None,
                 threshold: float = 0.5, categories: Iterable[str] | None = None,
                 refusal: str = DEFAULT_REFUSAL):
        if harmful_patterns is not None and taxonomy is not None:
            raise ConfigError("give harmful_patterns or taxonomy, not both")
        if harmful_patterns is not None:
            if isinstance(harmful_patterns, str):
                harmful_patterns = [harmful_patterns]
            data: dict[str, Any] = {"categories": {"custom": {"id": "custom", "name": "Custom patterns",
                                                              "patterns": list(harmful_patterns)}}}
        else:
            data = load_taxonomy(taxonomy)
        self.taxonomy = data
        if harmful_patterns is None and taxonomy is None:
            cats, self._global_allow = _default_categories()  # compiled once per process
            self.categories = list(cats)
        else:
            self.categories, self._global_allow = _build_categories(data)
        if categories is not None:
            wanted = set(categories)
            unknown = wanted - {c.key for c in self.categories}
            if unknown:
                raise ConfigError(f"unknown categories: {', '.join(sorted(unknown))}")
            self.categories = [c for c in self.categories if c.key in wanted]
        if classifier is not None and not callable(classifier):
            raise ConfigError("classifier must be callable: text -> score, {category: score}, categories or bool")
        self.classifier = classifier
        self.threshold = float(threshold)
        self.refusal = refusal

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> "SafetyFilter":
        return cls(taxonomy=path, **kwargs)

    # -- checking ---------------------------------------------------------------------------

    def _vetoed(self, variant: str, span: tuple[int, int], category: Category) -> bool:
        for rx in (*category.compiled_allow, *self._global_allow):
            for m in rx.finditer(variant):
                if m.start() < span[1] and span[0] < m.end():
                    return True
        return False

    def _classify(self, text: str) -> tuple[list[SafetyMatch], float | None]:
        if self.classifier is None:
            return [], None
        out = self.classifier(text)
        if out is None:
            return [], None
        if isinstance(out, bool):
            return ([SafetyMatch("classifier", "classifier", "classifier", "", 1.0)] if out else []), float(out)
        if isinstance(out, (int, float)):
            score = float(out)
            hit = [SafetyMatch("classifier", "classifier", "classifier", "", score)] if score >= self.threshold else []
            return hit, score
        if isinstance(out, Mapping):
            scores = {str(k): float(v) for k, v in out.items()}
            hits = [SafetyMatch(k, k, "classifier", "", v) for k, v in scores.items() if v >= self.threshold]
            return hits, max(scores.values(), default=0.0)
        if isinstance(out, Iterable) and not isinstance(out, str):
            names = [str(x) for x in out]
            return [SafetyMatch(n, n, "classifier", "", 1.0) for n in names], (1.0 if names else 0.0)
        raise ConfigError(f"classifier returned {type(out).__name__}; expected a score, dict, list or bool")

    def check(self, text: str) -> SafetyVerdict:
        """Which categories `text` falls in, and why."""
        if not isinstance(text, str):
            raise DataError(f"expected text, got {type(text).__name__}")
        variants = normalize_variants(text)
        matches: list[SafetyMatch] = []
        for cat in self.categories:
            found = None
            for i, pattern in enumerate(cat.compiled):
                for variant in variants:
                    for m in pattern.finditer(variant):
                        if not self._vetoed(variant, m.span(), cat):
                            found = SafetyMatch(cat.key, cat.id, cat.patterns[i], m.group(0))
                            break
                    if found:
                        break
                if found:
                    break
            if found:
                matches.append(found)
        clf_matches, clf_score = self._classify(text)
        matches.extend(clf_matches)
        cats = list(dict.fromkeys(m.category for m in matches))
        return SafetyVerdict(safe=not matches, categories=cats, matches=matches, classifier_score=clf_score,
                             normalized=variants[0].strip())

    def is_safe(self, text: str) -> bool:
        """True when no category matches (the lesson's method)."""
        return self.check(text).safe

    def evaluate(self, texts: Sequence[str], labels: Sequence[bool]) -> dict[str, float]:
        """Precision/recall/F1/accuracy of flagging (positive = harmful) on labelled texts."""
        from llmlab.eval.stats import binary_metrics

        if len(texts) != len(labels):
            raise DataError(f"{len(texts)} texts but {len(labels)} labels")
        return binary_metrics([bool(x) for x in labels], [not self.is_safe(t) for t in texts])

    # -- generation -------------------------------------------------------------------------

    def safe_generate(self, model: Any, tokenizer: Any, prompt: str, max_attempts: int = 3, *,
                      generate_fn: GenerateFn | None = None, check_prompt: bool = False,
                      return_details: bool = False, **gen_kwargs: Any) -> Any:
        """Generate up to `max_attempts` responses and return the first one the filter passes;
        if none passes, return the refusal (the lesson's method).

        Sampling should be stochastic (temperature > 0) for retries to help. With
        check_prompt=True an unsafe prompt is refused without generating (as Llama Guard
        checks the user turn as well as the reply). return_details=True returns a dict with
        the text, whether it refused, and every attempt with its verdict.
        """
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {max_attempts}")
        attempts: list[dict[str, Any]] = []

        def result(text: str, refused: bool, prompt_verdict: SafetyVerdict | None = None) -> Any:
            if not return_details:
                return text
            return {"text": text, "refused": refused, "attempts": attempts,
                    "prompt_verdict": prompt_verdict.to_dict() if prompt_verdict else None}

        if check_prompt:
            verdict = self.check(prompt)
            if not verdict.safe:
                return result(self.refusal, True, verdict)
        gen = resolve_generate_fn(generate_fn)
        for _ in range(max_attempts):
            response = gen(model, tokenizer, prompt, **gen_kwargs)
            verdict = self.check(response)
            attempts.append({"response": response, "verdict": verdict.to_dict()})
            if verdict.safe:
                return result(response, False)
        return result(self.refusal, True)


def load_labelled_set(name_or_path: str | Path = "safety_eval.jsonl") -> list[dict[str, Any]]:
    """Records of a labelled JSONL set: a file path, or the name of a set shipped in
    `llmlab/eval/data/` ("safety_eval.jsonl", "refusal_eval.jsonl")."""
    path = Path(name_or_path)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        from importlib import resources

        res = resources.files("llmlab.eval").joinpath("data", str(name_or_path))
        if not res.is_file():
            raise DataError(f"labelled set not found: {name_or_path}")
        text = res.read_text(encoding="utf-8")
    return read_jsonl_text(text, str(name_or_path))


def read_jsonl_text(text: str, where: str) -> list[dict[str, Any]]:
    records = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(json_error(where, exc, i)) from None
        records.append(rec)
    if not records:
        raise DataError(f"{where} holds no records")
    return records


def read_texts(path: str | Path) -> list[dict[str, Any]]:
    """Texts to check: JSONL (a JSON string, or an object with "text" and optionally a boolean
    "harmful" label, per line) or plain text (one text per line)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {p}")
    raw = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        records = []
        for i, rec in enumerate(read_jsonl_text(raw, str(p)), 1):
            if isinstance(rec, str):
                rec = {"text": rec}
            if not isinstance(rec, dict) or not isinstance(rec.get("text", rec.get("prompt")), str):
                raise DataError(f"{p}: record {i} needs a string 'text'")
            rec.setdefault("text", rec.get("prompt"))
            records.append(rec)
        return records
    records = [{"text": line} for line in raw.splitlines() if line.strip()]
    if not records:
        raise DataError(f"{p} is empty")
    return records
