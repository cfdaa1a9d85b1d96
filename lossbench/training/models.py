"""Sequence encoders for next-item prediction: SASRec (causal Transformer) and GRU4Rec.

Both map left-padded histories [B, T] (0 = padding) to hidden states [B, T, hidden]; the
state at position t summarises items 0..t. Scores over the catalogue are the dot product
with the item embeddings (shared input/output embeddings, as SASRec):
logits [B, n_items + 1], column 0 (padding) set to -inf. Losses live in `losses.py`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.config import ModelConfig


class Block(nn.Module):
    """A post-LayerNorm Transformer block (as SASRec / RecBole): attention, then a GELU MLP."""

    def __init__(self, hidden: int, n_heads: int, inner: int, dropout: float,
                 attn_dropout: float) -> None:
        super().__init__()
        self.n_heads, self.attn_dropout = n_heads, attn_dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), nn.Linear(inner, hidden))
        self.ln2 = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x [B, T, H]; mask [B, 1, T, T], True where query t may attend to key s."""
        B, T, H = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, H // self.n_heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0)
        x = self.ln1(x + self.drop(self.proj(att.transpose(1, 2).reshape(B, T, H))))
        return self.ln2(x + self.drop(self.mlp(x)))


class SASRec(nn.Module):
    """Self-attentive sequential recommendation (Kang & McAuley, 2018), learned positions."""

    def __init__(self, n_items: int, max_len: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, cfg.hidden)
        self.ln = nn.LayerNorm(cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.n_heads, cfg.inner, cfg.dropout,
                                          attention_dropout(cfg))
                                    for _ in range(cfg.n_layers))
        self.item_bias = item_bias_parameter(n_items, cfg)
        self.apply(init_weights)

    def forward(self, inputs: Tensor) -> Tensor:
        """inputs [B, T] -> hidden [B, T, H]. Keys that are padding are masked, except that a
        padding position attends to itself (so no attention row is empty)."""
        inputs = inputs[:, -self.pos_emb.num_embeddings:]
        T = inputs.shape[1]
        pos = torch.arange(T, device=inputs.device)
        x = self.drop(self.ln(self.item_emb(inputs) + self.pos_emb(pos)))
        causal = torch.ones(T, T, dtype=torch.bool, device=inputs.device).tril()
        mask = causal & ((inputs != 0)[:, None, :] | torch.eye(T, dtype=torch.bool,
                                                               device=inputs.device))
        mask = mask[:, None]
        for block in self.blocks:
            x = block(x, mask)
        return x

    def logits(self, hidden: Tensor) -> Tensor:
        """hidden [..., H] -> scores [..., n_items + 1], padding column = -inf."""
        return score_items(hidden, self.item_emb.weight, self.item_bias)

    def last_shared(self) -> nn.Module:
        """The last layer both losses reach (`last_shared_layer`): the last block's second
        LayerNorm, whose output is the sequence representation."""
        return self.blocks[-1].ln2


class GRU4Rec(nn.Module):
    """GRU4Rec (Hidasi et al., 2016) as in RecBole: embedding, dropout, GRU, linear."""

    def __init__(self, n_items: int, max_len: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)
        self.drop = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.hidden, cfg.inner, num_layers=cfg.n_layers, batch_first=True)
        self.dense = nn.Linear(cfg.inner, cfg.hidden)
        self.max_len = max_len
        self.item_bias = item_bias_parameter(n_items, cfg)
        self.apply(init_weights)

    def forward(self, inputs: Tensor) -> Tensor:
        """inputs [B, T] -> hidden [B, T, H]. Left padding runs through the GRU as item 0,
        whose embedding is fixed at zero."""
        inputs = inputs[:, -self.max_len:]
        out, _ = self.gru(self.drop(self.item_emb(inputs)))
        return self.dense(out)

    def logits(self, hidden: Tensor) -> Tensor:
        """hidden [..., H] -> scores [..., n_items + 1], padding column = -inf."""
        return score_items(hidden, self.item_emb.weight, self.item_bias)

    def last_shared(self) -> nn.Module:
        """The last layer both losses reach (`last_shared_layer`): the output projection."""
        return self.dense


def last_shared_layer(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the model's last shared layer, for strategies that balance
    gradient norms there (GradNorm: `Strategy.needs_shared_layer`). L_main (scores of the
    representation against the item embeddings) and L_aux (SupCon on the representation of
    two views) both start from the sequence representation, the encoder's last output; the
    last parameters both reach are those of the layer that makes it: SASRec's last block's
    `ln2` (post-LN: the block ends in it), GRU4Rec's `dense`. The item embeddings are reached
    by both too, but they are the first layer (and L_main's output layer), not the last
    shared one; the item bias is L_main's alone."""
    return list(model.last_shared().parameters())


def attention_dropout(cfg: ModelConfig) -> float:
    """The dropout on attention probabilities: `attn_dropout`, or `dropout` when negative."""
    return cfg.attn_dropout if cfg.attn_dropout >= 0 else cfg.dropout


def item_bias_parameter(n_items: int, cfg: ModelConfig) -> nn.Parameter | None:
    """The per-item score bias (`item_bias`), zeros [n_items + 1]; None when off."""
    return nn.Parameter(torch.zeros(n_items + 1)) if cfg.item_bias else None


def score_items(hidden: Tensor, item_weight: Tensor, item_bias: Tensor | None = None) -> Tensor:
    """Dot-product scores of every item, plus the item's bias when there is one:
    scores[..., i] = hidden . e_i (+ c_i); the padding item can never be recommended."""
    scores = hidden @ item_weight.T
    if item_bias is not None:
        scores = scores + item_bias
    scores[..., 0] = -math.inf
    return scores


def init_weights(module: nn.Module) -> None:
    """Normal(0, 0.02) for linear and embedding weights, zero biases (as RecBole's SASRec)."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def build_model(n_items: int, max_len: int, cfg: ModelConfig) -> nn.Module:
    """A freshly initialised model; call under `torch.manual_seed(init seed)`."""
    model = SASRec if cfg.name == "sasrec" else GRU4Rec
    return model(n_items, max_len, cfg)
