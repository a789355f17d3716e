"""Decode throughput: llmlab's Engine vs `transformers.generate`, on the same 12M-parameter weights.

Our preset `gpt2-12m` (6 layers, d_model 384, 6 heads, context 256, vocab 4096; random init, seed 0)
is exported to a Hugging Face GPT-2 folder (`llmlab.interop.hf.export_hf` when present, else a
name-by-name state-dict mapping) and loaded there with `from_pretrained`; the bench checks that both
give the same logits before timing anything. Both sides: fp32 (default), the same prompts, the same sampling
settings (default: temperature 0.8, top-k 50; --greedy for argmax), no stopping at end-of-text, the
same thread count (and, with --dtype bfloat16, the same reduced precision on both sides).

Decode tokens/s excludes the prompt: each measurement times N and 1 new tokens, and
rate = batch * (N - 1) / (t_N - t_1). Measurements alternate between the two libraries and we keep
the median of --repeats runs, so drifts in machine load hit both alike. Time to first token is a
200-token prompt's prefill plus the first sampled token, at batch 1.

Batch-1 rows for llmlab's inference options on the same weights: int8 and int4 (llmlab.infer.quantize)
and speculative decoding (llmlab.infer.speculative) with the int8-quantised copy of the same weights
as draft (a smaller trained draft needs a trained target; this random-init model has none). Which
of them count for `speedup_vs_hf_batch1_best` is decided by perplexity on trained weights: the
quickstart model (--ppl-model) on its tinyworld validation text (--ppl-text), within 1% of fp32.
Speculative decoding samples exactly the target's distribution, so its perplexity is fp32's.
`llamacpp_tokens_per_s` is null: llama.cpp (llama-cpp-python) was not installed here when this was
written; bench/llamacpp_throughput.py measures it on the same weights (greedy) where it is.

    python bench/generate_throughput.py            # a table
    python bench/generate_throughput.py --json     # one JSON object (speedup_vs_hf_batch1, batch8_over_batch1, ...)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def hf_state_dict(model) -> dict:
    """Our GPT-2-style names -> Hugging Face GPT2LMHeadModel names (Conv1D weights are transposed)."""
    sd = model.state_dict()
    out = {"transformer.wte.weight": sd["embed.weight"], "transformer.wpe.weight": sd["pos_embed.weight"],
           "transformer.ln_f.weight": sd["final_norm.weight"], "transformer.ln_f.bias": sd["final_norm.bias"]}
    for i in range(model.config.n_layer):
        p, q = f"blocks.{i}.", f"transformer.h.{i}."
        for ours, theirs, conv in (
            ("attn_norm", "ln_1", False), ("mlp_norm", "ln_2", False), ("attn.qkv", "attn.c_attn", True),
            ("attn.out", "attn.c_proj", True), ("mlp.up", "mlp.c_fc", True), ("mlp.down", "mlp.c_proj", True),
        ):
            w = sd[p + ours + ".weight"]
            out[q + theirs + ".weight"] = w.t().contiguous() if conv else w
            out[q + theirs + ".bias"] = sd[p + ours + ".bias"]
    out["lm_head.weight"] = sd["embed.weight"]
    return out


def export_to_hf(model, folder: Path) -> str:
    """Write an HF GPT-2 folder; returns how it was made."""
    try:
        from llmlab.interop.hf import export_hf  # the interop module, once it exists
    except ImportError:
        export_hf = None
    if export_hf is not None:
        from llmlab.checkpoint import save_checkpoint

        ckpt = folder.parent / "llmlab-checkpoint"
        save_checkpoint(ckpt, model)
        export_hf(ckpt, folder)
        return "llmlab.interop.hf.export_hf"
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = model.config
    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.context_length, n_embd=cfg.d_model, n_layer=cfg.n_layer,
        n_head=cfg.n_head, n_inner=cfg.d_ff, activation_function="gelu_new", layer_norm_epsilon=cfg.norm_eps,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True, bos_token_id=None, eos_token_id=None,
    )
    hf = GPT2LMHeadModel(hf_cfg)
    missing, unexpected = hf.load_state_dict(hf_state_dict(model), strict=False)
    missing = [k for k in missing if not k.endswith(".attn.bias") and not k.endswith("masked_bias")]
    if missing or unexpected:
        raise SystemExit(f"state-dict mapping incomplete: missing {missing[:3]}, unexpected {unexpected[:3]}")
    hf.save_pretrained(folder)
    return "state-dict mapping (bench/generate_throughput.py)"


def build(seed: int, dtype: str = "float32", d_model: int | None = None):
    import torch
    from transformers import GPT2LMHeadModel

    from llmlab.config import preset
    from llmlab.model import TransformerLM

    torch.manual_seed(seed)
    # --d-model 16 keeps the layer structure but makes the weights negligible: what is left per
    # token is framework overhead (Python, dispatch, sampling), the part an engine controls.
    overrides = {} if d_model is None else dict(d_model=d_model, n_head=max(1, d_model // 64))
    ours = TransformerLM(preset("gpt2-12m", **overrides)).eval()
    with tempfile.TemporaryDirectory(prefix="llmlab-bench-") as tmp:
        how = export_to_hf(ours, Path(tmp) / "hf")
        hf = GPT2LMHeadModel.from_pretrained(Path(tmp) / "hf").eval()
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    ids = torch.randint(0, ours.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        diff = (ours(ids).logits - hf(ids).logits).abs().max().item()
    if diff > 1e-4:
        raise SystemExit(f"the exported model's logits differ from ours by {diff:.2e}; not the same weights")
    if dtype != "float32":  # both sides in the same reduced precision
        ours, hf = ours.to(getattr(torch, dtype)), hf.to(getattr(torch, dtype))
    return ours, hf, how, diff


CLOCK = time.perf_counter


def timed(fn) -> float:
    t0 = CLOCK()
    fn()
    return CLOCK() - t0


def run(args) -> dict:
    import torch

    from llmlab.infer import Engine

    global CLOCK
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if torch.get_num_threads() != 1:
            raise SystemExit("--clock cpu measures this process's CPU time; use it with --threads 1")
        CLOCK = time.process_time
    ours, hf, how, diff = build(args.seed, args.dtype, args.d_model)
    V = ours.config.vocab_size
    sampling = dict(temperature=0.0) if args.greedy else dict(temperature=args.temperature, top_k=args.top_k)
    hf_sampling = dict(do_sample=False) if args.greedy else dict(do_sample=True, temperature=args.temperature, top_k=args.top_k)
    engine = Engine(ours, None, max_batch_size=max(args.batch_sizes))
    gen = torch.Generator().manual_seed(args.seed)

    def ours_fn(ids, n):
        return lambda: engine.generate([row.tolist() for row in ids], max_new_tokens=n, ignore_eos=True, **sampling)

    def hf_fn(ids, n):
        mask = torch.ones_like(ids)
        # min_new_tokens is not needed: the exported config has no end-of-text token to stop at.
        return lambda: hf.generate(ids, attention_mask=mask, max_new_tokens=n, **hf_sampling)

    import copy

    from llmlab.infer.quantize import quantize_model
    from llmlab.infer.speculative import SpeculativeDecoder

    variants = {mode: Engine(quantize_model(copy.deepcopy(ours), mode), None, max_batch_size=1)
                for mode in ("int8", "int4")}
    spec = SpeculativeDecoder(ours, quantize_model(copy.deepcopy(ours), "int8"), num_draft_tokens=args.draft_tokens)
    spec_stats = []

    def variant_fn(mode):
        def make(ids, n):
            if mode == "speculative":
                def go():
                    _, st = spec.generate(ids[0].tolist(), max_new_tokens=n, ignore_eos=True,
                                          generator=torch.Generator().manual_seed(args.seed), **sampling)
                    if n > 1:
                        spec_stats.append(st)
                return go
            return lambda: variants[mode].generate([row.tolist() for row in ids], max_new_tokens=n, ignore_eos=True,
                                                   **sampling)
        return make

    results = {}
    with torch.inference_mode():
        for B in args.batch_sizes:
            ids = torch.randint(0, V, (B, args.prompt_tokens), generator=gen)
            fns = [("llmlab", ours_fn), ("hf", hf_fn)]
            if B == args.batch_sizes[0]:  # the inference options are batch-1 rows
                fns += [(f"llmlab_{m}", variant_fn(m)) for m in ("int8", "int4", "speculative")]
            times = {(name, n): [] for name, _ in fns for n in (1, args.new_tokens)}
            for _, fn in fns:  # warm-up
                fn(ids, args.new_tokens)()
            for r in range(args.repeats):
                for name, fn in (fns if r % 2 == 0 else fns[::-1]):
                    for n in (args.new_tokens, 1):
                        times[(name, n)].append(timed(fn(ids, n)))
            for name, _ in fns:
                tn, t1 = statistics.median(times[(name, args.new_tokens)]), statistics.median(times[(name, 1)])
                results[(name, B)] = B * (args.new_tokens - 1) / max(tn - t1, 1e-9)

        long_prompt = torch.randint(0, V, (1, args.ttft_prompt_tokens), generator=gen)
        ttft = {"llmlab": [], "hf": []}
        ours_fn(long_prompt, 1)()
        hf_fn(long_prompt, 1)()
        for _ in range(args.repeats):
            ttft["llmlab"].append(timed(ours_fn(long_prompt, 1)))
            ttft["hf"].append(timed(hf_fn(long_prompt, 1)))

    b1, b8 = args.batch_sizes[0], args.batch_sizes[-1]
    ppl = perplexities(args)
    pair = trained_pair(args, sampling, hf_sampling)
    hf1 = results[("hf", b1)]
    options = {"fp32": results[("llmlab", b1)], "int8": results[("llmlab_int8", b1)],
               "int4": results[("llmlab_int4", b1)], "speculative": results[("llmlab_speculative", b1)]}
    change = {"fp32": 0.0, "speculative": 0.0} | {m: ppl[m] / ppl["fp32"] - 1 if ppl else None for m in ("int8", "int4")}
    eligible = {m: r for m, r in options.items() if change[m] is not None and change[m] <= 0.01}
    best = max(eligible, key=eligible.get)
    accepted = sum(s.accepted for s in spec_stats)
    proposed = sum(s.proposed for s in spec_stats)
    extra = {
        "batch1_options_tokens_per_s": {m: round(r, 1) for m, r in options.items()},
        "perplexity_change": change, "perplexity_model": args.ppl_model if ppl else None,
        "speculative_draft": f"int8 copy of the same weights, {args.draft_tokens} tokens per round",
        "speculative_acceptance_rate": accepted / proposed if proposed else None,
        "speculative_tokens_per_target_forward":
            sum(s.tokens for s in spec_stats) / max(1, sum(s.target_forwards for s in spec_stats)),
        "speedup_vs_hf_batch1_int8": options["int8"] / hf1,
        "speedup_vs_hf_batch1_best": options[best] / hf1, "best_batch1_option": best,
        "llamacpp_tokens_per_s": None,
        "speculative_trained_pair": pair,
    }
    return extra | {
        "model": "gpt2-12m (random init)" if args.d_model is None else f"gpt2-12m with d_model={args.d_model}",
        "parameters": sum(p.numel() for p in ours.parameters()),
        "hf_export": how, "max_logit_diff": diff, "threads": torch.get_num_threads(), "clock": args.clock, "dtype": args.dtype,
        "sampling": "greedy" if args.greedy else f"temperature={args.temperature}, top_k={args.top_k}",
        "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
        "decode_tokens_per_s": {f"{name}_batch{B}": round(v, 1) for (name, B), v in results.items()},
        "speedup_vs_hf_batch1": results[("llmlab", b1)] / results[("hf", b1)],
        f"speedup_vs_hf_batch{b8}": results[("llmlab", b8)] / results[("hf", b8)],
        f"batch{b8}_over_batch{b1}": results[("llmlab", b8)] / results[("llmlab", b1)],
        f"hf_batch{b8}_over_batch{b1}": results[("hf", b8)] / results[("hf", b1)],
        "ttft_prompt_tokens": args.ttft_prompt_tokens,
        "ttft_ms_llmlab": 1000 * statistics.median(ttft["llmlab"]),
        "ttft_ms_hf": 1000 * statistics.median(ttft["hf"]),
    }


def trained_pair(args, sampling: dict, hf_sampling: dict) -> dict | None:
    """Speculative decoding where it is meant to work: a trained target (--spec-target, default the
    quickstart model) and a smaller draft trained on the same tinyworld data (--spec-draft), batch 1,
    against the target alone and against transformers on the target's weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmlab.checkpoint import load
    from llmlab.infer import Engine
    from llmlab.infer.speculative import SpeculativeDecoder
    from llmlab.interop.hf import export_hf

    if not (Path(args.spec_target).is_dir() and Path(args.spec_draft).is_dir()):
        return None
    target, tok = load(args.spec_target, "cpu")
    draft, draft_tok = load(args.spec_draft, "cpu")
    engine = Engine(target, tok, max_batch_size=1)
    decoder = SpeculativeDecoder(target, draft, tok, draft_tok, num_draft_tokens=args.draft_tokens)
    with tempfile.TemporaryDirectory(prefix="llmlab-bench-") as tmp:
        export_hf(args.spec_target, Path(tmp) / "hf")
        hf = AutoModelForCausalLM.from_pretrained(Path(tmp) / "hf").eval()
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    prompt = tok.encode("Once upon a time, Mia had a small dog named Rex. One day")
    stats = []

    def ours(n):
        return lambda: engine.generate(prompt, max_new_tokens=n, ignore_eos=True, **sampling)

    def spec(n):
        def go():
            _, st = decoder.generate(prompt, max_new_tokens=n, ignore_eos=True,
                                     generator=torch.Generator().manual_seed(args.seed), **sampling)
            if n > 1:
                stats.append(st)
        return go

    def theirs(n):
        ids = torch.tensor([prompt])
        return lambda: hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, **hf_sampling)

    fns = [("fp32", ours), ("speculative", spec), ("hf", theirs)]
    times = {(name, n): [] for name, _ in fns for n in (1, args.new_tokens)}
    with torch.inference_mode():
        for _, fn in fns:
            fn(args.new_tokens)()
        for r in range(args.repeats):
            for name, fn in (fns if r % 2 == 0 else fns[::-1]):
                for n in (args.new_tokens, 1):
                    times[(name, n)].append(timed(fn(n)))
    rate = {name: (args.new_tokens - 1) / max(statistics.median(times[(name, args.new_tokens)])
                                              - statistics.median(times[(name, 1)]), 1e-9) for name, _ in fns}
    return {
        "target": args.spec_target, "draft": args.spec_draft,
        "target_parameters": target.num_parameters(), "draft_parameters": draft.num_parameters(),
        "tokens_per_s": {k: round(v, 1) for k, v in rate.items()},
        "speculative_over_fp32": rate["speculative"] / rate["fp32"],
        "speedup_vs_hf_batch1_speculative": rate["speculative"] / rate["hf"],
        "acceptance_rate": sum(s.accepted for s in stats) / max(1, sum(s.proposed for s in stats)),
        "tokens_per_target_forward": sum(s.tokens for s in stats) / max(1, sum(s.target_forwards for s in stats)),
    }


def perplexities(args) -> dict | None:
    """Perplexity of the trained --ppl-model on --ppl-text: fp32, int8, int4 (None if either is missing)."""
    from llmlab.checkpoint import load
    from llmlab.eval.perplexity import calculate_perplexity, read_documents

    if not (Path(args.ppl_model).is_dir() and Path(args.ppl_text).is_file()):
        return None
    docs = read_documents([args.ppl_text], field="text", max_documents=args.ppl_docs)
    out = {}
    for mode in ("fp32", "int8", "int4"):
        model, tok = load(args.ppl_model, "cpu", quantize=None if mode == "fp32" else mode)
        out[mode] = calculate_perplexity(model, tok, docs).perplexity
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", type=int, nargs=2, default=[1, 8], metavar=("SMALL", "LARGE"))
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--ttft-prompt-tokens", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=50)
    ap.add_argument("--greedy", action="store_true", help="argmax decoding on both sides")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: this process's CPU time (with --threads 1), steadier on a shared machine")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="weights and activations on both sides (bfloat16 uses AMX/AVX512-BF16 where the CPU has it)")
    ap.add_argument("--d-model", type=int, default=None,
                    help="override the width (e.g. 16: tiny weights, so the rates show per-token overhead)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draft-tokens", type=int, default=4, help="speculative decoding: draft tokens per round")
    ap.add_argument("--ppl-model", default="runs/qs-bias/run/checkpoint", help="trained checkpoint for perplexity")
    ap.add_argument("--ppl-text", default="runs/qs-bias/tinyworld/pretrain/val.jsonl", help="its validation text")
    ap.add_argument("--ppl-docs", type=int, default=150, help="validation documents scored")
    ap.add_argument("--spec-target", default="runs/qs-bias/run/checkpoint", help="trained target for speculation")
    ap.add_argument("--spec-draft", default="runs/spec/draft/checkpoint",
                    help="its smaller draft, trained on the same data with the same tokenizer")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    res = run(args)
    if args.json:
        print(json.dumps(res))
        return 0
    b1, b8 = args.batch_sizes
    rates = res["decode_tokens_per_s"]
    print(f"decode throughput, {res['model']}, {res['parameters'] / 1e6:.1f}M parameters, {res['threads']} thread(s), "
          f"{res['clock']} clock, {res['dtype']}, "
          f"{res['sampling']}, {res['prompt_tokens']}-token prompts, {res['new_tokens']} new tokens")
    print(f"HF model via {res['hf_export']} (max logit difference {res['max_logit_diff']:.1e})\n")
    print(f"{'':<22}{'llmlab':>12}{'transformers':>14}{'ratio':>9}")
    for B in (b1, b8):
        o, h = rates[f"llmlab_batch{B}"], rates[f"hf_batch{B}"]
        print(f"{f'tokens/s, batch {B}':<22}{o:>12.1f}{h:>14.1f}{o / h:>8.2f}x")
    print(f"{f'batch {b8} / batch {b1}':<22}{res[f'batch{b8}_over_batch{b1}']:>11.2f}x{res[f'hf_batch{b8}_over_batch{b1}']:>13.2f}x")
    for m, r in res["batch1_options_tokens_per_s"].items():
        c = res["perplexity_change"][m]
        print(f"{f'batch 1, {m}':<22}{r:>12.1f}{'':>14}{r / rates[f'hf_batch{b1}']:>8.2f}x"
              f"   perplexity {'n/a' if c is None else f'{100 * c:+.2f}%'}")
    print(f"speculative: acceptance {res['speculative_acceptance_rate']:.2f}, "
          f"{res['speculative_tokens_per_target_forward']:.2f} tokens per target forward ({res['speculative_draft']})")
    pair = res["speculative_trained_pair"]
    if pair:
        r = pair["tokens_per_s"]
        print(f"trained pair ({pair['target_parameters'] / 1e6:.2f}M target, {pair['draft_parameters'] / 1e6:.2f}M draft), "
              f"batch 1: fp32 {r['fp32']:.1f}, speculative {r['speculative']:.1f}, transformers {r['hf']:.1f} tokens/s; "
              f"acceptance {pair['acceptance_rate']:.2f}, {pair['tokens_per_target_forward']:.2f} tokens per target forward")
    print(f"best option within 1% perplexity: {res['best_batch1_option']}, "
          f"{res['speedup_vs_hf_batch1_best']:.2f}x transformers at batch 1; llama.cpp: not installed")
    ttft_label = f"TTFT, {res['ttft_prompt_tokens']}-tok prompt"
    print(f"{ttft_label:<22}{res['ttft_ms_llmlab']:>10.1f}ms{res['ttft_ms_hf']:>12.1f}ms"
          f"{res['ttft_ms_hf'] / res['ttft_ms_llmlab']:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
