"""Decode throughput of llama.cpp (llama-cpp-python) vs llmlab's Engine on the same weights.

The weights are generate_throughput.py's: preset `gpt2-12m` (6 layers, d_model 384, 6 heads,
vocab 4096), random init with seed 0. They are exported with `llmlab export-gguf` (f32 and q8_0;
a small tinyworld tokenizer supplies the vocabulary, padded to 4096 ids, since both sides are fed
token ids) and loaded by llama.cpp. Both decode greedily at batch 1 from the same 32-token prompt
with the same thread count; before timing, the f32 file's greedy tokens are checked equal to
llmlab's. Rate = (N - 1) / (t_N - t_1) over the median of --repeats alternating runs, so the
prompt's prefill and machine-load drifts cancel as in generate_throughput.py.

    python bench/llamacpp_throughput.py            # a table
    python bench/llamacpp_throughput.py --json     # one JSON object (llamacpp_tokens_per_s, ...)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path


def build(folder: Path, seed: int):
    import torch

    import llmlab
    from llmlab.config import preset
    from llmlab.data.tinyworld import World
    from llmlab.model import TransformerLM
    from llmlab.tokenizer import Tokenizer

    torch.manual_seed(seed)
    model = TransformerLM(preset("gpt2-12m")).eval()
    texts = World(seed=0).stories(200, random.Random(0))
    tokenizer = Tokenizer.train([t["text"] for t in texts], vocab_size=1024, show_progress=False)
    llmlab.save_checkpoint(folder / "ckpt", model, tokenizer)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: this process's CPU time (both libraries run in it), steadier on a busy machine; "
                         "needs --threads 1")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        import llama_cpp
    except ImportError:
        sys.exit('llama-cpp-python is not installed: CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON '
                 '-DGGML_F16C=ON" pip install llama-cpp-python')
    import torch

    from llmlab.infer import Engine
    from llmlab.interop.gguf_export import export_gguf

    torch.set_num_threads(args.threads)
    if args.clock == "cpu" and args.threads != 1:
        sys.exit("--clock cpu measures this process's CPU time; use it with --threads 1")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    N = args.new_tokens
    with tempfile.TemporaryDirectory(prefix="llmlab-bench-") as tmp:
        tmp = Path(tmp)
        model = build(tmp, args.seed)
        prompt = torch.randint(0, model.config.vocab_size, (args.prompt_tokens,),
                               generator=torch.Generator().manual_seed(args.seed)).tolist()
        engine = Engine(model, None, max_batch_size=1)
        llms = {}
        for q in ("f32", "q8_0"):
            export_gguf(tmp / "ckpt", tmp / f"{q}.gguf", q)
            llms[q] = llama_cpp.Llama(model_path=str(tmp / f"{q}.gguf"), n_ctx=args.prompt_tokens + N + 8,
                                      n_threads=args.threads, n_threads_batch=args.threads, verbose=False)

        def ours(n: int) -> list[int]:
            return engine.generate(prompt, temperature=0, max_new_tokens=n, ignore_eos=True).token_ids

        def theirs(llm, n: int) -> list[int]:
            out = []
            for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
                out.append(int(token))
                if len(out) == n:
                    return out
            return out

        same = theirs(llms["f32"], N) == ours(N)
        fns = {"llmlab": ours, "llama.cpp f32": lambda n: theirs(llms["f32"], n),
               "llama.cpp q8_0": lambda n: theirs(llms["q8_0"], n)}
        times = {(name, n): [] for name in fns for n in (1, N)}
        for _ in range(args.repeats):
            for name, fn in fns.items():
                for n in (N, 1):
                    t0 = clock()
                    fn(n)
                    times[(name, n)].append(clock() - t0)
        rates = {name: (N - 1) / max(statistics.median(times[(name, N)]) - statistics.median(times[(name, 1)]), 1e-9)
                 for name in fns}
        for llm in llms.values():
            llm.close()
    result = {
        "weights": "gpt2-12m, random init seed 0", "threads": args.threads, "clock": args.clock, "new_tokens": N,
        "greedy_tokens_equal_f32": same,
        "llmlab_tokens_per_s": rates["llmlab"],
        "llamacpp_tokens_per_s": rates["llama.cpp f32"],
        "llamacpp_q8_0_tokens_per_s": rates["llama.cpp q8_0"],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"decode, batch 1, greedy, gpt2-12m (random init), {args.threads} threads; llama.cpp's f32 greedy tokens "
          f"{'equal' if same else 'DIFFER FROM'} llmlab's")
    for name, rate in rates.items():
        print(f"{name:<16}{rate:>10.0f} tok/s   {rate / rates['llmlab']:.2f}x llmlab")


if __name__ == "__main__":
    main()
