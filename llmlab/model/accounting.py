"""Parameter and FLOP accounting from a config alone (no weights needed, so 175B is instant)."""

from __future__ import annotations

from dataclasses import dataclass

from llmlab.config import ModelConfig


@dataclass
class ParamCount:
    total: int
    embedding: int  # token (+ learned position) embeddings; an untied head counts as non-embedding

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding


def count_parameters(cfg: ModelConfig, active: bool = False) -> ParamCount:
    """All parameters, or with active=True those one token uses (an MoE layer's router, its
    experts_per_token experts and the shared expert)."""
    d, hd = cfg.d_model, cfg.head_dim
    q_dim, kv_dim = cfg.n_head * hd, cfg.n_kv_head * hd
    attn = d * (q_dim + 2 * kv_dim) + q_dim * d
    if cfg.attention_bias:
        attn += q_dim + 2 * kv_dim + d
    n_mats = 3 if cfg.mlp == "swiglu" else 2
    mlp = n_mats * d * cfg.d_ff
    if cfg.mlp_bias:
        mlp += (n_mats - 1) * cfg.d_ff + d
    norm = d if cfg.norm == "rmsnorm" else 2 * d
    per_kind = {"dense": mlp}
    if cfg.n_experts:
        used = cfg.experts_per_token if active else cfg.n_experts
        per_kind["moe"] = d * cfg.n_experts + (used + int(cfg.shared_expert)) * mlp
    mlps = sum(per_kind[k] for k in cfg.mlp_kinds())
    embedding = cfg.vocab_size * d + (cfg.context_length * d if cfg.position == "learned" else 0)
    head = 0 if cfg.tie_embeddings else cfg.vocab_size * d
    total = embedding + cfg.n_layer * (attn + 2 * norm) + mlps + norm + head
    return ParamCount(total=total, embedding=embedding)


def flops_per_token(cfg: ModelConfig, seq_len: int | None = None, training: bool = True) -> float:
    """FLOPs to process one token: 2N forward (N = non-embedding parameters, as in Kaplan et al.
    2020) plus attention's score and value products, 2 * 2 * n_layer * seq_len * d_attn forward
    (PaLM, Appendix B, without discounting the causal mask; a sliding window caps seq_len). Training costs 3x forward (6N + ...)."""
    T = seq_len or cfg.context_length
    n = count_parameters(cfg, active=True)  # MoE: the experts a token goes through
    # The head's matmul is real work even when its weights are tied to the embedding.
    matmul_params = n.non_embedding + (cfg.vocab_size * cfg.d_model if cfg.tie_embeddings else 0)
    # A sliding-window layer's query attends to at most `window` keys.
    keys = sum(min(T, w) if w is not None else T for w in cfg.attention_windows())
    forward = 2 * matmul_params + 4 * keys * cfg.n_head * cfg.head_dim
    return 3 * forward if training else forward


def kaplan_flops_per_token(cfg: ModelConfig) -> float:
    """The scaling-law convention C = 6N per training token (N non-embedding), used by C = 6ND."""
    return 6 * count_parameters(cfg).non_embedding
