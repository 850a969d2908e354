"""SASRec-style causal self-attention sequence model (Kang & McAuley, ICDM 2018).

One backbone (``encode``) feeds the training ``forward`` (a representation at every
position, for a loss over all items) and the serving ``score`` (the last position's
representation dotted with candidate item embeddings). Input and output embeddings
are tied. Everything is tensors in, tensors out, so ``torch.onnx.export`` traces it.

Every path takes an optional item ``table`` (N', H) used instead of ``item_emb``: the
exported serving graph reads item vectors from it, so a scorer can add rows for items
the version never saw (cold start) without a new graph.

Histories are LEFT-padded with 0 to ``max_len``: the most recent item always sits at
position ``max_len - 1`` in training and in serving.

With ``repeat_bonus`` every score also gets a learned weight per recency for each time the
candidate occurs in the history (0 = the latest item), added to the similarity before the
temperature: the same term in training's loss over all items and in the served graph.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from reckon.models.training.config import ModelConfig

__all__ = ["SASRec", "latest_recency", "prefix_recency"]


def latest_recency(history: Tensor) -> Tensor:
    """history (B, T) right-aligned -> (B, T) clicks before the latest (T-1-s), -1 at padding."""
    t = history.shape[1]
    rec = (t - 1) - torch.arange(t, device=history.device)  # not a negative-step arange: ONNX export mis-sizes it
    return torch.where(history > 0, rec, -1)


def prefix_recency(inputs: Tensor) -> tuple[Tensor, Tensor]:
    """inputs (B, T) -> the history of each position t, the items (B, T, T) at positions s and
    their recency t - s (-1 after t and at padding): what training's position t has seen."""
    t = inputs.shape[1]
    idx = torch.arange(t, device=inputs.device)
    rec = idx.unsqueeze(1) - idx.unsqueeze(0)  # (T, T): [t, s] = t - s
    items = inputs.unsqueeze(1).expand(-1, t, -1)  # (B, T, T): [b, t, s] = inputs[b, s]
    return items, torch.where((rec >= 0) & (items > 0), rec, -1)


class _CausalSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, allowed: Tensor, last_only: bool = False) -> Tensor:
        # x: (B, T, H); allowed: (B, 1, T, T) bool, True where query t may attend key s.
        # last_only: queries from the last position only -> (B, 1, H) (serving's final block).
        b, t, h = x.shape
        d = h // self.heads
        # The fused projection's weight rows, applied one by one: the same math as
        # qkv(x).split(h), but exported as three MatMuls instead of one and a Split copy
        # (Split was ~10 % of serving time), and only the last query when that is all used.
        w, bias = self.qkv.weight, self.qkv.bias
        q = F.linear(x[:, -1:] if last_only else x, w[:h], bias[:h])
        k, v = F.linear(x, w[h:2 * h], bias[h:2 * h]), F.linear(x, w[2 * h:], bias[2 * h:])
        if last_only:
            allowed = allowed[:, :, -1:]
        tq = q.shape[1]
        q = q.reshape(b, tq, self.heads, d).transpose(1, 2)  # (B, heads, Tq, d)
        k = k.reshape(b, t, self.heads, d).transpose(1, 2)  # (B, heads, T, d)
        v = v.reshape(b, t, self.heads, d).transpose(1, 2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d)  # (B, heads, Tq, T)
        att = att.masked_fill(~allowed, float("-inf"))
        att = self.drop(torch.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(b, tq, h)  # (B, Tq, H)
        return self.out(y)


class _Block(nn.Module):
    """Pre-layernorm transformer block: x + attn(ln(x)), then x + ffn(ln(x))."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(hidden)
        self.attn = _CausalSelfAttention(hidden, heads, dropout)
        self.ln_ffn = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, allowed: Tensor, last_only: bool = False) -> Tensor:
        y = self.drop(self.attn(self.ln_attn(x), allowed, last_only))
        x = (x[:, -1:] if last_only else x) + y  # (B, T or 1, H)
        return x + self.drop(self.ffn(self.ln_ffn(x)))


class SASRec(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.item_emb = nn.Embedding(c.num_items + 1, c.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(c.max_len, c.hidden)
        self.query_emb = (
            nn.Embedding(c.query_buckets + 1, c.hidden, padding_idx=0) if c.query_buckets else None
        )
        self.emb_drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(_Block(c.hidden, c.heads, c.dropout) for _ in range(c.blocks))
        self.ln_out = nn.LayerNorm(c.hidden)
        self.apply(self._init_weights)
        # Index r = the item seen r clicks before the latest; zeros: no bonus until learned.
        self.repeat_weight = nn.Parameter(torch.zeros(c.max_len)) if c.repeat_bonus else None

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # Small normal init (as RecBole): tied embeddings start with near-zero logits.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    # --- backbone ---------------------------------------------------------------
    def _embed(self, items: Tensor, table: Tensor | None) -> Tensor:
        return self.item_emb(items) if table is None else F.embedding(items, table)

    def encode(self, history: Tensor, last_only: bool = False, table: Tensor | None = None) -> Tensor:
        """history: (B, T) int64, left-padded with 0 -> (B, T, H), or (B, 1, H) with
        ``last_only`` (serving: the final block computes only the last position, which is
        all that scoring reads; earlier blocks still run everywhere as its keys/values)."""
        t = history.shape[1]
        valid = history > 0  # (B, T)
        positions = torch.arange(self.config.max_len - t, self.config.max_len, device=history.device)
        x = self._embed(history, table) + self.pos_emb(positions).unsqueeze(0)  # (B, T, H)
        x = self.emb_drop(x) * valid.unsqueeze(-1)
        idx = torch.arange(t, device=history.device)
        # Built from comparisons, not tril/eye: onnxruntime has no bool EyeLike/Trilu kernels.
        causal = idx.unsqueeze(1) >= idx.unsqueeze(0)  # (T, T) query t sees keys <= t
        eye = idx.unsqueeze(1) == idx.unsqueeze(0)
        # Keys must be real items; padding queries attend to themselves so no row is empty.
        allowed = (causal & valid.unsqueeze(1)) | eye  # (B, T, T)
        allowed = allowed.unsqueeze(1)  # (B, 1, T, T)
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            last = last_only and i == n - 1
            x = block(x, allowed, last) * (valid[:, -1:] if last else valid).unsqueeze(-1)
        return self.ln_out(x)

    def _query_vector(self, query_terms: Tensor) -> Tensor:
        """query_terms: (..., Q) int64 hashed term ids, 0 = pad -> (..., H) masked mean."""
        assert self.query_emb is not None
        mask = (query_terms > 0).unsqueeze(-1).to(self.query_emb.weight.dtype)  # (..., Q, 1)
        summed = (self.query_emb(query_terms) * mask).sum(dim=-2)  # (..., H)
        return summed / mask.sum(dim=-2).clamp(min=1.0)

    def _finish(self, rep: Tensor, query_terms: Tensor | None) -> Tensor:
        if self.query_emb is not None and query_terms is not None:
            rep = rep + self._query_vector(query_terms)
        if self.config.normalize:
            rep = F.normalize(rep, dim=-1) / self.config.temperature
        return rep

    def _repeat_scale(self) -> float:
        return 1.0 / self.config.temperature if self.config.normalize else 1.0

    def _repeat_weights(self, recency: Tensor) -> Tensor:
        """recency (..., T), < 0 = not in the history -> each position's bonus (..., T), in logits."""
        assert self.repeat_weight is not None
        seen = recency >= 0
        return self.repeat_weight[recency.clamp(0, self.config.max_len - 1)] * seen * self._repeat_scale()

    def add_repeat_all(self, logits: Tensor, history: Tensor, recency: Tensor) -> Tensor:
        """logits (N, V) over the vocabulary, history (N, T) item ids, recency (N, T) of each
        (r clicks before the row's latest; < 0 = not in the row's history) -> logits with
        the repeat bonus added in place (unchanged without ``repeat_bonus``)."""
        if self.repeat_weight is None:
            return logits
        bonus = self._repeat_weights(recency)
        return logits.scatter_add_(1, history * (recency >= 0), bonus.to(logits.dtype))  # unseen -> column 0 (padding)

    def repeat_for(self, history: Tensor, candidates: Tensor) -> Tensor | None:
        """history (B, T) right-aligned, candidates (B, C) -> each candidate's bonus (B, C), or None."""
        if self.repeat_weight is None:
            return None
        bonus = self._repeat_weights(latest_recency(history))  # (B, T), 0 at padding
        hits = candidates.unsqueeze(-1) == history.unsqueeze(1)  # (B, C, T)
        return (hits.to(bonus.dtype) * bonus.unsqueeze(1)).sum(-1)

    def candidate_scores(self, rep: Tensor, history: Tensor, candidates: Tensor, table: Tensor | None = None) -> Tensor:
        """rep (B, H) of ``history`` (B, T), candidates (B, C) -> scores (B, C), the repeat bonus included."""
        scores = self.logits_for(rep, candidates, table)
        bonus = self.repeat_for(history, candidates)
        return scores if bonus is None else scores + bonus

    def _item_vectors(self, items: Tensor | None = None, table: Tensor | None = None) -> Tensor:
        vectors = self.item_emb.weight if items is None else self._embed(items, table)
        return F.normalize(vectors, dim=-1) if self.config.normalize else vectors

    # --- training ---------------------------------------------------------------
    def forward(self, history: Tensor, query_terms: Tensor | None = None) -> Tensor:
        """history (B, T), query_terms (B, T, Q) or None -> representations (B, T, H).

        Position t's representation predicts the item that follows history[:, t].
        """
        return self._finish(self.encode(history), query_terms)

    def logits_all(self, rep: Tensor) -> Tensor:
        """rep (N, H) -> logits over the whole vocabulary (N, num_items + 1); column 0 = pad."""
        return rep @ self._item_vectors().T

    def logits_for(self, rep: Tensor, items: Tensor, table: Tensor | None = None) -> Tensor:
        """rep (..., H), items (..., C) -> logits (..., C)."""
        # A batched matrix product, not a (..., C, H) product then a sum: one MatMul in the
        # exported graph instead of materialising every candidate's products.
        return (self._item_vectors(items, table) @ rep.unsqueeze(-1)).squeeze(-1)  # (..., C, H) @ (..., H, 1)

    # --- serving ----------------------------------------------------------------
    def represent_last(self, history: Tensor, query_terms: Tensor | None = None,
                       table: Tensor | None = None) -> Tensor:
        """history (B, T), query_terms (B, Q) or None -> (B, H) for the next item."""
        return self._finish(self.encode(history, last_only=True, table=table)[:, -1, :], query_terms)

    def score(
        self, history: Tensor, candidates: Tensor, query_terms: Tensor | None = None, table: Tensor | None = None
    ) -> Tensor:
        """history (B, T) int64, candidates (B, C) int64, query_terms (B, Q), table (N', H) or
        None (``item_emb``) -> scores (B, C)."""
        return self.candidate_scores(self.represent_last(history, query_terms, table), history, candidates, table)
