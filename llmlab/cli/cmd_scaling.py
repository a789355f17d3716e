"""`llmlab scaling ...`: predict loss from scaling laws, compute-optimal sizes, fit your own runs."""

from __future__ import annotations

from typing import Any

import click

from llmlab.cli.common import emit, json_option, print_table
from llmlab.units import human_count as human

LAW_CHOICES = ("kaplan", "chinchilla", "chinchilla-tex", "epoch")


class Count(click.ParamType):
    """A positive count with optional suffix: 125M, 70B, 1.4T, 5.76e23."""

    name = "NUMBER"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        from llmlab.errors import ConfigError
        from llmlab.eval.scaling import parse_count

        try:
            v = parse_count(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)
        if not v > 0 or v == float("inf"):
            self.fail(f"must be a positive number, got {value!r}", param, ctx)
        return v


COUNT = Count()
SHORT = {"kaplan": "Kaplan", "chinchilla": "Chin.", "chinchilla-tex": "Chin.TeX", "epoch": "Epoch"}




@click.group("scaling")
def command() -> None:
    """Scaling laws: Kaplan (2020) and Chinchilla (2022, and Epoch AI's 2024 refit).

    Losses are nats per token on each paper's own data and tokenizer: compare shapes and
    allocations, not absolute numbers across laws.
    """


def _one_limit(n: float | None, d: float | None, laws: tuple[str, ...]) -> dict[str, Any]:
    """Kaplan's L(N) or L(D) (and Chinchilla's matching term): the other resource unlimited."""
    from llmlab.eval import scaling as S

    preds = {law: S.limit_loss(n, d, law) for law in laws}
    return {"params": n, "tokens": d, "limit": "L(N)" if d is None else "L(D)", "predictions": preds,
            "loss": preds[laws[0]]}


def _show_one_limit(r: dict[str, Any]) -> None:
    what = (f"L(N): N={human(r['params'])} params, unlimited data" if r["limit"] == "L(N)"
            else f"L(D): D={human(r['tokens'])} tokens, unlimited model size")
    print_table([[law, loss] for law, loss in r["predictions"].items()], ["law", "loss (nats/token)"], title=what)
    # Kaplan's separate fits have their own constants, so L(N) need not lie below the joint law's L(N, D).
    click.echo("note: kaplan's row is the separate fit (eq. 1.1 or 1.2, the lesson's constants) with the other "
               "resource unlimited, so it can lie above the joint L(N, D); give both --params and --tokens for "
               "the joint prediction", err=True)


@command.command("predict")
@click.option("--params", "n", type=COUNT, help="Model parameters N (e.g. 125M, 70B).")
@click.option("--tokens", "d", type=COUNT, help="Training tokens D (e.g. 300B, 1.4T).")
@click.option("--flops", "c", type=COUNT,
              help="Training FLOPs C; with only one of --params/--tokens the other is C/(6x). With both, "
                   "a mismatch with 6ND is reported.")
@click.option("--law", "laws", type=click.Choice(LAW_CHOICES), multiple=True,
              help="Law(s) to use (repeatable); default: all. kaplan = Kaplan eq. 1.5 (joint fit).")
@click.option("--lesson-models", is_flag=True,
              help="Predict for the lesson's GPT-3 list (125M..175B params, 300B tokens), with the lesson's "
                   "min-of-two-terms value beside the joint law. Models are named as the lesson names them "
                   "(its 1.3B 'GPT-3 Medium' is the paper's GPT-3 XL); the preset column gives the paper's "
                   "names, as `llmlab presets` uses them.")
@json_option
def predict(n: float | None, d: float | None, c: float | None, laws: tuple[str, ...], lesson_models: bool,
            as_json: bool) -> None:
    """Predicted loss for N parameters trained on D tokens.

    With only --params: Kaplan's L(N) (eq. 1.1, unlimited data); with only --tokens: L(D)
    (eq. 1.2, unlimited model); Chinchilla laws drop their other term likewise.
    """
    import warnings

    from llmlab.errors import ConfigError
    from llmlab.eval import scaling as S

    laws = laws or LAW_CHOICES
    if lesson_models:
        rows = []
        for name, params, tokens in S.LESSON_MODELS:
            preds = {law: S.predict_loss(params, tokens, law) for law in laws}
            rows.append({"model": name, "preset": S.LESSON_MODEL_PRESETS[name], "params": params, "tokens": tokens,
                         "predictions": preds, "lesson_min": S.lesson_scaling_law(params, tokens)})
        result: dict[str, Any] = {"models": rows}

        def show(r: dict[str, Any]) -> None:
            print_table([[m["model"], m["preset"], human(m["params"]), human(m["tokens"]),
                          *m["predictions"].values(), m["lesson_min"]] for m in r["models"]],
                        ["model (lesson's name)", "preset (GPT-3 paper's)", "N", "D", *(SHORT[law] for law in laws),
                         "lesson"],
                        title="predicted loss (nats/token); lesson = its min(L(N), L(D))")

        emit(result, as_json, show)
        return
    if n is None and d is None:
        raise ConfigError("give --params and/or --tokens (one of them with --flops fixes the other), "
                          "or --lesson-models")
    if c is None and (n is None or d is None):
        emit(_one_limit(n, d, laws), as_json, _show_one_limit)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = S.compute_scaling_law(n, d, c, law=laws[0])
    if n is None:
        n = c / (6 * d)  # type: ignore[operator]
    if d is None:
        d = c / (6 * n)  # type: ignore[operator]
    preds = {law: (first if i == 0 else S.predict_loss(n, d, law)) for i, law in enumerate(laws)}
    result = {"params": n, "tokens": d, "flops": 6 * n * d, "predictions": preds, "loss": preds[laws[0]],
              "warnings": [str(w.message) for w in caught]}

    def show(r: dict[str, Any]) -> None:
        print_table([[law, loss] for law, loss in r["predictions"].items()], ["law", "loss (nats/token)"],
                    title=f"N={human(r['params'])} params, D={human(r['tokens'])} tokens, C=6ND={r['flops']:.3g} FLOPs")
        for w in r["warnings"]:
            click.echo(f"note: {w}", err=True)

    emit(result, as_json, show)


@command.command("optimal")
@click.option("--flops", "c", type=COUNT, required=True, help="Training compute budget C in FLOPs (e.g. 5.76e23).")
@click.option("--law", "laws", type=click.Choice(LAW_CHOICES[1:]), multiple=True,
              help="Chinchilla constant set(s) (repeatable); default: all three.")
@json_option
def optimal(c: float, laws: tuple[str, ...], as_json: bool) -> None:
    """Compute-optimal parameters and tokens for a FLOP budget (C = 6ND, closed form).

    At Gopher's budget (5.76e23) Epoch AI's refit gives ~70B params / ~1.4T tokens (Chinchilla
    itself); the paper's printed constants give ~32B and its unrounded ones ~40B.
    """
    from llmlab.eval import scaling as S

    laws = laws or LAW_CHOICES[1:]
    result = {"flops": c, "laws": {law: S.compute_optimal(c, law) for law in laws}}

    def show(r: dict[str, Any]) -> None:
        print_table([[law, human(o["params"]), human(o["tokens"]), o["tokens_per_param"], o["loss"], o["a"], o["b"]]
                     for law, o in r["laws"].items()],
                    ["law", "N*", "D*", "D*/N*", "loss", "a", "b"],
                    title=f"compute-optimal N*, D* for C={r['flops']:.3g} FLOPs (N* ∝ C^a, D* ∝ C^b)")

    emit(result, as_json, show)


@command.command("fit")
@click.option("--runs", "runs_path", required=True, type=click.Path(dir_okay=False),
              help="CSV (header row) or JSONL of runs with columns N (or params), D (or tokens) and loss.")
@click.option("--form", type=click.Choice(["chinchilla", "kaplan"]), default="chinchilla", show_default=True,
              help="chinchilla: E + A/N^alpha + B/D^beta; kaplan: [(Nc/N)^(aN/aD) + Dc/D]^aD.")
@click.option("--delta", type=float, default=1e-3, show_default=True,
              help="Huber loss threshold on log-loss residuals.")
@click.option("--budget", type=COUNT, default=None,
              help="Also report the fitted law's compute-optimal N and D for this FLOP budget.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default="scaling_fit.png", show_default=True,
              help="Where to write the PNG of the fit.")
@click.option("--no-plot", is_flag=True, help="Do not write a PNG.")
@json_option
def fit(runs_path: str, form: str, delta: float, budget: float | None, plot_path: str, no_plot: bool,
        as_json: bool) -> None:
    """Fit a scaling law to your own (N, D, loss) runs (Huber loss on log-loss, L-BFGS from a grid)."""
    from llmlab.eval import scaling as S

    N, D, L = S.load_runs(runs_path)
    res = S.fit_scaling_law(N, D, L, form=form, delta=delta)
    out = res.to_dict()
    if budget is not None:
        if form != "chinchilla":
            from llmlab.errors import ConfigError

            raise ConfigError("--budget needs --form chinchilla (Kaplan's joint law has no finite optimum)")
        n_opt, d_opt = res.law.compute_optimal(budget)  # type: ignore[union-attr]
        out["optimal"] = {"flops": budget, "params": n_opt, "tokens": d_opt, "loss": res.law.loss(n_opt, d_opt)}  # type: ignore[union-attr]
    if not no_plot:
        out["plot"] = str(S.plot_fit(res, N, D, L, plot_path))

    def show(r: dict[str, Any]) -> None:
        rows = [[k, v] for k, v in r["params"].items()]
        if "a" in r:
            rows += [["a (N* ∝ C^a)", r["a"]], ["b (D* ∝ C^b)", r["b"]]]
        rows += [["RMSE of log-loss", r["rmse_log"]], ["runs", r["n_points"]]]
        print_table(rows, ["parameter", "value"], title=f"{r['form']} fit of {runs_path}")
        if "optimal" in r:
            o = r["optimal"]
            click.echo(f"compute-optimal at C={o['flops']:.3g}: N*={o['params']:.3g}, D*={o['tokens']:.3g}, "
                       f"loss {o['loss']:.4f}")
        if "plot" in r:
            click.echo(f"plot: {r['plot']}")

    emit(out, as_json, show)
