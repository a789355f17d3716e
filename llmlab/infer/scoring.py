"""Log-likelihood scoring: how probable does the model find a text, or a continuation of a context?

This is the other half of inference (no sampling): label scoring for few-shot classification,
perplexity, hallucination and CrowS-Pairs-style bias probes (evaluation), and the policy/reference
log-probabilities of DPO and PPO (alignment) all come from here.

`score_continuations` follows lm-evaluation-harness's `loglikelihood`: for each (context,
continuation) pair it returns the summed log-probability of the continuation's tokens given the
context, their number, and whether greedy decoding would have produced exactly them.

The token boundary: BPE attaches a space to the word after it, so "Sentiment: " + "positive" must
be scored as "Sentiment:" + " positive" (the continuation token is " positive", not "positive"
after a lone " " token). Like lm-eval, trailing whitespace of the context moves to the
continuation, and the continuation's tokens are those of encode(context + continuation) beyond
encode(context). If merges cross the boundary (encode(context) is not a prefix of the whole, e.g.
"The ca" + "t"), we fall back to encode(context) + encode(continuation), so the context stays
exactly as given and the scored tokens decode to exactly the continuation.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from llmlab.config import IGNORE_INDEX
from llmlab.errors import ConfigError


# ---------------------------------------------------------------------------- token-level
def _upcast(t: torch.Tensor) -> torch.Tensor:
    """Half precision to float32 for log-softmax; float32/float64 unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(targets[..., t]) under logits[..., t, :]; any shape [..., V] / [...]. Works under
    autograd (DPO/PPO) and uses cross_entropy, which never materialises the full log-softmax."""
    flat = F.cross_entropy(
        _upcast(logits.reshape(-1, logits.size(-1))), targets.reshape(-1), reduction="none", ignore_index=IGNORE_INDEX
    )
    return -flat.view(targets.shape)


def sequence_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    completion_mask: torch.Tensor | None = None,
    reduction: str = "none",
) -> torch.Tensor:
    """Per-token log-probabilities of `input_ids` [B, T] under `model`, each token given the ones
    before it (what DPO and PPO need; gradients flow if enabled).

    Returns [B, T] with unscored positions set to 0, or with reduction="sum"/"mean" the [B]
    totals over the scored positions: those where `completion_mask` (else `attention_mask`, else
    everything) is 1 and the previous token is real (so never a row's first token). Padding may be
    on either side; positions follow the attention mask.
    """
    if reduction not in ("none", "sum", "mean"):
        raise ConfigError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")
    logits = model(input_ids, attention_mask=attention_mask).logits
    # Shift the (small) targets, not the (huge) logits: slicing logits[:, :-1] would copy them.
    next_lp = token_logprobs(logits, F.pad(input_ids[:, 1:], (0, 1), value=IGNORE_INDEX))
    lp = F.pad(next_lp[:, :-1], (1, 0), value=0.0)  # position t: log p(x_t | x_<t)
    mask = completion_mask if completion_mask is not None else attention_mask
    scored = torch.ones_like(input_ids, dtype=lp.dtype) if mask is None else mask.to(lp.dtype).clone()
    # A token is scored only if the token before it is real: never position 0, nor the first real
    # token of a left-padded row (it follows padding, not context).
    real = torch.ones_like(input_ids, dtype=lp.dtype) if attention_mask is None else attention_mask.to(lp.dtype)
    scored = scored * F.pad(real[:, :-1], (1, 0), value=0.0)
    lp = lp * scored
    if reduction == "none":
        return lp
    total = lp.sum(dim=-1)
    return total if reduction == "sum" else total / scored.sum(dim=-1).clamp(min=1)


# ---------------------------------------------------------------------------- context / continuation
def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) with the token boundary handled as the module docstring says."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    context_ids = tokenizer.encode(context) if context else []
    if not context_ids:
        # Nothing to condition on: start from a boundary token, as lm-eval does.
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise ConfigError("an empty context needs a bos or end-of-text token to condition on")
        context_ids = [start]
        whole = context_ids + tokenizer.encode(continuation, add_special_tokens=False)
    else:
        whole = tokenizer.encode(context + continuation)
    if whole[:len(context_ids)] == context_ids and len(whole) > len(context_ids):
        return context_ids, whole[len(context_ids):]
    return context_ids, tokenizer.encode(continuation, add_special_tokens=False)


@torch.inference_mode()
def score_continuations(
    model,
    tokenizer,
    contexts: str | Sequence[str],
    continuations: str | Sequence[str],
    *,
    batch_size: int = 16,
) -> list[tuple[float, int, bool]]:
    """For each (context, continuation) pair: (sum of the continuation tokens' log-probabilities,
    their number, whether greedy decoding would produce exactly them).

    A single string for either argument is paired with every item of the other. Inputs longer than
    the context window keep their continuation whole and lose context tokens from the left.
    """
    if isinstance(contexts, str) and isinstance(continuations, str):
        contexts, continuations = [contexts], [continuations]
    elif isinstance(contexts, str):
        contexts = [contexts] * len(continuations)
    elif isinstance(continuations, str):
        continuations = [continuations] * len(contexts)
    if len(contexts) != len(continuations):
        raise ConfigError(f"{len(contexts)} contexts but {len(continuations)} continuations")
    pairs = [encode_pair(tokenizer, c, x) for c, x in zip(contexts, continuations)]
    return score_token_pairs(model, pairs, batch_size=batch_size)


@torch.inference_mode()
def score_token_pairs(
    model, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], *, batch_size: int = 16
) -> list[tuple[float, int, bool]]:
    """`score_continuations` on already-tokenised (context ids, continuation ids) pairs."""
    C = model.config.context_length
    device = next(model.parameters()).device
    inputs = []
    for i, (ctx, cont) in enumerate(pairs):
        if not cont:
            raise ConfigError(f"continuation {i} is empty; there is nothing to score")
        if len(cont) > C:
            raise ConfigError(f"continuation {i} has {len(cont)} tokens, more than the context of {C}")
        if not ctx:
            raise ConfigError(f"context {i} has no tokens; the first continuation token needs something to follow")
        seq = (list(ctx) + list(cont))[-(C + 1):]  # the last token is only a target
        inputs.append((seq[:-1], len(cont)))

    results: list[tuple[float, int, bool] | None] = [None] * len(pairs)
    # Longest first: similar lengths share a batch, so little compute goes to padding.
    order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i][0]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        T = max(len(inputs[i][0]) for i in chunk)
        keep = max(inputs[i][1] for i in chunk)
        ids = torch.zeros(len(chunk), T, dtype=torch.long)
        am = torch.zeros(len(chunk), T, dtype=torch.long)
        for row, i in enumerate(chunk):
            seq = inputs[i][0]
            ids[row, T - len(seq):] = torch.tensor(seq)
            am[row, T - len(seq):] = 1
        # Left padding puts every row's continuation at the end, so only the last `keep`
        # positions need logits (a [batch, keep, vocab] tensor instead of [batch, T, vocab]).
        logits = model(
            ids.to(device), attention_mask=am.to(device) if not bool(am.all()) else None, num_logits_to_keep=keep,
        ).logits
        for row, i in enumerate(chunk):
            n = inputs[i][1]
            cont = torch.tensor(pairs[i][1], device=device)
            lp = _upcast(logits[row, keep - n:]).log_softmax(dim=-1)
            total = float(lp.gather(-1, cont[:, None]).sum())
            greedy = bool((lp.argmax(dim=-1) == cont).all())
            results[i] = (total, n, greedy)
    return results
