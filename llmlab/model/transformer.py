"""The decoder-only transformer language model.

One class covers the GPT-2 family (learned positions, LayerNorm, GELU, biases, tied embeddings)
and the Llama family (RoPE, RMSNorm, SwiGLU, grouped-query attention, untied head); the config
chooses. Blocks are pre-norm: x + attn(norm(x)), then x + mlp(norm(x)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmlab.config import IGNORE_INDEX, ModelConfig
from llmlab.model.attention import CausalSelfAttention
from llmlab.model.kv_cache import KVCache
from llmlab.model.layers import RotaryEmbedding, make_mlp, make_norm
from llmlab.model.moe import MoEMLP, RouterStats


@dataclass
class ModelOutput:
    logits: torch.Tensor  # [batch, seq (or the kept positions), vocab]
    loss: torch.Tensor | None = None
    kv_cache: KVCache | None = None
    attentions: list[torch.Tensor] | None = None  # per layer [batch, heads, seq, keys]
    hidden_states: torch.Tensor | None = None  # final-norm output [batch, seq, d_model]
    # Mixture of experts only: the router losses to add to the training loss (coefficients applied,
    # not in `loss`, so evaluation reports the plain cross-entropy), and the unweighted per-layer
    # means of each with expert utilisation [n_experts], for logging.
    aux_loss: torch.Tensor | None = None
    router: dict[str, torch.Tensor] | None = None


class Block(nn.Module):
    def __init__(self, config: ModelConfig, moe: bool = False):
        super().__init__()
        self.attn_norm = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = make_norm(config)
        self.mlp = MoEMLP(config) if moe else make_mlp(config)
        self.moe = moe
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, rope, mask, kv_cache, layer_idx, need_weights, router_stats=None):
        """router_stats: a list an MoE layer appends its RouterStats to."""
        a, weights = self.attn(self.attn_norm(x), rope, mask, kv_cache, layer_idx, need_weights)
        x = x + self.dropout(a)
        h = self.mlp(self.mlp_norm(x))
        if self.moe:
            h, stats = h
            if router_stats is not None:
                router_stats.append(stats)
        x = x + self.dropout(h)
        return x, weights

    def down_projections(self) -> list[nn.Linear]:
        """The MLP's residual output projections (every expert's, in an MoE layer)."""
        if not self.moe:
            return [self.mlp.down]
        mlps = [*self.mlp.experts, *([self.mlp.shared] if self.mlp.shared is not None else [])]
        return [m.down for m in mlps]


class TransformerLM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_embed = nn.Embedding(config.context_length, config.d_model) if config.position == "learned" else None
        self.rope = (
            RotaryEmbedding(config.head_dim, config.context_length, config.rope_theta)
            if config.position == "rope" else None
        )
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, kind == "moe") for kind in config.mlp_kinds())
        self.final_norm = make_norm(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.reset_parameters()

    # ------------------------------------------------------------------ init
    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02) weights, zero biases, and residual output projections
        scaled by 1/sqrt(2 * n_layer) so the residual stream's variance does not grow with depth."""
        std = self.config.init_std
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
        for block in self.blocks:
            for proj in (block.attn.out, *block.down_projections()):
                nn.init.normal_(proj.weight, mean=0.0, std=std / math.sqrt(2 * self.config.n_layer))

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        targets: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        num_logits_to_keep: int = 0,
    ) -> ModelOutput:
        """Logits for `input_ids` [batch, seq] and, optionally, the loss.

        attention_mask: [batch, past + seq] with 1 for real tokens and 0 for padding (Hugging Face
            convention), or a boolean [batch, 1, seq, past + seq] mask (True = may attend), e.g.
            block-diagonal for packed sequences (then pass matching `position_ids`).
        labels: [batch, seq]; the loss is the next-token cross-entropy of logits[:, :-1] against
            labels[:, 1:], ignoring IGNORE_INDEX (-100).
        targets: [batch, seq], already shifted (targets[:, t] is the token after input_ids[:, t]);
            the same loss without the shifting copy, for the training loop.
        kv_cache: a KVCache to read past keys/values from and append this step's to.
        num_logits_to_keep: if > 0, only the last that many positions get logits (decoding needs one).
        """
        stats: list[RouterStats] | None = [] if self.config.n_experts else None
        hidden, attentions = self.forward_hidden(
            input_ids, attention_mask, position_ids=position_ids, kv_cache=kv_cache,
            output_attentions=output_attentions, router_stats=stats,
        )
        head_in = hidden[:, -num_logits_to_keep:] if num_logits_to_keep > 0 else hidden
        logits = self.lm_head(head_in)
        loss = None
        if labels is not None or targets is not None:
            if num_logits_to_keep > 0:
                raise ValueError("a loss needs logits for every position; do not combine it with num_logits_to_keep")
            if targets is None:
                # Shift the (small) labels rather than slicing the (huge) logits: logits[:, :-1] would
                # copy [batch, seq, vocab] forward and again in backward. The last position's target
                # is IGNORE_INDEX, so the mean is over exactly the same tokens.
                targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return ModelOutput(
            logits=logits,
            loss=loss,
            kv_cache=kv_cache,
            attentions=attentions,
            hidden_states=hidden if output_hidden_states else None,
            **(self.router_losses(stats) if stats else {}),
        )

    def router_losses(self, stats: list[RouterStats]) -> dict:
        """ModelOutput's aux_loss and router fields from the MoE layers' stats (means over layers)."""
        aux = torch.stack([s.aux_loss for s in stats]).mean()
        z = torch.stack([s.z_loss for s in stats]).mean()
        cfg = self.config
        return dict(
            aux_loss=cfg.router_aux_loss_coef * aux + cfg.router_z_loss_coef * z,
            router={"aux_loss": aux.detach(), "z_loss": z.detach(),
                    "utilisation": torch.stack([s.utilisation for s in stats]).mean(0)},
        )

    def forward_hidden(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        position_ids: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        output_attentions: bool = False,
        router_stats: list[RouterStats] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """The final-norm hidden states [batch, seq, d_model] (what heads for rewards and values read).
        router_stats: a list each MoE layer appends its RouterStats to."""
        B, T = input_ids.shape
        past = kv_cache.length if kv_cache is not None else 0
        if past + T > self.config.context_length:
            raise ValueError(
                f"sequence of {past + T} tokens exceeds the model's context length of {self.config.context_length}"
            )
        if position_ids is None:
            position_ids = default_position_ids(attention_mask, past, T, input_ids.device)
        mask = build_attention_mask(attention_mask, T, past, input_ids.device)
        masks = self.layer_masks(mask, kv_cache, past, T, input_ids.device)

        x = self.embed(input_ids)
        if self.pos_embed is not None:
            x = x + self.pos_embed(position_ids)
        rope = self.rope(position_ids, x.dtype) if self.rope is not None else None
        x = self.dropout(x)
        attentions = [] if output_attentions else None
        for i, block in enumerate(self.blocks):
            x, weights = block(x, rope, masks[i], kv_cache, i, output_attentions, router_stats)
            if attentions is not None:
                attentions.append(weights)
        if kv_cache is not None:
            kv_cache.advance(T)
        return self.final_norm(x), attentions

    def layer_masks(self, mask, kv_cache: KVCache | None, past: int, T: int, device) -> list[torch.Tensor | None]:
        """Each layer's attention mask: `mask` for full attention; for a sliding layer, `mask` cut to
        its window over the keys it attends (a rolling cache's slots). Built once per kind."""
        if self.config.sliding_window is None:
            return [mask] * len(self.blocks)
        built: dict[tuple[int | None, bool], torch.Tensor | None] = {}
        out = []
        for i, window in enumerate(self.config.attention_windows()):
            rolling = kv_cache is not None and kv_cache.rolling(i)
            key = (window, rolling)
            if key not in built:
                if window is None or (not rolling and past + T <= window):  # the window hides nothing
                    built[key] = mask
                elif rolling and T == 1 and past >= window - 1 and mask is None:
                    built[key] = None  # decoding with a full rolling buffer: every slot is in the window
                else:
                    cols = kv_cache.key_columns(i, T) if kv_cache is not None else None
                    built[key] = window_mask(mask, cols, window, past, T, device)
            out.append(built[key])
        return out

    # ------------------------------------------------------------------ helpers
    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        return KVCache.for_model(self, batch_size, max_len)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Distinct parameters (a tied head counts once); without embeddings: minus token and
        learned position embeddings (Kaplan's N)."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.embed.weight.numel()
            if self.pos_embed is not None:
                n -= self.pos_embed.weight.numel()
        return n

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device


def default_position_ids(attention_mask, past: int, T: int, device) -> torch.Tensor:
    if attention_mask is not None and attention_mask.dim() == 2:
        # Left padding: a row's first real token gets position 0.
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:past + T]
    return torch.arange(past, past + T, device=device).unsqueeze(0)


def window_mask(mask, cols: torch.Tensor | None, window: int, past: int, T: int, device) -> torch.Tensor:
    """Boolean [B or 1, 1, T, S] mask of a sliding-window layer. mask: the full-attention mask over
    columns 0 .. past + T - 1 (None: plain causal); cols: the column of each key attended (-1: an
    empty slot), None for all columns in order. Query q sees column c iff q - window < c <= q
    (Mistral's window: itself and window - 1 before it) and `mask` allows it."""
    if cols is None:
        cols = torch.arange(past + T, device=device)
    q = torch.arange(past, past + T, device=device)[:, None]
    ok = ((cols >= 0) & (cols <= q) & (cols > q - window))[None, None]
    if mask is not None:
        ok = ok & mask[..., cols.clamp(min=0)]
    return ok


def build_attention_mask(attention_mask, T: int, past: int, device) -> torch.Tensor | None:
    """Boolean [B or 1, 1, T, past+T] mask, or None when plain causal attention is exact."""
    S = past + T
    if attention_mask is None:
        if past == 0 or T == 1:
            return None  # is_causal (fresh) or attend-to-everything (one new token)
        return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=past)[None, None]
    if attention_mask.dim() == 4:
        return attention_mask.to(torch.bool)
    if attention_mask.shape[-1] != S:
        raise ValueError(f"attention_mask covers {attention_mask.shape[-1]} positions, expected {S} (past + new)")
    keys_ok = attention_mask.to(torch.bool)[:, None, None, :]
    causal = torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=past)
    # A padding query would see no key at all (NaN in softmax); let every query see itself.
    # Those positions' outputs are never used.
    self_pos = torch.zeros(T, S, dtype=torch.bool, device=device)
    self_pos[torch.arange(T, device=device), past + torch.arange(T, device=device)] = True
    return (causal & keys_ok) | self_pos
