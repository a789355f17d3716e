"""Supervised fine-tuning data: templates, completion-only masks, packing and batches.

Three things fine-tuning stacks commonly get wrong, and how this module does them:

1. The end-of-turn token is trained. The loss covers the assistant's tokens *and* the token that
   ends its turn (`<|im_end|>` in ChatML, `<|endoftext|>` in the plain template); masking it (for
   example by deriving the mask from `input_ids != pad_id` when pad == eos) gives a model that never
   stops. Masks here come from character spans of the rendered text, never from token ids.
2. Packing does not leak. Packed examples share a window but each token attends only to earlier
   tokens of its own example (a block-diagonal causal mask built from `doc_ids`) and positions
   restart at 0 for every example, so a packed example's loss equals its unpacked loss (tested).
3. Padding side does not matter. Padded batches carry an attention mask; positions follow it; the
   loss ignores padding by label, so left and right padding give the same per-example loss.

Rendering. The "chatml" template uses the tokenizer's chat template (ChatML for llmlab tokenizers):
each trained assistant turn is located by rendering the conversation prefix with and without it,
so any prefix-stable Jinja template works. The "plain" template is prompt + completion + eos (the
lesson's alpaca format for instruction records: "Instruction: ...\\nInput: ...\\nOutput: ...").
A token is trained when its characters overlap a trained span, so a BPE token that straddles the
prompt/completion boundary is trained rather than lost.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from llmlab.config import IGNORE_INDEX
from llmlab.data.formats import (Messages, PreferenceExample, SFTExample, parse_preference_record,
                                 parse_unpaired_record, read_records)
from llmlab.errors import ConfigError, DataError

TEMPLATES = ("chatml", "plain")


def default_template(tokenizer) -> str:
    return "chatml" if getattr(tokenizer, "chat_template", None) else "plain"


def check_template(template: str, tokenizer) -> str:
    if template == "auto":
        return default_template(tokenizer)
    if template not in TEMPLATES:
        raise ConfigError(f"template must be one of {', '.join(TEMPLATES)} or auto, got {template!r}")
    if template == "chatml" and not getattr(tokenizer, "chat_template", None):
        raise ConfigError("the tokenizer has no chat template; use --template plain")
    return template


# ---------------------------------------------------------------------------- rendering
def _chatml(messages: Messages, add_generation_prompt: bool = False) -> str:
    """llmlab's ChatML template in plain Python (identical output, tested): rendering Jinja costs
    milliseconds per call, and locating assistant turns renders each conversation several times."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def chat_renderer(tokenizer) -> Callable[..., str]:
    """render(messages, add_generation_prompt=False) -> text, with the tokenizer's chat template."""
    from llmlab.tokenizer import CHATML_TEMPLATE

    if tokenizer.chat_template == CHATML_TEMPLATE:
        return _chatml
    return lambda messages, add_generation_prompt=False: tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt)


def render_conversation(messages: Messages, train_from: int, tokenizer,
                        where: str = "") -> tuple[str, list[tuple[int, int]]]:
    """The templated text and the character spans of trained assistant turns (from `train_from`),
    each span being the content plus the end-of-turn marker (not the newline after it)."""
    render = chat_renderer(tokenizer)
    full = render(messages)
    spans = []
    for k, m in enumerate(messages):
        if m["role"] != "assistant" or k < train_from:
            continue
        before = render(messages[:k], add_generation_prompt=True)
        upto = render(messages[: k + 1])
        if not (full.startswith(upto) and upto.startswith(before)):
            raise DataError(f"{where}: the chat template does not render conversations prefix by prefix; "
                            "cannot locate the assistant turns")
        spans.append((len(before), len(upto.rstrip())))
    return full, spans


def render_sft(ex: SFTExample, template: str, tokenizer) -> tuple[str, list[tuple[int, int]]]:
    if template == "chatml":
        return render_conversation(ex.messages, ex.train_from, tokenizer, ex.where)
    if ex.prompt is None or ex.completion is None:
        raise DataError(f"{ex.where}: a conversation needs the chat template (--template chatml), not plain")
    eos = tokenizer.eos_token or ""
    text = ex.prompt + ex.completion + eos
    return text, [(len(ex.prompt), len(text))]


def render_prompt(prompt: str | Messages, template: str, tokenizer) -> str:
    """What the model sees before it answers: the chat template with the assistant header, or the text."""
    if template == "chatml":
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        return chat_renderer(tokenizer)(messages, add_generation_prompt=True)
    if isinstance(prompt, list):
        raise DataError("a conversational prompt needs the chat template (--template chatml)")
    return prompt


# ---------------------------------------------------------------------------- tokenising
@dataclass
class TokenizedExample:
    input_ids: list[int]
    trained: list[bool]  # per token: is it a target of the loss
    where: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_targets(self) -> int:
        return sum(self.trained)

    def shifted(self) -> tuple[list[int], list[int]]:
        """(inputs, targets): targets[t] is the token after inputs[t], or IGNORE_INDEX if untrained."""
        targets = [t if keep else IGNORE_INDEX for t, keep in zip(self.input_ids[1:], self.trained[1:])]
        return self.input_ids[:-1], targets


def tokenize_spans(tokenizer, text: str, spans: Sequence[tuple[int, int]]) -> tuple[list[int], list[bool]]:
    """Token ids of `text` and, per token, whether its characters overlap a trained span."""
    enc = tokenizer.backend.encode(text)
    trained = [any(s < end and e > start for start, end in spans) for s, e in enc.offsets]
    return list(enc.ids), trained


def tokenize_sft(ex: SFTExample, template: str, tokenizer, max_len: int) -> TokenizedExample:
    """Render and tokenise one example; one-line errors name the record."""
    text, spans = render_sft(ex, template, tokenizer)
    ids, trained = tokenize_spans(tokenizer, text, spans)
    if not any(trained):
        raise DataError(f"{ex.where}: empty completion (no tokens to train on)")
    prompt_len = trained.index(True)
    if prompt_len >= max_len:
        raise DataError(f"{ex.where}: the prompt has {prompt_len} tokens, more than the context of {max_len}")
    if len(ids) > max_len:
        raise DataError(
            f"{ex.where}: {len(ids)} tokens (prompt {prompt_len} + completion {len(ids) - prompt_len}) do not fit "
            f"the context of {max_len}; shorten it, or pass --skip-long to drop such records"
        )
    return TokenizedExample(ids, trained, ex.where, dict(ex.meta))


def tokenize_each(items: Sequence[Any], tokenize_one: Callable[[Any], Any], skip_long: bool) -> tuple[list, int]:
    """tokenize_one(item) for every item; with skip_long, overlong ones are dropped and counted instead."""
    out, skipped = [], 0
    for item in items:
        try:
            out.append(tokenize_one(item))
        except DataError as exc:
            if skip_long and ("do not fit" in str(exc) or "more than the context" in str(exc)):
                skipped += 1
                continue
            raise
    return out, skipped


def tokenize_all(examples: Sequence[SFTExample], template: str, tokenizer, max_len: int,
                 skip_long: bool = False) -> tuple[list[TokenizedExample], int]:
    """Tokenise every example; with skip_long, overlong ones are dropped and counted instead."""
    out, skipped = tokenize_each(examples, lambda ex: tokenize_sft(ex, template, tokenizer, max_len), skip_long)
    if not out:
        raise DataError("no examples left to train on" + (f" ({skipped} were too long)" if skipped else ""))
    return out, skipped


def preference_as_sft(ex: PreferenceExample) -> tuple[SFTExample, SFTExample]:
    """A preference pair as two SFT examples (prompt + chosen, prompt + rejected), so both sides
    are rendered, tokenised and masked exactly as supervised examples are."""
    def one(response) -> SFTExample:
        if ex.conversational:
            # The plain-text form exists when the record also gave the prompt as text (tinyworld).
            text = response[0]["content"] if len(response) == 1 and "prompt_text" in ex.meta else None
            return SFTExample(ex.where, messages=list(ex.prompt) + list(response), train_from=len(ex.prompt),
                              prompt=ex.meta.get("prompt_text") if text is not None else None, completion=text)
        return SFTExample(
            ex.where, messages=[{"role": "user", "content": ex.prompt}, {"role": "assistant", "content": response}],
            prompt=ex.prompt, completion=response,
        )

    return one(ex.chosen), one(ex.rejected)


@dataclass
class TokenizedPair:
    chosen: TokenizedExample
    rejected: TokenizedExample
    reason: str | None = None
    where: str = ""
    # The reference model's log-probabilities (chosen, rejected), filled in once by DPO.
    ref_logps: tuple[float, float] | None = None
    ref_avg_logps: tuple[float, float] | None = None


def tokenize_preferences(examples: Sequence[PreferenceExample], template: str, tokenizer, max_len: int,
                         skip_long: bool = False) -> tuple[list[TokenizedPair], int]:
    def one(ex: PreferenceExample) -> TokenizedPair:
        a, b = preference_as_sft(ex)
        return TokenizedPair(tokenize_sft(a, template, tokenizer, max_len),
                             tokenize_sft(b, template, tokenizer, max_len), ex.reason, ex.where)

    out, skipped = tokenize_each(examples, one, skip_long)
    if not out:
        raise DataError("no preference pairs left" + (f" ({skipped} were too long)" if skipped else ""))
    return out, skipped


@dataclass
class TokenizedUnpaired:
    """A KTO example: one completion, desirable or not."""

    example: TokenizedExample
    desirable: bool
    reason: str | None = None
    where: str = ""
    ref_logp: float | None = None  # the reference model's log-probability, filled in once by KTO


def load_unpaired(path) -> list[tuple[SFTExample, bool, str | None]]:
    """(example, desirable, reason) from KTO records ('prompt', 'completion', 'label') or from
    preference pairs, each split into its chosen (desirable) and rejected (undesirable) side."""
    out = []
    for where, rec in read_records(path):
        if "chosen" in rec or "rejected" in rec:
            pair = parse_preference_record(rec, where)
            chosen, rejected = preference_as_sft(pair)
            out += [(chosen, True, pair.reason), (rejected, False, pair.reason)]
        else:
            ex, label = parse_unpaired_record(rec, where)
            out.append((ex, label, rec.get("reason")))
    if not out:
        raise DataError(f"{Path(path).name}: no records")
    return out


def tokenize_unpaired(records: Sequence[tuple[SFTExample, bool, str | None]], template: str, tokenizer, max_len: int,
                      skip_long: bool = False) -> tuple[list[TokenizedUnpaired], int]:
    def one(record) -> TokenizedUnpaired:
        ex, label, reason = record
        return TokenizedUnpaired(tokenize_sft(ex, template, tokenizer, max_len), label, reason, ex.where)

    out, skipped = tokenize_each(records, one, skip_long)
    if not out:
        raise DataError("no examples left to train on" + (f" ({skipped} were too long)" if skipped else ""))
    return out, skipped


# ---------------------------------------------------------------------------- packing
def pack_examples(examples: Sequence[TokenizedExample], seq_len: int) -> list[list[int]]:
    """Best-fit-decreasing packing of whole examples (by input length, len - 1) into windows of
    seq_len: returns each window's example indices. Examples are never split."""
    order = sorted(range(len(examples)), key=lambda i: -(len(examples[i]) - 1))
    packs: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, pack index), sorted
    for i in order:
        size = len(examples[i]) - 1
        if size > seq_len:
            raise DataError(f"{examples[i].where}: {size + 1} tokens do not fit a window of {seq_len + 1}")
        j = bisect.bisect_left(free, (size, -1))  # the fullest pack that still has room
        if j < len(free):
            room, p = free.pop(j)
            packs[p].append(i)
            bisect.insort(free, (room - size, p))
        else:
            packs.append([i])
            bisect.insort(free, (seq_len - size, len(packs) - 1))
    return packs


# ---------------------------------------------------------------------------- collation
def collate_packed(examples: Sequence[TokenizedExample], seq_len: int, pad_id: int) -> dict[str, torch.Tensor]:
    """One window per list of examples: input_ids, targets, position_ids (restarting per example)
    and doc_ids (example number in the window, -1 on padding) [B=1, seq_len]."""
    ids = np.full(seq_len, pad_id, dtype=np.int64)
    targets = np.full(seq_len, IGNORE_INDEX, dtype=np.int64)
    pos = np.zeros(seq_len, dtype=np.int64)
    doc = np.full(seq_len, -1, dtype=np.int64)
    cursor = 0
    for d, ex in enumerate(examples):
        x, y = ex.shifted()
        n = len(x)
        if cursor + n > seq_len:
            raise ValueError(f"examples of {cursor + n} input tokens do not fit one window of {seq_len}")
        ids[cursor:cursor + n], targets[cursor:cursor + n] = x, y
        pos[cursor:cursor + n] = np.arange(n)
        doc[cursor:cursor + n] = d
        cursor += n
    if cursor < seq_len:
        pos[cursor:] = np.arange(seq_len - cursor)
    return {k: torch.from_numpy(v)[None] for k, v in
            (("input_ids", ids), ("targets", targets), ("position_ids", pos), ("doc_ids", doc))}


def collate_padded(examples: Sequence[TokenizedExample], pad_id: int, padding_side: str = "right",
                   width: int | None = None) -> dict[str, torch.Tensor]:
    """Examples padded to the longest (or `width`): input_ids, targets, attention_mask [B, T].
    The mask comes from lengths, never from comparing ids with pad_id (pad may equal eos)."""
    if padding_side not in ("left", "right"):
        raise ConfigError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    rows = [ex.shifted() for ex in examples]
    T = width or max(len(x) for x, _ in rows)
    B = len(rows)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    targets = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        n = len(x)
        sl = slice(T - n, T) if padding_side == "left" else slice(0, n)
        ids[i, sl], targets[i, sl], mask[i, sl] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "targets": targets, "attention_mask": mask}


def collate_pairs(pairs: Sequence[TokenizedPair], pad_id: int, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Chosen rows then rejected rows, one padded batch [2B, T] (one forward for both)."""
    return collate_padded([p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id, padding_side)


def packed_attention_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """Boolean [B, 1, T, T]: causal and within the same example (padding attends to padding)."""
    T = doc_ids.shape[-1]
    causal = torch.ones(T, T, dtype=torch.bool, device=doc_ids.device).tril()
    same = doc_ids[:, :, None] == doc_ids[:, None, :]
    return (same & causal)[:, None]


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments for the model's forward from an SFT batch (packed or padded)."""
    if "doc_ids" in batch:
        return {"attention_mask": packed_attention_mask(batch["doc_ids"]), "position_ids": batch["position_ids"]}
    return {"attention_mask": batch["attention_mask"]}


# ---------------------------------------------------------------------------- batches
class ShuffledBatches:
    """Endless, resumable batches over a fixed list of units (examples, packed windows, pairs).

    Unit i of the run comes from epoch i // n in a permutation drawn from (seed, epoch), so the
    whole state is one integer (units consumed) and a resumed run sees exactly the same batches.
    Under DDP each rank takes its slice of every global batch of batch_size * world_size units.
    """

    def __init__(self, units: Sequence[Any], batch_size: int, collate: Callable[[list[Any]], dict[str, torch.Tensor]],
                 *, seed: int = 0, rank: int = 0, world_size: int = 1):
        if not units:
            raise DataError("no training examples")
        self.units, self.batch_size, self.collate = list(units), batch_size, collate
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.consumed = 0
        self._perm_epoch, self._perm = -1, None

    @property
    def units_per_epoch(self) -> int:
        return len(self.units)

    def _unit(self, i: int):
        n = len(self.units)
        epoch = i // n
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            self._perm_epoch = epoch
        return self.units[int(self._perm[i % n])]

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        G = self.batch_size * self.world_size
        start = self.consumed + self.rank * self.batch_size
        chosen = [self._unit(start + j) for j in range(self.batch_size)]
        self.consumed += G
        return self.collate(chosen)

    def state_dict(self) -> dict:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = int(state["consumed"])


def sft_batches(examples: Sequence[TokenizedExample], *, batch_size: int, seq_len: int, packing: bool, pad_id: int,
                seed: int = 0, rank: int = 0, world_size: int = 1) -> ShuffledBatches:
    """Training batches: packed windows [batch_size, seq_len] or padded examples [batch_size, longest]."""
    if packing:
        packs = [[examples[i] for i in p] for p in pack_examples(examples, seq_len)]

        def collate(units):
            rows = [collate_packed(u, seq_len, pad_id) for u in units]
            return {k: torch.cat([r[k] for r in rows]) for k in rows[0]}

        return ShuffledBatches(packs, batch_size, collate, seed=seed, rank=rank, world_size=world_size)
    return ShuffledBatches(list(examples), batch_size, lambda units: collate_padded(units, pad_id),
                           seed=seed, rank=rank, world_size=world_size)


def fixed_batches(units: Sequence[Any], batch_size: int,
                  collate: Callable[[list[Any]], dict[str, torch.Tensor]]) -> list:
    """Evaluation batches: every unit once, in order."""
    return [collate(list(units[i:i + batch_size])) for i in range(0, len(units), batch_size)]


def evaluated_units(units: Sequence[Any], batch_size: int, max_batches: int = 0) -> list:
    """The units an evaluation scores: all of them, or those of its first `max_batches` batches."""
    return list(units) if max_batches <= 0 else list(units[: max_batches * batch_size])


def pad_id_for(tokenizer) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ConfigError("the tokenizer has neither a pad nor an end-of-text token to pad with")
    return pad
