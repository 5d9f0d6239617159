"""Causal attention for CPU training with dropout (the Trajectory Transformer's, as SDPA computes it):
blocked over query rows with a hand-written backward. See `TrainingAttention`."""

from __future__ import annotations

import torch

from seqrl.cpu.dropout import drop_entries

# query rows per block of the blocked causal attention below: blocks above the diagonal are skipped
_ATTENTION_ROWS = 40


class TrainingAttention(torch.autograd.Function):
    """dropout(softmax(q k^T / sqrt(hd) + mask)) v for CPU training, with a hand-written backward.

    The same math as `F.scaled_dot_product_attention(..., dropout_p=p)`, which on CPU takes its unfused
    math path whenever dropout is on. Here:
    - queries go in blocks of `_ATTENTION_ROWS` rows, each against only the keys its last row can see,
      which skips the blocks above the diagonal (~40% of the [T, T] work at T = 159);
    - the keep mask is cheap to draw and apply (see `seqrl/cpu/dropout.py`);
    - the 1 / (1 - p) rescale and the 1 / sqrt(hd) scale go on the small [B*H, T, hd] tensors;
    - softmax runs in place, and its backward is folded with dropout's: with dropped = probs * keep,
      d scores = grad * dropped - probs * rowsum(grad * dropped), so the keep mask is never stored.
    Saves the probabilities and the dropped probabilities: 8 bytes per computed attention entry.
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, p):
        B, H, T, hd = q.shape
        S = k.shape[2]
        qs = q.reshape(B * H, T, hd) * hd**-0.5
        kf, vf = k.reshape(B * H, S, hd), v.reshape(B * H, S, hd)
        kt = kf.transpose(1, 2)
        blocks, ys, saved = [], [], []
        for i0 in range(0, T, _ATTENTION_ROWS):
            i1 = min(i0 + _ATTENTION_ROWS, T)
            e = S - T + i1  # the block's last query sees keys 0 .. e - 1 at most
            probs = torch.bmm(qs[:, i0:i1], kt[:, :, :e]).add_(mask[i0:i1, :e])
            torch.softmax(probs, -1, out=probs)  # row-wise kernel: in place is exact
            dropped = drop_entries(probs, p)
            ys.append(torch.bmm(dropped, vf[:, :e]))
            blocks.append((i0, i1, e))
            saved += [probs, dropped]
        y = (torch.cat(ys, dim=1) if len(ys) > 1 else ys[0]).mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(qs, kf, vf, *saved)
        ctx.blocks, ctx.p = blocks, p
        return y.view(B, H, T, hd)

    @staticmethod
    def backward(ctx, grad_y):
        qs, kf, vf, *saved = ctx.saved_tensors
        B, H, T, hd = grad_y.shape
        S = kf.shape[1]
        g = grad_y.reshape(B * H, T, hd) * (1.0 / (1.0 - ctx.p))
        grad_q = torch.empty_like(qs)
        grad_k = grad_v = None
        # last block first: it sees every key, so it initialises grad_k / grad_v
        for n in reversed(range(len(ctx.blocks))):
            i0, i1, e = ctx.blocks[n]
            probs, dropped = saved[2 * n], saved[2 * n + 1]
            gy = g[:, i0:i1]
            gv = torch.bmm(dropped.transpose(1, 2), gy)
            # softmax backward with the dropout mask folded in: ds = grad * dropped - probs * rowsum(grad * dropped)
            ds = torch.bmm(gy, vf[:, :e].transpose(1, 2)).mul_(dropped)
            ds.addcmul_(probs, ds.sum(-1, keepdim=True), value=-1.0)
            grad_q[:, i0:i1] = torch.bmm(ds, kf[:, :e])
            gk = torch.bmm(ds.transpose(1, 2), qs[:, i0:i1])
            if grad_k is None:
                grad_k, grad_v = gk, gv  # e == S here
            else:
                grad_k[:, :e] += gk
                grad_v[:, :e] += gv
        grad_q.mul_(hd**-0.5)
        return grad_q.view(B, H, T, hd), grad_k.view(B, H, S, hd), grad_v.view(B, H, S, hd), None, None
