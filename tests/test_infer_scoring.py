"""Log-likelihood scoring: the context/continuation token boundary, agreement with a direct
computation, batch independence, and the per-token log-probabilities DPO/PPO use."""

from __future__ import annotations

import pytest
import torch

from llmlab.config import ModelConfig
from llmlab.errors import ConfigError
from llmlab.infer import encode_pair, score_continuations, sequence_logprobs
from llmlab.model import TransformerLM


@pytest.fixture
def model(small_tokenizer, torch_threads):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=small_tokenizer.vocab_size, context_length=64, n_layer=2, n_head=2, d_model=32,
                      init_std=0.2)  # peaky attention: context matters
    return TransformerLM(cfg).double().eval()


def direct_logprob(model, context_ids, continuation_ids) -> float:
    ids = torch.tensor([context_ids + continuation_ids[:-1]])  # the last token is only a target
    with torch.no_grad():
        logp = model(ids).logits[0].log_softmax(-1)
    n = len(context_ids)
    return sum(logp[n - 1 + i, t].item() for i, t in enumerate(continuation_ids))


def test_trailing_space_of_the_context_moves_to_the_continuation(small_tokenizer):
    tok = small_tokenizer
    ctx, cont = encode_pair(tok, "Sentiment: ", "positive")
    assert tok.decode(ctx) == "Sentiment:" and tok.decode(cont) == " positive"
    # The continuation is tokenised as it would be in running text: " positive", not " " + "positive".
    assert cont == tok.encode("Sentiment: positive")[len(tok.encode("Sentiment:")):]


def test_merges_across_the_boundary_fall_back_to_separate_encoding(small_tokenizer):
    tok = small_tokenizer
    context, continuation = "He lives in Pinebro", "ok"
    whole = tok.encode(context + continuation)
    assert whole[:len(tok.encode(context))] != tok.encode(context)  # the boundary really merges here
    ctx, cont = encode_pair(tok, context, continuation)
    assert ctx == tok.encode(context) and tok.decode(cont) == "ok"


def test_scores_equal_a_direct_computation_and_do_not_depend_on_the_batch(model, small_tokenizer):
    tok = small_tokenizer
    contexts = ["Once upon a time,", "Tom lives in Pinebrook. He works as a", "Rex", "Sentiment: "]
    continuations = [" Mia had a dog.", " baker", " liked to run", "positive"]
    batched = score_continuations(model, tok, contexts, continuations, batch_size=4)
    for (c, x), (lp, n, greedy) in zip(zip(contexts, continuations), batched):
        ctx, cont = encode_pair(tok, c, x)
        assert lp == pytest.approx(direct_logprob(model, ctx, cont), abs=1e-9)
        assert n == len(cont)
        single = score_continuations(model, tok, c, x)[0]
        assert single[0] == pytest.approx(lp, abs=1e-9) and single[2] == greedy


def test_greedy_flag_is_true_exactly_for_the_models_own_argmax(model, small_tokenizer):
    from llmlab.infer import score_token_pairs

    ctx = small_tokenizer.encode("Once upon a time")
    ids = list(ctx)
    with torch.no_grad():
        for _ in range(3):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    greedy = ids[len(ctx):]
    other = greedy[:-1] + [(greedy[-1] + 1) % small_tokenizer.vocab_size]
    (_, _, yes), (_, _, no) = score_token_pairs(model, [(ctx, greedy), (ctx, other)])
    assert yes and not no


def test_long_inputs_lose_context_from_the_left(model, small_tokenizer):
    ctx = list(range(5, 5 + 100))  # longer than the 64-token context
    cont = [7, 8, 9]
    from llmlab.infer import score_token_pairs

    (lp, n, _), = score_token_pairs(model, [(ctx, cont)])
    kept = (ctx + cont)[-65:]
    assert n == 3 and lp == pytest.approx(direct_logprob(model, kept[:-3], cont), abs=1e-9)
    with pytest.raises(ConfigError, match="more than the context"):
        score_token_pairs(model, [(ctx, list(range(70)))])
    with pytest.raises(ConfigError, match="contexts but"):
        score_continuations(model, small_tokenizer, ["a", "b"], ["c", "d", "e"])


def test_sequence_logprobs_masks_and_gradients(model):
    ids = torch.tensor([[3, 4, 5, 6, 7], [0, 0, 8, 9, 10]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    completion = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 1, 1]])
    per_token = sequence_logprobs(model, ids, mask)
    with torch.no_grad():
        first = model(ids[:1]).logits[0].log_softmax(-1)
        second = model(ids[1:, 2:]).logits[0].log_softmax(-1)  # the left-padded row on its own
    assert per_token[0, 0] == 0 and per_token[1, :3].abs().sum() == 0  # no context / padding: not scored
    assert per_token[0, 3].item() == pytest.approx(first[2, 6].item(), abs=1e-9)
    assert per_token[1, 4].item() == pytest.approx(second[1, 10].item(), abs=1e-9)
    total = sequence_logprobs(model, ids, mask, completion_mask=completion, reduction="sum")
    assert total[0].item() == pytest.approx((first[2, 6] + first[3, 7]).item(), abs=1e-9)
    mean = sequence_logprobs(model, ids, mask, completion_mask=completion, reduction="mean")
    assert torch.allclose(mean, total / 2)
    total.sum().backward()  # DPO/PPO train through it
    assert model.embed.weight.grad is not None
    with pytest.raises(ConfigError, match="reduction"):
        sequence_logprobs(model, ids, reduction="max")
