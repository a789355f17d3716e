"""Evaluation and responsible-AI tools (see docs/evaluation.md).

Names are imported lazily on first use, so `import llmlab.eval` stays cheap (no torch,
sacrebleu or matplotlib until a tool is used).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY_EXPORTS = {
    # perplexity and tasks
    "calculate_perplexity": "llmlab.eval.perplexity",
    "perplexity_of_files": "llmlab.eval.perplexity",
    "evaluate_task": "llmlab.eval.tasks",
    "load_task_file": "llmlab.eval.tasks",
    "tinyworld_task": "llmlab.eval.tasks",
    "run_tasks": "llmlab.eval.tasks",
    # hallucination
    "detect_hallucination": "llmlab.eval.hallucination",
    "KnowledgeBase": "llmlab.eval.hallucination",
    "claim_likelihood": "llmlab.eval.hallucination",
    "self_consistency": "llmlab.eval.hallucination",
    "evaluate_hallucination": "llmlab.eval.hallucination",
    # the HTML report
    "build_report": "llmlab.eval.report",
    # scaling laws
    "compute_scaling_law": "llmlab.eval.scaling",
    "compute_optimal": "llmlab.eval.scaling",
    "fit_scaling_law": "llmlab.eval.scaling",
    "kaplan_loss": "llmlab.eval.scaling",
    "chinchilla_loss": "llmlab.eval.scaling",
    # generation metrics
    "evaluate_generation": "llmlab.eval.bleu",
    "corpus_bleu": "llmlab.eval.bleu",
    "sentence_bleu": "llmlab.eval.bleu",
    "corpus_chrf": "llmlab.eval.bleu",
    "rouge_l": "llmlab.eval.bleu",
    # safety and red-teaming
    "SafetyFilter": "llmlab.eval.safety",
    "SafetyVerdict": "llmlab.eval.safety",
    "is_refusal": "llmlab.eval.redteam",
    "score_red_team": "llmlab.eval.redteam",
    "run_red_team": "llmlab.eval.redteam",
    "red_team_model": "llmlab.eval.redteam",
    # bias
    "bias_evaluation": "llmlab.eval.bias",
    "analyze_sentiment": "llmlab.eval.bias",
    "likelihood_bias_probe": "llmlab.eval.bias",
    "tinyworld_pairs": "llmlab.eval.bias_probe",
    "run_bias": "llmlab.eval.bias_run",
    "compare_groups": "llmlab.eval.stats",
}


def __getattr__(name: str) -> Any:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmlab.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
