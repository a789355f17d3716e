"""`llmlab quickstart`: the main job, from nothing to a story-writing model in minutes on a CPU."""

from __future__ import annotations

import click

from llmlab.cli.common import OutputPath, emit_json, json_option


@click.command("quickstart")
@click.option("--out", default="runs/quickstart", show_default=True, type=OutputPath("dir"),
              help="Folder for the corpus, the shards and the run.")
@click.option("--tokens", default="4M", show_default=True, help="Size of the tinyworld corpus (e.g. 500k, 3M, 50M).")
@click.option("--vocab-size", default=2048, show_default=True, help="Tokenizer vocabulary size.")
@click.option("--preset", default="tiny", show_default=True, help="Model preset (tiny, mini, small, base, ...).")
@click.option("--max-steps", default=1200, show_default=True, help="Optimizer steps to train.")
@click.option("--batch-size", default=8, show_default=True, help="Sequences per step.")
@click.option("--seq-len", default=256, show_default=True, help="Tokens per sequence.")
@click.option("--lr", default=4e-3, show_default=True, help="Peak learning rate.")
@click.option("--seed", default=0, show_default=True, help="Seed for the world, the data order and the model.")
@click.option("--threads", type=int, default=None, help="CPU threads for PyTorch (default: all cores).")
@click.option("--fresh", is_flag=True,
              help="Delete the --out folder first instead of continuing it (refused if it holds anything the "
                   "quickstart did not write).")
@json_option
def command(out, tokens, vocab_size, preset, max_steps, batch_size, seq_len, lr, seed, threads, fresh, as_json):
    """Generate tinyworld, train a tokenizer and a small model, and show what it writes.

    About 3.5 minutes on two CPU cores. Re-running continues where it stopped (the same
    corpus, tokenizer and model; --fresh or another --out to change them).
    """
    import sys

    from llmlab.recipes.quickstart import QuickstartConfig, next_steps, run_quickstart

    cfg = QuickstartConfig(out=out, tokens=tokens, vocab_size=vocab_size, preset=preset, max_steps=max_steps,
                           batch_size=batch_size, seq_len=seq_len, lr=lr, seed=seed, threads=threads, fresh=fresh)
    if not fresh:
        check_continuation(out, tokens, vocab_size, seed)
    log = (lambda m: print(m, file=sys.stderr)) if as_json else print
    result = run_quickstart(cfg, log=log, progress=not as_json)
    if as_json:
        emit_json({k: result.get(k) for k in
                   ("val_loss", "val_bpb", "val_ppl", "tokens", "seconds", "total_seconds", "checkpoint", "stories")})
        return
    print()
    print(f"validation loss {result['val_loss']:.3f} nats/token, perplexity {result['val_ppl']:.2f}, "
          f"{result['val_bpb']:.3f} bits per byte; {result['tokens']:,} training tokens; "
          f"{result['total_seconds']:.0f} s in all")
    print("\nStories written by the model (prompt + continuation):")
    for story in result["stories"]:
        print("  - " + story.replace("\n", " "))
    print()
    print(next_steps(result))


def check_continuation(out: str, tokens: str, vocab_size: int, seed: int) -> None:
    """Re-running continues the folder's earlier stages, so a corpus size, seed or vocabulary that
    differs from what the folder holds would be silently ignored: refuse it instead."""
    import json
    from pathlib import Path

    from llmlab.data.tinyworld.tokens import parse_token_count
    from llmlab.errors import ConfigError

    def read(path: Path) -> dict:
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except ValueError:
            return {}

    world, data = read(Path(out) / "tinyworld" / "manifest.json"), read(Path(out) / "data" / "manifest.json")
    held = [("--tokens", world.get("tokens_requested"), parse_token_count(tokens)),
            ("--seed", world.get("seed"), seed), ("--vocab-size", data.get("vocab_size"), vocab_size)]
    diff = [f"{flag} {was:,}" if isinstance(was, int) and was >= 10_000 else f"{flag} {was}"
            for flag, was, now in held if was is not None and was != now]
    if diff:
        raise ConfigError(f"{out} was made with {', '.join(diff)}; re-running continues it, so pass the same values, "
                          "or --fresh to start over, or another --out")
