"""G NanoGPTs of one configuration as one module: every parameter stacked along a leading group axis.

`GroupedNanoGPT.logits(idx)` maps ids [G, B, T] to logits [G, B, T, V], model g reading only its own
slice of every parameter: the same arithmetic as `NanoGPT` (pre-LayerNorm blocks, causal attention,
tanh-GELU MLP, the output layer tied to the token embedding), done as batched matmuls so that one
kernel call serves all G models. At the benchmark's sizes (0.1–0.5M parameters) one model per step
leaves the cores waiting on per-op overhead; G models per call keep them busy.

A model's numbers must not depend on which group it trains in. Forward passes are per-row (the
batched matmul's rows and the attention's batches never mix members), but the weight gradient of a
linear layer reduces over all B·T rows of a member, and a batched matmul may split that reduction
differently for different G. `_GroupLinear` therefore computes weight gradients member by member,
with the same matrix product whatever G is (tests/test_train_group.py checks bit-identity).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lldmix_core.models.nanogpt import NanoGPT, NanoGPTConfig


class _GroupLinear(torch.autograd.Function):
    """y[g] = x[g] @ w[g]ᵀ + b[g] for x [G, N, in], w [G, out, in], b [G, out] or None → y [G, N, out]."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)) if b is not None else torch.bmm(x, w.transpose(1, 2))

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        dx = torch.bmm(dy, w)
        # one member at a time: the reduction over N rows is the same call whatever the group size
        dw = torch.stack([dy[g].t().mm(x[g]) for g in range(x.shape[0])])
        db = dy.sum(dim=1) if ctx.has_bias else None
        return dx, dw, db


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last dim with per-member gain/bias w, b [G, C]; x [G, N, C]."""
    return F.layer_norm(x, (x.shape[-1],)) * w.unsqueeze(1) + b.unsqueeze(1)


class GroupedNanoGPT(nn.Module):
    """Stacked parameters of G NanoGPTs (names as in NanoGPT, each with a leading [G] axis; the output
    layer is the tied token embedding, so `lm_head.weight` is not a separate parameter)."""

    def __init__(self, cfg: NanoGPTConfig, stacked: dict[str, torch.Tensor]):
        super().__init__()
        if cfg.dropout != 0.0 or not cfg.bias:
            raise ValueError("grouped training needs NanoGPT with dropout 0 and biases (the configurations lldmix trains)")
        self.config = cfg
        self.names = list(stacked)
        self.params = nn.ParameterDict({n.replace(".", "__"): nn.Parameter(t) for n, t in stacked.items()})
        self.size = next(iter(stacked.values())).shape[0]

    @classmethod
    def from_members(cls, modules: list[NanoGPT]) -> "GroupedNanoGPT":
        """A group holding copies of each module's parameters (the modules are left untouched)."""
        cfg = modules[0].config
        if any(m.config != cfg for m in modules):
            raise ValueError("a group's models must share one NanoGPT configuration")
        names = [n for n, _ in modules[0].named_parameters()]  # the tied lm_head is listed once, as wte
        per = [dict(m.named_parameters()) for m in modules]
        device = per[0][names[0]].device
        return cls(cfg, {n: torch.stack([p[n].detach().to(device) for p in per]).clone() for n in names})

    def p(self, name: str) -> torch.Tensor:
        return self.params[name.replace(".", "__")]

    def named_stacked(self) -> list[tuple[str, torch.Tensor]]:
        """(NanoGPT parameter name, stacked parameter [G, ...]) in NanoGPT's order."""
        return [(n, self.p(n)) for n in self.names]

    @torch.no_grad()
    def copy_to(self, g: int, module: NanoGPT) -> None:
        """Write member g's parameters into `module` (in place; its tied output layer follows wte)."""
        own = dict(module.named_parameters())
        for n in self.names:
            own[n].copy_(self.p(n)[g])

    @torch.no_grad()
    def copy_from(self, g: int, module: NanoGPT) -> None:
        """Load `module`'s parameters into member g."""
        own = dict(module.named_parameters())
        for n in self.names:
            self.p(n)[g].copy_(own[n])

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits [G, B, T, V] for token ids [G, B, T] (T ≤ block_size)."""
        G, B, T = idx.shape
        cfg = self.config
        if G != self.size:
            raise ValueError(f"ids for {G} models given to a group of {self.size}")
        if T > cfg.block_size:
            raise ValueError(f"sequence of {T} tokens exceeds block_size {cfg.block_size}")
        C, H = cfg.n_embd, cfg.n_head
        wte = self.p("wte.weight")  # [G, V, C]
        tok = torch.gather(wte, 1, idx.reshape(G, B * T, 1).expand(G, B * T, C))
        x = tok + self.p("wpe.weight")[:, :T].repeat(1, B, 1)  # [G, B·T, C], rows ordered (b, t)
        for i in range(cfg.n_layer):
            q = f"blocks.{i}."
            a = _layer_norm(x, self.p(q + "ln_1.weight"), self.p(q + "ln_1.bias"))
            qkv = _GroupLinear.apply(a, self.p(q + "attn.c_attn.weight"), self.p(q + "attn.c_attn.bias"))
            # [G, B·T, C] -> [G·B, heads, T, C/heads]: attention never mixes members or sequences
            heads = (t.reshape(G * B, T, H, C // H).transpose(1, 2) for t in qkv.split(C, dim=2))
            y = F.scaled_dot_product_attention(*heads, is_causal=True)
            y = y.transpose(1, 2).reshape(G, B * T, C)
            x = x + _GroupLinear.apply(y, self.p(q + "attn.c_proj.weight"), self.p(q + "attn.c_proj.bias"))
            a = _layer_norm(x, self.p(q + "ln_2.weight"), self.p(q + "ln_2.bias"))
            m = F.gelu(_GroupLinear.apply(a, self.p(q + "mlp.c_fc.weight"), self.p(q + "mlp.c_fc.bias")), approximate="tanh")
            x = x + _GroupLinear.apply(m, self.p(q + "mlp.c_proj.weight"), self.p(q + "mlp.c_proj.bias"))
        x = _layer_norm(x, self.p("ln_f.weight"), self.p("ln_f.bias"))
        return _GroupLinear.apply(x, wte, None).view(G, B, T, -1)  # the output layer: the tied embedding


def group_losses(group: GroupedNanoGPT, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy per member [G], nats/token, for ids x, targets y [G, B, T]."""
    logits = group.logits(x)
    G = logits.shape[0]
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="none")
    return nll.view(G, -1).mean(dim=1)
