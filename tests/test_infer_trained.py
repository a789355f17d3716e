"""Behaviour on a tiny model trained (here, in a few seconds) on two kinds of text:

- sentiment reviews in the lesson's few-shot format, where the adjective decides the label, so
  label scoring has an obvious right answer;
- one memorised line with multi-byte characters (an emoji, CJK, accents), so greedy decoding
  produces known text for streaming and stop-string tests.
"""

from __future__ import annotations

import json
import random
import re

import pytest
import torch
from helpers import train_small_lm

from llmlab.errors import ConfigError
from llmlab.infer import (
    ContentGenerator,
    Engine,
    LLMChatbot,
    chain_of_thought_reasoning,
    few_shot_classification,
    generate_text,
    score_continuations,
)
from llmlab.infer.detokenize import TextAssembler

pytestmark = pytest.mark.xdist_group("infer_trained")  # train once per worker

POS = ["great", "lovely", "fresh", "good", "nice", "tasty"]
NEG = ["awful", "bad", "stale", "dirty", "rude", "cold"]
NOUNS = ["bread", "soup", "shop", "cake", "tea", "room", "staff", "fish"]
MEMO_PROMPT = "Mia said:"
MEMO = " hello 🙂 Zoë, 東京 is far! The end."


def review(rng: random.Random) -> tuple[str, str]:
    positive = rng.random() < 0.5
    return f"The {rng.choice(NOUNS)} was {rng.choice(POS if positive else NEG)}.", "positive" if positive else "negative"


@pytest.fixture(scope="module")
def trained(small_tokenizer):
    torch.set_num_threads(1)
    tok = small_tokenizer
    rng = random.Random(0)
    docs: list[str] = []
    for _ in range(400):
        if rng.random() < 0.3:
            doc = MEMO_PROMPT + MEMO
        else:
            shots = [review(rng) for _ in range(rng.randint(1, 3))]
            doc = "Classify the sentiment of these texts:\n\n" + "\n\n".join(
                f"Text: {t}\nSentiment: {label}" for t, label in shots)
        docs.append(doc)
    model = train_small_lm(tok, docs, context=128, seq_len=64)
    assert generate_text(model, tok, MEMO_PROMPT, temperature=0, max_new_tokens=40) == MEMO, "training failed"
    return model, tok


# ---------------------------------------------------------------------------- label scoring
def test_label_scoring_picks_the_right_label(trained):
    model, tok = trained
    examples = [{"text": "The tea was nice.", "label": "positive"}, {"text": "The room was dirty.", "label": "negative"}]
    queries = [f"The {n} was {a}." for n in NOUNS for a in POS + NEG]
    gold = ["positive" if q.split()[-1][:-1] in POS else "negative" for q in queries]
    preds = few_shot_classification(model, tok, examples, queries)
    accuracy = sum(p == g for p, g in zip(preds, gold)) / len(gold)
    assert accuracy >= 0.85
    # Labels the model never saw after "Sentiment:" lose to the real ones.
    assert few_shot_classification(model, tok, examples, "The cake was lovely.", labels=["banana", "positive"]) == "positive"


def test_calibration_removes_a_label_prior(trained):
    model, tok = trained
    examples = [{"text": "The tea was nice.", "label": "positive"}, {"text": "The room was dirty.", "label": "negative"}]
    result = few_shot_classification(model, tok, examples, "The cake was lovely.", calibrate=True, return_scores=True)
    assert result.label == "positive"
    assert set(result.calibrated) == {"positive", "negative"}
    assert sum(result.calibrated.values()) == pytest.approx(1.0)
    assert sum(result.probs.values()) == pytest.approx(1.0)


def test_scoring_greedy_flag_and_totals(trained):
    model, tok = trained
    (lp, n, greedy), (lp_bad, _, greedy_bad) = score_continuations(
        model, tok, [MEMO_PROMPT, MEMO_PROMPT], [MEMO, " goodbye"])
    assert greedy and not greedy_bad and lp > lp_bad and n == len(tok.encode(MEMO_PROMPT + MEMO)) - len(tok.encode(MEMO_PROMPT))


# ---------------------------------------------------------------------------- streaming and stops
def test_streaming_yields_exactly_the_final_text_and_never_half_a_character(trained):
    model, tok = trained
    assert len(tok.encode("🙂")) > 1  # the emoji really spans several tokens
    engine = Engine(model, tok)
    stream = engine.stream(MEMO_PROMPT, temperature=0, max_new_tokens=40)
    pieces = list(stream)
    result = stream.result
    assert "".join(pieces) == result.text == MEMO
    assert result.finish_reason == "stop" and result.token_ids[-1] == tok.eos_token_id
    assert all("\ufffd" not in p for p in pieces)
    assert "🙂" in pieces or any("🙂" in p for p in pieces)


@pytest.mark.parametrize("stop", ["🙂", "Zoë, 東", "far! The", "e end"])
def test_stop_strings_end_the_text_and_are_excluded(trained, stop):
    model, tok = trained
    engine = Engine(model, tok)
    expected = MEMO[:MEMO.index(stop)]
    assert engine.generate(MEMO_PROMPT, temperature=0, max_new_tokens=40, stop=[stop]).text == expected
    stream = engine.stream(MEMO_PROMPT, temperature=0, max_new_tokens=40, stop=[stop, "never seen"])
    pieces = list(stream)
    assert "".join(pieces) == expected and stream.result.stop_reason == stop
    assert stream.result.finish_reason == "stop"


def test_a_partial_stop_string_is_held_back_then_released(trained):
    model, tok = trained
    engine = Engine(model, tok)
    # "is far! X" starts matching at "is far! " and then fails: that text must still come out.
    pieces = list(engine.stream(MEMO_PROMPT, temperature=0, max_new_tokens=40, stop=["is far! X"]))
    assert "".join(pieces) == MEMO


def test_text_assembler_handles_a_stop_string_split_across_pieces(small_tokenizer):
    ids = small_tokenizer.encode("Tom lives in Pinebrook. He works")
    asm = TextAssembler(small_tokenizer, stop=["Pinebrook."])
    shown, stopped = "", False
    for t in ids:
        piece, stopped = asm.add(t)
        shown += piece
        assert "Pine" not in shown  # held back: it might be (and is) the stop string
        if stopped:
            break
    assert stopped and shown + asm.finish() == "Tom lives in " == asm.text


# ---------------------------------------------------------------------------- chat
def test_chat_history_is_trimmed_when_over_the_context(trained):
    model, tok = trained
    bot = LLMChatbot(model, tok, system_prompt="Be brief.", max_new_tokens=16, temperature=0)
    assert bot.chat("hi") == bot.conversation_history[0]["assistant"]
    for i in range(12):
        bot.chat(f"message number {i} about the soup and the bread")
        prompt = bot.build_prompt("next")
        assert len(prompt) + 16 <= model.config.context_length
    assert bot.trimmed_turns > 0  # the oldest turns no longer fit the 128-token context
    assert len(bot.conversation_history) == 13  # ... but stay in the history
    kept = tok.decode(bot.build_prompt("next"))
    assert "Be brief." in kept and "message number 11" in kept and "message number 0 " not in kept
    bot.reset()
    assert bot.conversation_history == [] and bot.messages == [{"role": "system", "content": "Be brief."}]


def test_chat_without_a_template_uses_the_lessons_format(trained, small_tokenizer):
    model, tok = trained
    import copy

    plain = copy.copy(tok)
    plain.chat_template = None
    bot = LLMChatbot(model, plain, system_prompt="You help.", max_new_tokens=8, temperature=0)
    bot.chat("hello")
    text = plain.decode(bot.build_prompt("again"))
    assert text.startswith("You help.\n\nHuman: hello\nAssistant:") and text.endswith("Human: again\nAssistant:")


# ---------------------------------------------------------------------------- prompting / content
def test_chain_of_thought_extracts_answers_and_votes(trained):
    model, tok = trained
    single = chain_of_thought_reasoning(model, tok, "What is 2 + 3?", max_new_tokens=12)
    assert single.chains and single.reasoning.startswith("Step 1:")
    many = chain_of_thought_reasoning(model, tok, ["What is 2 + 3?", "What is 1 + 1?"], self_consistency=3,
                                      max_new_tokens=12, seed=1)
    assert [len(r.chains) for r in many] == [3, 3]
    again = chain_of_thought_reasoning(model, tok, ["What is 2 + 3?", "What is 1 + 1?"], self_consistency=3,
                                       max_new_tokens=12, seed=1)
    assert [r.chains for r in many] == [r.chains for r in again]  # seeded chains reproduce


def test_few_shot_generate_answers_one_line_each(trained):
    from llmlab.infer import few_shot_generate

    model, tok = trained
    demos = [{"question": "Mia said:", "answer": "hello"}]
    answers = few_shot_generate(model, tok, demos, ["Mia said:", "Tom said:"], max_new_tokens=6)
    assert len(answers) == 2 and all(isinstance(a, str) and "\n" not in a for a in answers)


def test_content_generator_budgets_and_code_extraction(trained):
    model, tok = trained
    gen = ContentGenerator(model, tok, temperature=0)
    gen.generate_article("soup", length=5)
    assert len(gen.last_result.token_ids) <= 5
    gen.generate_article("soup", style="informative", length="long")  # budget beyond the context: stops at it
    assert gen.last_result.finish_reason in ("length", "stop")
    code = gen.generate_code("add two numbers")
    assert "```" not in code


# ---------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def checkpoint(trained, tmp_path_factory):
    from llmlab.checkpoint import save_checkpoint

    model, tok = trained
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model", model, tok)


def run_cli(*args, stdin: str | None = None):
    """The CLI in-process (no second torch import): result.exit_code, .stdout, .stderr, .exception."""
    from click.testing import CliRunner

    from llmlab.cli.main import cli

    return CliRunner().invoke(cli, list(args), input=stdin)


def test_generate_cli_json(checkpoint, tmp_path):
    out = run_cli("generate", "--model", str(checkpoint), "--prompt", MEMO_PROMPT, "--temperature", "0", "--json",
                  "--logprobs")
    assert out.exit_code == 0, out.output
    record = json.loads(out.stdout)
    assert record["text"] == MEMO and record["finish_reason"] == "stop"
    assert len(record["token_ids"]) == len(record["logprobs"]) == record["completion_tokens"]
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": MEMO_PROMPT}) + "\n" + json.dumps({"prompt": "Text: The"}) + "\n")
    out = run_cli("generate", "--model", str(checkpoint), "--prompts", str(prompts), "--temperature", "0",
                  "--max-new-tokens", "5", "--json")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["index"] for r in lines] == [0, 1] and lines[0]["text"] == MEMO[:len(lines[0]["text"])]
    bad = run_cli("generate", "--model", str(checkpoint), "--prompt", "x", "--top-p", "0")
    assert isinstance(bad.exception, ConfigError) and "invalid generation parameter: top_p" in str(bad.exception)


def test_generate_cli_truncation_warning_is_one_line(checkpoint):
    """In a real process (pytest would capture the warning): the user sees the message, not file:line."""
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "llmlab.cli.main", "generate", "--model", str(checkpoint), "--prompt", "Text: The " * 60,
         "--max-new-tokens", "2", "--truncation", "left", "--temperature", "0", "--json"],
        check=False, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["prompt_truncated"] > 0
    assert proc.stderr.startswith("warning: prompt of") and len(proc.stderr.splitlines()) == 1, proc.stderr


def test_chat_cli_reads_stdin(checkpoint, tmp_path):
    transcript = tmp_path / "chat.json"
    out = run_cli("chat", "--model", str(checkpoint), "--temperature", "0", "--max-new-tokens", "8",
                  stdin=f"hello\n/system Be kind.\nhi there\n/save {transcript}\n/bogus\n")
    assert out.exit_code == 0, out.output
    assert "conversation reset" in out.stderr and "unknown command /bogus" in out.stderr
    saved = json.loads(transcript.read_text())
    assert saved["system_prompt"] == "Be kind."
    assert [m["role"] for m in saved["messages"]] == ["system", "user", "assistant"]
    assert saved["messages"][1]["content"] == "hi there"


def test_chat_save_refuses_a_missing_folder_and_keeps_chatting(checkpoint, tmp_path):
    missing = tmp_path / "no" / "such" / "chat.json"
    out = run_cli("chat", "--model", str(checkpoint), "--temperature", "0", "--max-new-tokens", "4",
                  stdin=f"hello\n/save {missing}\n/save {tmp_path / 'one.json'}\nhi\n/save {tmp_path / 'two.json'}\n")
    assert out.exit_code == 0, out.output
    assert f"folder {missing.parent} does not exist" in out.stderr and not (tmp_path / "no").exists()
    assert "(saved 1 turn to" in out.stderr and "(saved 2 turns to" in out.stderr
    assert len(json.loads((tmp_path / "two.json").read_text())["messages"]) == 4


def test_chat_logprobs_lists_each_reply_token(checkpoint):
    out = run_cli("chat", "--model", str(checkpoint), "--temperature", "0", "--max-new-tokens", "3", "--logprobs",
                  "--top-logprobs", "2", stdin="hello\n")
    assert out.exit_code == 0, out.output
    rows = [line for line in out.stderr.splitlines() if re.match(r"^\s+-?\d+\.\d{3}\s+['\"]", line)]
    # One row per generated token: its log-probability, the token, and the 2 likeliest alternatives.
    assert len(rows) == 3, out.stderr
    assert all(len(re.findall(r" -?\d+\.\d{3}", line.rsplit("(", 1)[1])) == 2 for line in rows), out.stderr
    help_text = run_cli("chat", "--help").stdout
    assert "--logprobs" in help_text and "--json" not in help_text  # chat has no --json to refer to


def test_an_interrupted_reply_stays_in_the_history_marked(trained, tmp_path):
    model, tok = trained
    bot = LLMChatbot(model, tok, max_new_tokens=8, temperature=0)

    def cut_short(*_):  # the engine's pieces, with Ctrl-C arriving while the third is generated
        yield "Hi"
        yield " there"
        raise KeyboardInterrupt

    bot.engine.stream = cut_short
    with pytest.raises(KeyboardInterrupt):
        for _ in bot.stream("hello"):
            pass
    assert bot.conversation_history == [{"user": "hello", "assistant": "Hi there", "interrupted": True}]
    assert "Hi there" in tok.decode(bot.build_prompt("go on"))  # the model sees what the user saw
    # The caller closing the stream early (Ctrl-C in the terminal loop) keeps the part shown too.
    del bot.engine.stream
    reply = bot.stream("again")
    first = next(reply)
    reply.close()
    assert bot.conversation_history[-1] == {"user": "again", "assistant": first.strip(), "interrupted": True}
    bot.save(tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text())["messages"][1]["interrupted"] is True
    again = LLMChatbot(model, tok)
    again.load(tmp_path / "t.json")
    assert again.conversation_history == bot.conversation_history


def test_prompting_experiment_cli(checkpoint, tmp_path):
    rng = random.Random(1)
    for split, n in (("train", 20), ("test", 12)):
        rows = [dict(zip(("text", "label"), review(rng))) for _ in range(n)]
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = [{"question": f"Sam has {a} apples and buys {b} more. How many now?",
                 "solution": f"Step 1: {a} + {b} = {a + b}.\nAnswer: {a + b}", "answer": str(a + b)}
                for a, b in ((1, 2), (3, 4), (2, 2), (5, 1), (4, 4), (6, 2))]
    (tmp_path / "steps_1.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    out = run_cli("experiment", "prompting", "--model", str(checkpoint), "--classification-train",
                  str(tmp_path / "train.jsonl"), "--classification-test", str(tmp_path / "test.jsonl"),
                  "--arithmetic", str(tmp_path / "steps_1.jsonl"), "--shots", "0,1,8", "--limit", "4",
                  "--out", str(tmp_path / "exp"), "--json")
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    cls = [r for r in result["rows"] if r["task"] == "classification"]
    assert [(r["method"], r["k"]) for r in cls] == [("zero-shot", 0), ("few-shot", 1), ("few-shot", 8),
                                                     ("chain-of-thought", 0)]
    assert cls[1]["accuracy"] >= 0.75  # the trained model knows its reviews
    assert all(r["k_fit"] <= r["k"] for r in result["rows"])
    assert {r["method"] for r in result["rows"] if r["task"] == "arithmetic"} == {"zero-shot", "few-shot", "chain-of-thought"}
    for f in ("results", "table", "plot"):
        assert (tmp_path / "exp" / result["files"][f].rsplit("/", 1)[-1]).is_file()
