"""Instruction, chat and preference records: reading and validating the formats TRL documents.

Fine-tuning data is JSON lines (or a JSON list); each record is one of

    {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}, ...]}
    {"prompt": "...", "completion": "..."}                      (standard)
    {"prompt": [messages...], "completion": [assistant message]}  (conversational)
    {"instruction": "...", "input": "...", "output": "..."}     (alpaca; input may be empty/absent)

and preference data is

    {"prompt": "...", "chosen": "...", "rejected": "..."}         (standard, explicit prompt)
    {"prompt": [messages...], "chosen": [assistant message], "rejected": [assistant message]}
    {"chosen": [conversation], "rejected": [conversation]}       (implicit prompt: the shared prefix)

optionally with a `reason` tag (tinyworld's preference kinds), and KTO's unpaired records are

    {"prompt": ..., "completion": ..., "label": true|false}     (a desirable or undesirable completion)

Anything else fails with a one-line `DataError` that names the file and line (or record number), e.g.
"prefs.jsonl:7: preference record is missing 'chosen'".

This module only parses: turning records into text and tokens (chat template, completion masks) is
`llmlab.data.sft`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from llmlab.errors import DataError, at_line, json_error

ROLES = ("system", "user", "assistant")
Messages = list[dict[str, str]]


@dataclass
class SFTExample:
    """One supervised example. `messages` is the conversation form (assistant turns from index
    `train_from` on are trained); `prompt`/`completion` the plain-text form. Records have one or
    both: alpaca and standard prompt/completion have both; `messages` records only the first."""

    where: str
    messages: Messages | None = None
    train_from: int = 0
    prompt: str | None = None
    completion: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # task, answer, ... carried through for evaluation


@dataclass
class PreferenceExample:
    """A prompt and two responses, `chosen` preferred over `rejected`. Conversational records hold
    message lists (prompt: the conversation so far; chosen/rejected: the assistant turn(s));
    standard records hold strings."""

    where: str
    prompt: str | Messages
    chosen: str | Messages
    rejected: str | Messages
    reason: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def conversational(self) -> bool:
        return isinstance(self.chosen, list)


@dataclass
class PromptExample:
    """A prompt for generation (PPO rollouts, evaluation): plain text or a conversation."""

    where: str
    prompt: str | Messages
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- reading
def read_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for every record of a .jsonl file (one object per line; blank lines
    skipped) or a .json file holding a list of objects."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    name = str(path)  # the whole path: a tinyworld folder has sft/train.jsonl and preferences/train.jsonl
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(json_error(name, exc)) from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if not isinstance(data, list):
            raise DataError(f"{name}: a .json data file must hold a list of records")
        for i, rec in enumerate(data, 1):
            yield _object(rec, f"{name} record {i}")
        return
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(json_error(name, exc, n)) from None
            yield _object(rec, at_line(name, n))


def _object(rec: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    return where, rec


def _text(value: Any, where: str, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: {name!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DataError(f"{where}: empty {name}")
    return value


def _messages(value: Any, where: str, name: str) -> Messages:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: {name!r} must be a non-empty list of messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}: {name}[{i}] must be an object with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise DataError(f"{where}: {name}[{i}] has role {m['role']!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise DataError(f"{where}: {name}[{i}].content must be a string")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _meta(rec: dict[str, Any], used: set[str]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in used}


# ---------------------------------------------------------------------------- SFT
def detect_sft_format(rec: dict[str, Any]) -> str | None:
    if "messages" in rec:
        return "messages"
    if "prompt" in rec and "completion" in rec:
        return "prompt_completion"
    if "instruction" in rec and "output" in rec:
        return "alpaca"
    return None


def parse_sft_record(rec: dict[str, Any], where: str) -> SFTExample:
    kind = detect_sft_format(rec)
    if kind is None:
        raise DataError(
            f"{where}: not an SFT record; expected 'messages', 'prompt'+'completion', or "
            f"'instruction'+'output' (found keys: {', '.join(sorted(rec)) or 'none'})"
        )
    ex = SFTExample(where=where)
    if kind == "messages":
        ex.messages = _messages(rec["messages"], where, "messages")
        assistant = [m for m in ex.messages if m["role"] == "assistant"]
        if not assistant:
            raise DataError(f"{where}: the conversation has no assistant turn to train on")
        if any(not m["content"].strip() for m in assistant):
            raise DataError(f"{where}: empty completion (an assistant message has no content)")
    if kind == "alpaca" or ("instruction" in rec and "output" in rec):
        instruction = _text(rec["instruction"], where, "instruction")
        extra = _text(rec.get("input") or "", where, "input", allow_empty=True)
        ex.prompt = alpaca_prompt(instruction, extra)
        # The completion carries the separating space, so the prompt a user types ends at
        # "Output:" and BPE sees " word" exactly as when it generates it.
        ex.completion = " " + _text(rec["output"], where, "completion (output)")
        if ex.messages is None:
            user = instruction if not extra.strip() else f"{instruction}\n\n{extra}"
            ex.messages = [{"role": "user", "content": user}, {"role": "assistant", "content": rec["output"]}]
    elif kind == "prompt_completion":
        prompt, completion = rec["prompt"], rec["completion"]
        if isinstance(prompt, list) or isinstance(completion, list):
            ex.messages = _messages(prompt, where, "prompt") + _messages(completion, where, "completion")
            ex.train_from = len(prompt)
            done = ex.messages[ex.train_from:]
            if not any(m["role"] == "assistant" for m in done):
                raise DataError(f"{where}: the completion has no assistant message")
            if any(m["role"] == "assistant" and not m["content"].strip() for m in done):
                raise DataError(f"{where}: empty completion")
        else:
            ex.prompt = _text(prompt, where, "prompt")
            ex.completion = _text(completion, where, "completion")
            ex.messages = [{"role": "user", "content": ex.prompt}, {"role": "assistant", "content": ex.completion}]
    ex.meta = _meta(rec, {"messages", "prompt", "completion", "instruction", "input", "output"})
    return ex


def alpaca_prompt(instruction: str, input_text: str = "") -> str:
    """The lesson's instruction format, ending at "Output:" (the completion starts with a space)."""
    if input_text.strip():
        return f"Instruction: {instruction}\nInput: {input_text}\nOutput:"
    return f"Instruction: {instruction}\nOutput:"


def load_sft(path: str | Path) -> list[SFTExample]:
    examples = [parse_sft_record(rec, where) for where, rec in read_records(path)]
    if not examples:
        raise DataError(f"{Path(path).name}: no records")
    return examples


# ---------------------------------------------------------------------------- preferences
def parse_preference_record(rec: dict[str, Any], where: str) -> PreferenceExample:
    for key in ("chosen", "rejected"):
        if key not in rec:
            raise DataError(f"{where}: preference record is missing {key!r}")
    chosen, rejected = rec["chosen"], rec["rejected"]
    reason = rec.get("reason")
    meta = _meta(rec, {"prompt", "chosen", "rejected", "reason", "messages"})
    if "messages" in rec and isinstance(chosen, str) and isinstance(rejected, str):
        # tinyworld's records carry the prompt both as text and as a conversation (with the system
        # turn SFT trained with); the chat template uses the conversation, the plain one the text.
        prompt = _messages(rec["messages"], where, "messages")
        if prompt[-1]["role"] == "assistant":
            prompt = prompt[:-1]
        if isinstance(rec.get("prompt"), str):
            meta["prompt_text"] = rec["prompt"]
        turns = {}
        for name, text in (("chosen", chosen), ("rejected", rejected)):
            turns[name] = [{"role": "assistant", "content": _text(text, where, name)}]
        return PreferenceExample(where, prompt, turns["chosen"], turns["rejected"], reason, meta)
    if isinstance(chosen, list) or isinstance(rejected, list):
        chosen, rejected = _messages(chosen, where, "chosen"), _messages(rejected, where, "rejected")
        if "prompt" in rec:
            prompt = _messages(rec["prompt"], where, "prompt")
        else:  # implicit prompt: the longest shared prefix of the two conversations
            k = 0
            while k < min(len(chosen), len(rejected)) - 1 and chosen[k] == rejected[k]:
                k += 1
            if k == 0:
                raise DataError(f"{where}: preference record has no 'prompt' and chosen/rejected share no prefix")
            prompt, chosen, rejected = chosen[:k], chosen[k:], rejected[k:]
        for name, turns in (("chosen", chosen), ("rejected", rejected)):
            if not any(m["role"] == "assistant" for m in turns):
                raise DataError(f"{where}: {name!r} has no assistant message")
            if any(m["role"] == "assistant" and not m["content"].strip() for m in turns):
                raise DataError(f"{where}: empty completion in {name!r}")
        return PreferenceExample(where, prompt, chosen, rejected, reason, meta)
    if "prompt" not in rec:
        raise DataError(f"{where}: preference record is missing 'prompt'")
    prompt = rec["prompt"]
    if isinstance(prompt, list):
        raise DataError(f"{where}: a conversational 'prompt' needs conversational 'chosen'/'rejected' too")
    return PreferenceExample(
        where, _text(prompt, where, "prompt"), _text(chosen, where, "chosen"), _text(rejected, where, "rejected"),
        reason, meta,
    )


def parse_unpaired_record(rec: dict[str, Any], where: str) -> tuple[SFTExample, bool]:
    """A KTO record: a prompt/completion (standard or conversational) and its boolean label."""
    if not isinstance(rec.get("label"), bool):
        raise DataError(f"{where}: unpaired record needs 'label': true or false, got {rec.get('label')!r}")
    if "prompt" not in rec or "completion" not in rec:
        raise DataError(f"{where}: unpaired record needs 'prompt' and 'completion'")
    ex = parse_sft_record({k: v for k, v in rec.items() if k != "label"}, where)
    return ex, rec["label"]


def load_preferences(path: str | Path) -> list[PreferenceExample]:
    examples = [parse_preference_record(rec, where) for where, rec in read_records(path)]
    if not examples:
        raise DataError(f"{Path(path).name}: no records")
    return examples


# ---------------------------------------------------------------------------- prompts
def parse_prompt_record(rec: dict[str, Any], where: str) -> PromptExample:
    """A generation prompt: 'prompt' (text or messages), 'text', alpaca 'instruction'(+'input'),
    or 'messages' (a trailing assistant turn is dropped: that is the answer, not the prompt)."""
    meta = _meta(rec, {"prompt", "text", "messages", "instruction", "input"})
    if "prompt" in rec:
        p = rec["prompt"]
        prompt = _messages(p, where, "prompt") if isinstance(p, list) else _text(p, where, "prompt")
    elif "messages" in rec:
        prompt = _messages(rec["messages"], where, "messages")
        if prompt[-1]["role"] == "assistant":
            prompt = prompt[:-1]
        if not prompt:
            raise DataError(f"{where}: 'messages' holds no prompt before the assistant turn")
    elif "instruction" in rec:
        prompt = [{"role": "user", "content": _text(rec["instruction"], where, "instruction")}]
        if str(rec.get("input") or "").strip():
            prompt[0]["content"] += "\n\n" + rec["input"]
    elif "text" in rec:
        prompt = _text(rec["text"], where, "text")
    else:
        raise DataError(f"{where}: no prompt; expected 'prompt', 'messages', 'instruction' or 'text'")
    return PromptExample(where, prompt, meta)


def load_prompts(path: str | Path) -> list[PromptExample]:
    path = Path(path)
    if path.suffix == ".txt":  # one prompt per line
        lines = [(at_line(path, i), s) for i, s in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]
        prompts = [PromptExample(w, s) for w, s in lines if s.strip()]
    else:
        prompts = [parse_prompt_record(rec, where) for where, rec in read_records(path)]
    if not prompts:
        raise DataError(f"{path.name}: no prompts")
    return prompts
