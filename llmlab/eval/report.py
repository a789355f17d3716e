"""`llmlab eval report`: the standard evaluation on tinyworld, as one self-contained HTML page.

Sections: perplexity, tasks, hallucination, bias, safety and a scaling-law view of the model.
Each section runs the same function with the same settings as the CLI command it prints, so the
command under every table reproduces its numbers. Plots are PNGs embedded as base64; the page
needs no network and no other files.
"""

from __future__ import annotations

import base64
import html
import io
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from llmlab.errors import LLMLabError

SECTIONS = ("perplexity", "tasks", "hallucination", "bias", "safety", "scaling")


@dataclass
class Settings:
    """Sizes of each section's run; `quick()` shrinks them for a smoke test."""

    ppl_docs: int = 200
    task_limit: int = 100
    claims: int = 200
    questions: int = 100
    samples: int = 5
    bias_samples: int = 5
    safety_limit: int | None = None  # every prompt of the suite
    prompt_format: str = "dialogue"  # how questions and requests are put to the model

    @classmethod
    def quick(cls, prompt_format: str = "dialogue") -> "Settings":
        return cls(ppl_docs=20, task_limit=8, claims=16, questions=8, samples=3, bias_samples=2, safety_limit=16,
                   prompt_format=prompt_format)


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    body: list[str] = field(default_factory=list)  # HTML fragments
    commands: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


# ---------------------------------------------------------------------------- HTML pieces
def _cell(value: Any) -> str:
    from llmlab.units import format_cell

    if isinstance(value, float) and value != value:
        return "n/a"
    return html.escape(format_cell(value))


def table(rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def png(path_or_fig: Any, alt: str) -> str:
    """An <img> with the PNG inlined (a file path, or a matplotlib figure)."""
    if isinstance(path_or_fig, (str, Path)):
        data = Path(path_or_fig).read_bytes()
    else:
        buf = io.BytesIO()
        path_or_fig.savefig(buf, format="png", dpi=110)
        data = buf.getvalue()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def para(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


# ---------------------------------------------------------------------------- sections
class Runner:
    """Everything the sections share: the model, the probes, where the data is, the settings."""

    def __init__(self, model_dir: str, data_dir: str | None, settings: Settings, device: str = "cpu",
                 log: Callable[[str], None] = lambda s: None, tmp: Path | None = None):
        from llmlab.checkpoint import load
        from llmlab.eval.tinyworld_probes import TinyworldProbes, find_tinyworld_dir

        self.model_dir = model_dir
        found = data_dir or find_tinyworld_dir(model_dir)
        self.data_dir = str(found) if found else None
        self.probes = TinyworldProbes(self.data_dir)
        self.settings = settings
        self.log = log
        self.model, self.tokenizer = load(model_dir, device, require_tokenizer=True)
        self.tmp = tmp or Path(".")
        # The --data flag every command needs to see the same probes (omitted when found automatically).
        self.data_flag = {"data": data_dir} if data_dir else {}

    def cmd(self, name: str, **options: Any) -> str:
        return command_line(name, model=self.model_dir, **options)


def command_line(name: str, **options: Any) -> str:
    """The shell command that reproduces a result: `llmlab eval NAME --opt value ...`."""
    import shlex

    parts = ["llmlab", "eval", name]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                parts += [flag, shlex.quote(str(v))]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def section_perplexity(r: Runner) -> Section:
    from llmlab.eval.perplexity import calculate_perplexity, read_documents, trained_window

    s = Section("perplexity", "Perplexity", "Strided sliding-window perplexity of held-out text; bits per byte and "
                "word perplexity as lm-evaluation-harness defines them (documents scored one by one, each from "
                "the start token).")
    if r.data_dir and (Path(r.data_dir) / "pretrain" / "val.jsonl").is_file():
        source = str(Path(r.data_dir) / "pretrain" / "val.jsonl")
        docs = read_documents(source, max_documents=r.settings.ppl_docs)
        s.commands.append(r.cmd("perplexity", input=source, max_docs=r.settings.ppl_docs))
    else:
        # No dataset folder: the same validation documents, rebuilt in memory from the world's seed.
        from llmlab.eval.tinyworld_probes import validation_documents

        docs, tokens = validation_documents(r.probes, r.settings.ppl_docs)
        folder = f"tinyworld-seed{r.probes.seed}"
        source = f"{folder}/pretrain/val.jsonl (rebuilt in memory)"
        s.commands.append(f"llmlab data tinyworld --out {folder} --seed {r.probes.seed} --bias {r.probes.bias:g} "
                          f"--tokens {tokens}")
        s.commands.append(r.cmd("perplexity", input=f"{folder}/pretrain/val.jsonl", max_docs=r.settings.ppl_docs))
    # as the command: windows no longer than the training length
    res = calculate_perplexity(r.model, r.tokenizer, docs, window=trained_window(r.model, r.model_dir))
    s.data = {"source": source, **res.to_dict()}
    s.body.append(table([["perplexity (per token)", res.perplexity], ["bits per byte", res.bits_per_byte],
                         ["word perplexity", res.word_perplexity], ["mean NLL (nats/token)", res.nll],
                         ["scored tokens", res.tokens], ["documents", res.documents],
                         ["window / stride", f"{res.window} / {res.stride}"]], ["metric", "value"]))
    s.body.append(para(f"text: {source}"))
    return s


def section_tasks(r: Runner) -> Section:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmlab.eval.tasks import TABLE_COLUMNS, TINYWORLD_TASKS, accuracy_summary, result_rows, run_tasks

    s = Section("tasks", "Task accuracy", "Multiple choice by log-likelihood (acc, and acc_norm: divided by the "
                "choice's characters, as lm-eval) and generation by exact match, on tinyworld's built-in tasks.")
    results = run_tasks(r.model, r.tokenizer, list(TINYWORLD_TASKS), [], None, r.settings.task_limit, r.probes)
    s.body.append(table(result_rows(results), TABLE_COLUMNS))
    fig, ax = plt.subplots(figsize=(8, 3.4))
    names, values, errs, chance = [], [], [[], []], []
    for task, res in results:
        key, v = accuracy_summary(res)
        lo, hi = res.ci[key]
        names.append(f"{task.name.removeprefix('tinyworld_')}\n({key})")
        values.append(v)
        errs[0].append(v - lo)
        errs[1].append(hi - v)
        chance.append(res.chance)
    ax.bar(names, values, yerr=errs, capsize=4, color="#4a78a8", label="model (95% CI)")
    guessable = [(n, c) for n, c in zip(names, chance) if c is not None]  # multiple choice only
    if guessable:
        ax.scatter([n for n, _ in guessable], [c for _, c in guessable], color="#c0392b", marker="_", s=400,
                   label="chance", zorder=3)
    ax.set(ylim=(0, 1), ylabel="accuracy")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    s.body.append(png(fig, "task accuracy"))
    plt.close(fig)
    s.data = {t.name: res.to_dict() for t, res in results}
    s.commands.append(r.cmd("tasks", limit=r.settings.task_limit, **r.data_flag))
    return s


def section_hallucination(r: Runner) -> Section:
    from llmlab.eval.hallucination import ROW_COLUMNS, detector_rows, evaluate_hallucination, plot_roc

    st = r.settings
    s = Section("hallucination", "Hallucination", "Detectors of false claims (positive: the claim is false) and of "
                "questions about people who do not exist (positive: nobody by that name), with precision, recall "
                "and AUROC.")
    rep = evaluate_hallucination(r.model, r.tokenizer, r.probes, n_claims=st.claims, n_questions=st.questions,
                                 samples=st.samples, prompt_format=st.prompt_format)
    s.body.append(table(detector_rows(rep), ROW_COLUMNS))
    q = rep["questions"]
    s.body.append(para(f"Questions about people who do not exist answered without abstaining (fabrication rate): "
                       f"{q['fabrication_rate']:.3f}; abstentions on questions about real people: "
                       f"{q['abstention_rate_known']:.3f}."))
    s.body.append(png(plot_roc(rep, r.tmp / "hallucination_roc.png"), "ROC curves"))
    s.data = {k: v for k, v in rep.items() if k != "scores"}
    s.commands.append(r.cmd("hallucination", claims=st.claims, questions=st.questions, samples=st.samples,
                            prompt_format=st.prompt_format, **r.data_flag))
    return s


# What the bias section measures; kept in step with bias_probe.tinyworld_pairs (the slot probe).
BIAS_INTRO = ("Sentiment (VADER, TextBlob) of sampled continuations of tinyworld's {group} templates, per group, with "
              "bootstrap CIs and a stratified permutation test, one-sided: are continuations about the disfavoured "
              "group more negative than about the others? And a likelihood probe (Kurita et al.'s increased "
              "log-probability, CrowS-Pairs style): at the group slot of the planted-bias sentence's negative frame "
              "and of a neutral frame from the same story opening, the log-odds of the disfavoured group over "
              "another group; a pair prefers the stereotype when the negative frame favours it more than the "
              "neutral frame does (50% of pairs is unbiased), tested one-sided with a sign-flip test over story "
              "openings; the mean preference must also exceed a 2-nat margin, above the run-to-run whims of "
              "unbiased models in a frame they never saw. The verdict adjusts all these tests together (Holm-Bonferroni) and states its direction; "
              "an effect in the anti-stereotype direction is reported as such, never flagged.")


def section_bias(r: Runner) -> Section:
    from llmlab.eval.bias_probe import probe_sentence
    from llmlab.eval.bias_run import (GAP_COLUMNS, GROUP_COLUMNS, gap_rows, group_rows, load_templates, plot_groups,
                                      run_bias, summary, verdict_columns, verdict_rows)

    st = r.settings
    s = Section("bias", "Bias", BIAS_INTRO)
    rows, groups, bias_group = load_templates(None, r.probes)
    report, probe = run_bias(r.model, r.tokenizer, rows, groups or [], bias_group=bias_group, samples=st.bias_samples,
                             temperature=0.8, max_new_tokens=48, prompt_format="auto", seed=0, probes=r.probes)
    s.body.append(table(group_rows(report), GROUP_COLUMNS))
    s.body.append(table(gap_rows(report), GAP_COLUMNS))
    if probe is not None:
        s.body.append(para(probe_sentence(probe, bias_group, probe.get("construction") == "slot")))
    s.data = summary(report, probe)
    v = s.data["verdict"]
    s.body.append(table(verdict_rows(v), verdict_columns(v)))
    s.body.append(para(f"Verdict: {v['statement']}."))
    s.body.append(png(plot_groups(report, r.tmp / "bias_groups.png", verdict=v), "sentiment by group"))
    s.commands.append(r.cmd("bias", samples=st.bias_samples, **r.data_flag))
    return s


def section_safety(r: Runner) -> Section:
    from llmlab.eval.redteam import red_team_model

    st = r.settings
    s = Section("safety", "Safety (red team)", "tinyworld's harmful requests and their harmless look-alikes, "
                "answered greedily; attack success rate (harmful requests not refused) next to over-refusal rate "
                "(harmless requests refused), with the refusal detector's own accuracy.")
    report, out = red_team_model(r.model, r.tokenizer, "tinyworld", r.probes, prompt_format=st.prompt_format,
                                 limit=st.safety_limit)
    s.body.append(table([row[:3] + [f"[{row[3]:.3f}, {row[4]:.3f}]"] for row in report.rows()],
                        ["rate", "prompts", "value", "95% CI"]))
    if report.by_category:
        s.body.append(table([[k, v["n"], v["attack_success_rate"]] for k, v in sorted(report.by_category.items())],
                            ["category", "harmful prompts", "attack success rate"]))
    s.body.append(table([[name, d["n"], d["accuracy"], d["precision"], d["recall"]]
                         for name, d in out["refusal_detector"].items()],
                        ["refusal detector on", "n", "accuracy", "precision", "recall"]))
    ex = out["examples"][:4]
    s.body.append(table([[e["prompt"], "harmful" if e["harmful"] else "harmless", e["response"][:160],
                          "refused" if e["refused"] else "answered"] for e in ex],
                        ["prompt", "kind", "response (start)", "detector"]))
    s.data = out
    s.commands.append(" ".join(["llmlab eval safety", f"--model {r.model_dir}", "--suite tinyworld",
                                f"--prompt-format {st.prompt_format}"]
                               + ([f"--limit {st.safety_limit}"] if st.safety_limit else [])
                               + ([f"--data {r.data_flag['data']}"] if r.data_flag else [])))
    return s


def training_tokens(model_dir: str, _seen: frozenset[Path] = frozenset()) -> float | None:
    """Tokens the checkpoint was trained on: the run's metrics.jsonl (last "tokens"), else its
    train_config.json (steps x batch x sequence length), plus, for a fine-tuned model (SFT, reward,
    DPO, PPO, --init-from), the tokens of the checkpoint it started from, when that still exists."""
    ckpt = Path(model_dir)
    own = None
    for metrics in (ckpt / "metrics.jsonl", ckpt.parent / "metrics.jsonl"):
        if metrics.is_file():
            last = None
            for line in metrics.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("tokens"), (int, float)):
                    last = float(rec["tokens"])
            if last:
                own = last
                break
    c: dict[str, Any] = {}
    for cfg in (ckpt / "train_config.json", ckpt.parent / "train_config.json"):
        if cfg.is_file():
            try:
                c = json.loads(cfg.read_text(encoding="utf-8"))
            except ValueError:
                c = {}
            break
    if not isinstance(c, dict):
        c = {}
    if c:
        from llmlab.train.finetune_config import PPOConfig  # its fields include every command's start paths

        # A start checkpoint saved as a relative path is relative to where that run was started,
        # not to where the report runs.
        c = PPOConfig.resolve_saved_paths(c, ckpt.parent)
    if own is None and c.get("max_steps") and c.get("batch_size") and c.get("seq_len"):
        own = float(c["max_steps"] * c["batch_size"] * c["seq_len"])
    start = next((c[k] for k in ("policy", "model", "init_from") if isinstance(c.get(k), str) and c[k]), None)
    if own is not None and start and Path(start).is_dir():
        seen = _seen | {ckpt.resolve()}
        if Path(start).resolve() not in seen:
            before = training_tokens(start, seen)
            if before:
                own += before
    return own


def section_scaling(r: Runner) -> Section:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from llmlab.eval.scaling import chinchilla_loss, compute_optimal

    s = Section("scaling", "Scaling laws", "Where this model sits on the Chinchilla law (Epoch AI's refit): the "
                "iso-FLOP curve for its training compute C = 6ND and the compute-optimal size for that budget. "
                "The law was fitted to web text, so its loss values do not apply to tinyworld; the shape (is the "
                "model too big or too small for its compute?) does.")
    N = float(r.model.num_parameters())
    D = training_tokens(r.model_dir)
    if D is None:
        s.body.append(para("The number of training tokens is unknown (no metrics.jsonl or train_config.json "
                           "beside the checkpoint), so only the model size is shown."))
        D = 20 * N
    C = 6 * N * D
    opt = compute_optimal(C, "epoch")
    n_grid = np.logspace(np.log10(opt["params"]) - 2, np.log10(opt["params"]) + 2, 200)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(n_grid, chinchilla_loss(n_grid, C / (6 * n_grid), "epoch"), label=f"iso-FLOP curve, C = {C:.2e}")
    ax.scatter([N], [chinchilla_loss(N, D, "epoch")], color="#c0392b", zorder=3, label=f"this model (N = {N:.3g})")
    ax.scatter([opt["params"]], [opt["loss"]], color="#27ae60", marker="*", s=120, zorder=3,
               label=f"compute-optimal N* = {opt['params']:.3g}")
    ax.set(xscale="log", xlabel="parameters N", ylabel="predicted loss (web text, nats/token)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    # Counts are whole numbers, as N and D are: N* = 107275.5590 parameters reads as false precision.
    rows = [["parameters N", int(N)], ["training tokens D", int(D)], ["tokens per parameter", D / N],
            ["training FLOPs C = 6ND", C], ["compute-optimal N* (epoch)", round(opt["params"])],
            ["compute-optimal D* (epoch)", round(opt["tokens"])]]
    s.body.insert(0, table(rows, ["quantity", "value"]))
    s.body.append(png(fig, "iso-FLOP curve"))
    plt.close(fig)
    s.data = {"params": N, "tokens": D, "flops": C, "optimal": opt}
    s.commands.append(f"llmlab scaling optimal --flops {C:.4g}")
    s.commands.append(f"llmlab scaling predict --params {N:.4g} --tokens {D:.4g}")
    return s


BUILDERS: dict[str, Callable[[Runner], Section]] = {
    "perplexity": section_perplexity, "tasks": section_tasks, "hallucination": section_hallucination,
    "bias": section_bias, "safety": section_safety, "scaling": section_scaling,
}
TITLES = {"perplexity": "Perplexity", "tasks": "Task accuracy", "hallucination": "Hallucination", "bias": "Bias",
          "safety": "Safety (red team)", "scaling": "Scaling laws"}


# ---------------------------------------------------------------------------- the page
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #4a78a8;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right;vertical-align:top}th{background:#eef2f7}td:first-child,th:first-child{text-align:left}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto;font-size:.88em}img{max-width:100%;display:block;margin:.6em 0}
.meta{color:#666;font-size:.9em}.error{color:#a00;font-weight:bold}nav a{margin-right:1em}
"""


def render_html(model_dir: str, sections: list[Section], meta: dict[str, Any]) -> str:
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>llmlab evaluation: {html.escape(model_dir)}</title><style>{CSS}</style></head><body>",
             f"<h1>Evaluation report: {html.escape(model_dir)}</h1>",
             "<p class=\"meta\">" + " &middot; ".join(f"{html.escape(str(k))}: {html.escape(str(v))}"
                                                      for k, v in meta.items()) + "</p>",
             "<nav>" + "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections) + "</nav>"]
    for s in sections:
        parts.append(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>')
        if s.intro:
            parts.append(para(s.intro))
        if s.error:
            parts.append(f'<p class="error">This section failed: {html.escape(s.error)}</p>')
        parts += s.body
        if s.commands:
            parts.append("<p>Reproduce:</p><pre><code>" + html.escape("\n".join(s.commands)) + "</code></pre>")
        parts.append(f'<p class="meta">{s.seconds:.1f} s</p></section>')
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(model_dir: str, out: str | Path = "report.html", *, data_dir: str | None = None,
                 settings: Settings | None = None, sections: Sequence[str] = SECTIONS, device: str = "cpu",
                 log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Run the sections and write the page; returns {out, sections: {key: data or error}}."""
    import tempfile

    import torch

    import llmlab

    unknown = [k for k in sections if k not in BUILDERS]
    if unknown:
        raise LLMLabError(f"unknown report section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    settings = settings or Settings()
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(model_dir, data_dir, settings, device, log, Path(tmp))
        done: list[Section] = []
        for key in sections:
            log(f"[{len(done) + 1}/{len(sections)}] {key}")
            t0 = time.perf_counter()
            try:
                section = BUILDERS[key](runner)
            except LLMLabError as exc:  # a section that cannot run says why; the others still report
                section = Section(key, TITLES[key], error=str(exc))
            section.seconds = time.perf_counter() - t0
            done.append(section)
        meta = {"model": model_dir, "parameters": f"{runner.model.num_parameters():,}",
                "probes": runner.probes.source, "llmlab": llmlab.__version__, "torch": torch.__version__,
                "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}
        page = render_html(model_dir, done, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return {"out": str(out), "bytes": len(page.encode()), "probes": runner.probes.source,
            "sections": {s.key: ({"error": s.error} if s.error else {**s.data, "seconds": s.seconds,
                                                                     "commands": s.commands}) for s in done}}
