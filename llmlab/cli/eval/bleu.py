"""`llmlab eval bleu`: corpus BLEU (sacrebleu, with signature), chrF, TER and ROUGE-L of files."""

from __future__ import annotations

from typing import Any

import click

from llmlab.cli.common import emit, json_option, print_table
from llmlab.errors import DataError


@click.command("bleu")
@click.option("--hyp", "hyp_path", required=True, type=click.Path(dir_okay=False),
              help="System output: one segment per line.")
@click.option("--ref", "ref_paths", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="Reference file, one segment per line, aligned with --hyp. Repeat for several references.")
@click.option("--lowercase", is_flag=True, help="Case-insensitive BLEU (sacrebleu -lc).")
@click.option("--tokenize", default=None, metavar="NAME",
              help="sacrebleu tokeniser: 13a (default), intl, char, zh, ja-mecab, ko-mecab, flores200, none.")
@click.option("--chrf/--no-chrf", default=True, show_default=True, help="Also compute chrF (character n-gram F-score).")
@click.option("--ter", is_flag=True, help="Also compute TER (translation edit rate, lower is better).")
@click.option("--rouge/--no-rouge", default=True, show_default=True,
              help="Also compute ROUGE-L F1 (needs the rouge-score package; skipped if it is missing).")
@click.option("--segments", is_flag=True, help="Also report smoothed sentence BLEU for every segment.")
@json_option
def command(hyp_path: str, ref_paths: tuple[str, ...], lowercase: bool, tokenize: str | None, chrf: bool,
            ter: bool, rouge: bool, segments: bool, as_json: bool) -> None:
    """Score a system output against one or more references with sacrebleu's corpus BLEU.

    The score equals `sacrebleu HYP -i REF...`; the signature says how it was computed
    (references, casing, tokeniser, smoothing, version) and belongs next to any reported BLEU.
    """
    from llmlab.eval import bleu as B

    hyps = B.read_segments(hyp_path)
    refs = []
    for path in ref_paths:
        stream = B.read_segments(path)
        if len(stream) != len(hyps):
            raise DataError(f"{path} has {len(stream)} lines but {hyp_path} has {len(hyps)}")
        refs.append(stream)
    result = B.corpus_bleu(hyps, refs, lowercase=lowercase, tokenize=tokenize)
    out: dict[str, Any] = {"score": result.score, "signature": result.signature, "precisions": result.precisions,
                           "bp": result.bp, "ratio": result.ratio, "hyp_len": result.hyp_len,
                           "ref_len": result.ref_len, "segments_scored": len(hyps), "references": len(refs)}
    if chrf:
        c = B.corpus_chrf(hyps, refs, lowercase=lowercase)
        out["chrf"], out["chrf_signature"] = c.score, c.signature
    if ter:
        t = B.corpus_ter(hyps, refs)
        out["ter"], out["ter_signature"] = t.score, t.signature
    if rouge and B.rouge_available():
        out["rouge_l"] = B.rouge_l(hyps, refs)
    if segments:
        out["sentence_bleu"] = [B.sentence_bleu(h, [r[i] for r in refs], lowercase=lowercase, tokenize=tokenize)
                                for i, h in enumerate(hyps)]

    def show(r: dict[str, Any]) -> None:
        rows = [["BLEU", r["score"]], ["BLEU precisions (1-4)", " / ".join(f"{p:.1f}" for p in r["precisions"])],
                ["brevity penalty", r["bp"]], ["length ratio (hyp/ref)", r["ratio"]]]
        for key, label in (("chrf", "chrF"), ("ter", "TER"), ("rouge_l", "ROUGE-L F1")):
            if key in r:
                rows.append([label, r[key]])
        rows.append(["segments", r["segments_scored"]])
        print_table(rows, ["metric", "value"], title=f"{hyp_path} vs {len(ref_paths)} reference file(s)")
        click.echo(f"BLEU signature: {r['signature']}")
        if "chrf_signature" in r:
            click.echo(f"chrF signature: {r['chrf_signature']}")
        if "sentence_bleu" in r:
            print_table([[i + 1, s] for i, s in enumerate(r["sentence_bleu"])], ["segment", "sentence BLEU"])

    emit(out, as_json, show)
