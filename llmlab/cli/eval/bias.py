"""`llmlab eval bias`: sentiment of a model's continuations per group, and a likelihood probe."""

from __future__ import annotations

from typing import Any

import click

from llmlab.cli.common import (OutputPath, emit, json_option, load_checkpoint, model_option, print_table, quantize_option,
                               threads_option)
from llmlab.cli.eval import device_option
from llmlab.eval.bias_probe import PROBE_MARGIN, PROBE_MIN_EFFECT


@click.command("bias")
@model_option
@click.option("--templates", "templates_path", type=click.Path(dir_okay=False), default=None,
              help="Prompt templates with a {group} slot: JSONL ({\"template\", \"kind\"?, \"groups\"?}) or one per "
                   "line. Default: tinyworld's probes/bias_templates.jsonl.")
@click.option("--groups", default=None, metavar="A,B,...",
              help="Groups to compare, comma-separated (default: the templates' own, e.g. tinyworld's three peoples).")
@click.option("--pairs", "pairs_path", type=click.Path(dir_okay=False), default=None,
              help="Minimal pairs for the likelihood probe: JSONL with stereo/anti (or CrowS-Pairs' sent_more/"
                   "sent_less), and an optional \"cluster\" id grouping pairs that are not independent (tested per "
                   "cluster). Default on tinyworld: the log-odds of the disfavoured group over another at the group "
                   "slot of the planted sentence's negative frame vs a neutral frame, one pair per story opening.")
@click.option("--min-effect", type=float, default=PROBE_MIN_EFFECT, show_default=True,
              help="Likelihood probe: a pair whose sides differ by at most this many nats counts as a tie.")
@click.option("--margin", type=float, default=None,
              help=f"Likelihood probe: the mean stereotype preference (nats per pair) that counts as bias; the "
                   f"claim must beat both 50% and this margin. Default {PROBE_MARGIN:g} for the tinyworld "
                   "construction (above the run-to-run whims of unbiased models), 0 for --pairs.")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              help="Family-wise significance level of the verdict (over all its tests together).")
@click.option("--correction", type=click.Choice(["holm", "bonferroni"]), default="holm", show_default=True,
              help="Multiple-comparison correction over the verdict's tests (sentiment per scorer, likelihood probe).")
@click.option("--samples", type=int, default=5, show_default=True, help="Continuations sampled per filled template.")
@click.option("--temperature", type=float, default=0.8, show_default=True, help="Sampling temperature.")
@click.option("--max-new-tokens", type=int, default=48, show_default=True, help="Length of each continuation.")
@click.option("--prompt-format", type=click.Choice(["auto", "none", "chat"]), default="auto", show_default=True,
              help="auto: question templates as a 'User: ... Assistant:' turn, others as they are; none: every "
                   "template as it is; chat: every template through the tokenizer's chat template.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="The tinyworld dataset folder (default: found next to the checkpoint or from its train_config.json, else rebuilt in memory).")
@click.option("--world-seed", type=int, default=0, show_default=True, help="Seed of the tinyworld to rebuild.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling and resampling seed.")
@click.option("--plot", "plot_path", type=OutputPath("file"), default=None,
              help="Write per-group means with confidence intervals to this PNG.")
@click.option("--records", "records_path", type=OutputPath("file"), default=None,
              help="Write every continuation with its scores as JSON lines.")
@device_option
@quantize_option
@threads_option
@json_option
def command(model_dir: str, templates_path: str | None, groups: str | None, pairs_path: str | None, min_effect: float,
            margin: float | None, alpha: float, correction: str, samples: int, temperature: float, max_new_tokens: int, prompt_format: str,
            data_dir: str | None, world_seed: int, seed: int, plot_path: str | None, records_path: str | None,
            device: str, threads: int | None, as_json: bool) -> None:
    """Do a model's continuations about different groups differ in sentiment?

    Fills every template with every group, samples continuations, scores them with VADER (and
    TextBlob), and reports per-group means with bootstrap CIs, the largest gap and a permutation
    p-value; plus a likelihood probe on minimal pairs (CrowS-Pairs style). The verdict tests each
    one-sided in the stereotype's direction (against tinyworld's disfavoured group), corrects for
    the number of tests (Holm-Bonferroni) and names its direction and effect sizes; an effect the
    other way is reported as such, not flagged.
    """
    import json

    from llmlab.errors import ConfigError
    from llmlab.eval.bias_probe import probe_sentence
    from llmlab.eval.bias_run import (GAP_COLUMNS, GROUP_COLUMNS, gap_rows, group_rows, load_templates, plot_groups,
                                      run_bias, summary, verdict_columns, verdict_rows)
    from llmlab.eval.tinyworld_probes import TinyworldProbes, find_tinyworld_dir, read_jsonl

    if samples < 1 or max_new_tokens < 1:
        raise ConfigError("--samples and --max-new-tokens must be at least 1")
    if samples > 1 and temperature <= 0:
        raise ConfigError("--samples > 1 needs --temperature > 0 (greedy samples would all be the same)")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1, got {alpha}")
    probes = TinyworldProbes(data_dir or find_tinyworld_dir(model_dir), seed=world_seed)
    rows, file_groups, bias_group = load_templates(templates_path, probes)
    group_list = [g.strip() for g in groups.split(",") if g.strip()] if groups else file_groups
    if not group_list:
        raise ConfigError("no groups: pass --groups A,B (the templates file names none)")
    pairs = read_jsonl(pairs_path) if pairs_path else None
    model, tokenizer = load_checkpoint(model_dir, device, threads=threads)
    report, probe = run_bias(model, tokenizer, rows, group_list, bias_group=bias_group, samples=samples,
                             temperature=temperature, max_new_tokens=max_new_tokens, prompt_format=prompt_format,
                             seed=seed, pairs=pairs, probes=probes, min_effect=min_effect, margin=margin)
    out = {"model": model_dir, "templates": templates_path or probes.source,
           **summary(report, probe, alpha=alpha, correction=correction)}
    if plot_path:
        out["plot"] = str(plot_groups(report, plot_path, title=f"sentiment by group: {model_dir}",
                                      verdict=out["verdict"]))
    if records_path:
        with open(records_path, "w", encoding="utf-8") as fh:
            for r in report.records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")

    def show(o: dict[str, Any]) -> None:
        print_table(group_rows(report), GROUP_COLUMNS,
                    title=f"sentiment of continuations by group: {model_dir}")
        print_table(gap_rows(report), GAP_COLUMNS)
        if probe is not None:
            click.echo(probe_sentence(probe, probe.get("stereotyped"), probe.get("construction") == "slot"))
        v = o["verdict"]
        print_table(verdict_rows(v), verdict_columns(v), title="verdict")
        click.echo(f"verdict: {v['statement']}")
        if "plot" in o:
            click.echo(f"plot: {o['plot']}")

    emit(out, as_json, show)
