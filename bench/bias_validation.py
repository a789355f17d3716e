"""Validate the bias evaluation end to end: a model trained on tinyworld with a planted bias is
flagged, and one trained on the same world without it is not.

For each bias in --biases (default 0.5 and 0): generate a tinyworld corpus with that bias (stories
about the `Quorran` heroes end sadly more often and carry negative words), train a tokenizer and a
model exactly as `llmlab quickstart` does, then run `llmlab eval bias` on tinyworld's templates
(sentiment of sampled continuations per group, permutation test) and the likelihood probe (the
log-odds of Quorran over another group at the group slot of the planted sentence's negative frame
vs a neutral frame from the same story, tested one-sided with a sign-flip test over story openings;
for comparison also an older construction: the negative rest of the sentence after a group is
named, with a binomial test over pairs). The verdict adjusts its three one-sided tests together
(Holm-Bonferroni) and names its direction; an effect the other way is reported, not flagged.

    .venv/bin/python bench/bias_validation.py --out runs/bias_validation          # ~20 min on 2 CPU cores
    .venv/bin/python bench/bias_validation.py --out runs/bv --tokens 1M --steps 300   # a quicker, weaker run
    OMP_NUM_THREADS=1 .venv/bin/python bench/bias_validation.py --out runs/bv20 --steps 20 --threads 1
                                                                  # barely trained: nothing to flag

Everything is seeded; re-running skips finished stages. Results: OUT/results.json and
OUT/bias{B}/bias_groups.png; the summary table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def train(out: Path, bias: float, tokens: str, steps: int, preset: str, seed: int, threads: int | None,
          precision: str = "auto") -> Path:
    from llmlab.data.prepare import prepare_dataset
    from llmlab.data.tinyworld import generate_dataset
    from llmlab.train.config import TrainConfig
    from llmlab.train.pretrain import run_pretraining

    world, data, run = out / "tinyworld", out / "data", out / "run"
    if not (world / "manifest.json").is_file():
        generate_dataset(world, tokens=tokens, seed=seed, bias=bias, progress=False)
    if not (data / "manifest.json").is_file():
        prepare_dataset([str(world)], data, train_tokenizer=True, vocab_size=2048, progress=False)
    cfg = TrainConfig(data=str(data), out=str(run), preset=preset, seq_len=128, batch_size=16, max_steps=steps,
                      lr=4e-3, warmup_steps=30, eval_every=steps, save_every=steps, samples=0, seed=seed,
                      threads=threads, precision=precision, progress=False)
    return Path(run_pretraining(cfg, resume="auto", log=lambda s: None)["checkpoint"])


def evaluate(ckpt: Path, world_dir: Path, samples: int, seed: int) -> dict:
    import llmlab
    from llmlab.eval.bias_run import load_templates, plot_groups, run_bias, summary
    from llmlab.eval.tinyworld_probes import TinyworldProbes

    probes = TinyworldProbes(world_dir)
    rows, groups, bias_group = load_templates(None, probes)
    model, tokenizer = llmlab.load(ckpt, require_tokenizer=True)
    report, probe = run_bias(model, tokenizer, rows, groups, bias_group=bias_group, samples=samples,
                             temperature=0.8, max_new_tokens=48, prompt_format="auto", seed=seed, probes=probes)
    out = summary(report, probe)
    verdict = out["verdict"]
    # For comparison, the construction that tells the model the group and scores the negative rest
    # alone, log p(negative rest | context), with the binomial over pairs (binomial_p_value).
    from llmlab.eval.bias import likelihood_bias_probe, model_score_fn
    from llmlab.eval.bias_probe import tinyworld_pairs

    room = model.config.context_length
    plain = [p for p in tinyworld_pairs(probes, bias_group, groups, construction="rest")
             if all(len(tokenizer.encode(x)) < room for side in (p["stereo"], p["anti"]) for x in side[1:])]
    if plain:
        old = likelihood_bias_probe(plain, model_score_fn(model, tokenizer))
        out["likelihood_probe_single_difference"] = {k: v for k, v in old.items() if k != "pairs"}
    out["plot"] = str(plot_groups(report, ckpt.parent.parent / "bias_groups.png", title=str(ckpt), verdict=verdict))
    out["command"] = f"llmlab eval bias --model {ckpt} --samples {samples} --seed {seed}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/bias_validation", help="working folder")
    ap.add_argument("--biases", default="0.5,0", help="comma-separated bias values to train with")
    ap.add_argument("--tokens", default="3M", help="tinyworld corpus size per model")
    ap.add_argument("--steps", type=int, default=600, help="training steps per model")
    ap.add_argument("--preset", default="tiny", help="model preset")
    ap.add_argument("--samples", type=int, default=10, help="continuations per filled template")
    ap.add_argument("--seed", type=int, default=0, help="seed of the world, the training and the sampling")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (default: all cores)")
    ap.add_argument("--precision", default="auto",
                    help="training precision (auto is bf16 autocast on CPUs with AMX, else fp32)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.out)
    results = {}
    for b in [float(x) for x in args.biases.split(",")]:
        t0 = time.perf_counter()
        out = root / f"bias{b:g}"
        ckpt = train(out, b, args.tokens, args.steps, args.preset, args.seed, args.threads, args.precision)
        t1 = time.perf_counter()
        results[f"{b:g}"] = {**evaluate(ckpt, out / "tinyworld", args.samples, args.seed),
                             "train_s": round(t1 - t0, 1), "eval_s": round(time.perf_counter() - t1, 1)}
        print(f"bias={b:g}: trained in {t1 - t0:.0f} s, evaluated in {time.perf_counter() - t1:.0f} s", flush=True)
    (root / "results.json").write_text(json.dumps(results, indent=2))

    print_tables(results)


def print_tables(results: dict) -> None:
    """Markdown tables: sentiment per scorer, then the probe and the verdict, per trained bias."""
    print("\n| trained with bias | scorer | Quorran mean | other groups' means | largest gap (95% CI) | two-sided p "
          "| others - Quorran | one-sided p | Holm p | flagged |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for b, r in results.items():
        tests = {t["name"]: t for t in r["verdict"]["details"]}
        for scorer, c in r["comparisons"].items():
            means = {g["name"]: g["mean"] for g in c["groups"]}
            others = ", ".join(f"{k} {v:.3f}" for k, v in means.items() if k != "Quorran")
            lo, hi = c["gap_ci"]
            gap = f"{c['largest_gap']:.3f} ({c['gap_pair'][0]} - {c['gap_pair'][1]}) [{lo:.3f}, {hi:.3f}]"
            t = tests[f"sentiment ({scorer})"]
            print(f"| {b} | {scorer} | {means.get('Quorran', float('nan')):.3f} | {others} | {gap} | "
                  f"{c['p_value']:.4f} | {t['effect']:+.3f} | {t['p_value']:.4f} | {t['p_adjusted']:.4f} | "
                  f"{'yes' if t['flagged'] else 'no'} |")
    print("\n| trained with bias | slot probe: % of openings where the negative frame favours Quorran more than a "
          "neutral frame (95% CI) | mean (nats) | direction | one-sided p | two-sided p | Holm p | p (binomial over "
          "pairs) | group told, negative rest alone: % (binomial p; cluster p) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for b, r in results.items():
        p, old = r.get("likelihood_probe"), r.get("likelihood_probe_single_difference")
        t = next((t for t in r["verdict"]["details"] if t["name"] == "likelihood probe"), None)
        probe = (f"{p['pct_stereotype']:.1f}% of {p['n_pairs']} [{p['ci'][0]:.1f}, {p['ci'][1]:.1f}] | "
                 f"{p['mean_logp_diff']:+.2f} | {p['direction']} | {p['p_one_sided']:.2g} | {p['p_value']:.2g} | "
                 f"{t['p_adjusted']:.2g} | {p['binomial_p_value']:.2g}" if p and t else "- | - | - | - | - | - | -")
        before = (f"{old['pct_stereotype']:.1f}% (p = {old['binomial_p_value']:.2g}; {old['p_value']:.2g})"
                  if old else "-")
        print(f"| {b} | {probe} | {before} |")
    print()
    for b, r in results.items():
        print(f"bias {b}: {r['verdict']['statement']}")


if __name__ == "__main__":
    main()
