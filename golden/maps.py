"""The golden maps of the sum kinds: how an event stream becomes per-neuron currents.

:mod:`golden.reference` integrates every layer through ``layer.golden_map(info)``; this module
holds the maps of the dense and conv2d layers (:class:`LinearMap`) and of the barrier join
(:class:`StreamWeightMap`); a kind in a module of its own defines its map there
(:class:`golden.pooling.PoolMap`). A map offers ``fanout`` (per input index), ``has_bias``,
``bias`` (per neuron), ``apply(z, stream, sign=0)`` (the currents of a ``[B, n_in]`` event
tensor; ``sign`` ±1 keeps only the positive or negative weights, for the overflow bounds) and,
for the exact saturation path, ``matrix()``. Imported lazily by the kinds, so that
:mod:`golden.ir` and :mod:`golden.reference` do not import each other.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .ir import Dense

__all__ = ["LinearMap", "StreamWeightMap"]


class LinearMap:
    """The golden map of a dense or conv2d layer: flat input stream → flat per-neuron currents
    (``apply``), the bias per neuron, the fan-out per input index."""

    has_bias = True

    def __init__(self, layer, info):
        self.layer = layer
        self.info = info
        self.fanout = layer.fanout_counts(info.in_shape)
        w = torch.from_numpy(layer.weight.astype(np.float64))
        if isinstance(layer, Dense):
            self.w = {0: w, 1: torch.clamp(w, min=0), -1: torch.clamp(w, max=0)}
            self.bias = torch.from_numpy(layer.bias.astype(np.float64))
        else:
            wc = w.permute(3, 0, 1, 2).contiguous()   # [C_out, C_in, K, K]
            self.w = {0: wc, 1: torch.clamp(wc, min=0), -1: torch.clamp(wc, max=0)}
            co, ho, wo = info.out_shape
            b = torch.from_numpy(layer.bias.astype(np.float64))
            self.bias = b[:, None, None].expand(co, ho, wo).reshape(-1)

    def matrix(self):
        """The layer's map as a dense ``[n_in, n_out]`` float64 matrix (row j: the weights of
        input j's targets, 0 elsewhere)."""
        if isinstance(self.layer, Dense):
            return self.w[0]
        n_in = self.info.n_in
        return torch.cat([self.apply(torch.eye(n_in, dtype=torch.float64)[i:i + 256], 0)
                          for i in range(0, n_in, 256)])

    def apply(self, z, stream, sign=0):
        if isinstance(self.layer, Dense):
            return z @ self.w[sign]
        B = z.shape[0]
        c, h, w_ = self.info.in_shape
        out = F.conv2d(z.reshape(B, c, h, w_), self.w[sign], stride=self.layer.stride,
                       padding=self.layer.padding)
        return out.reshape(B, -1)


class StreamWeightMap:
    """The golden map of a barrier join: ``P[j] += z·stream_weights[s]`` (identity fan-out)."""

    has_bias = False
    bias = None

    def __init__(self, layer, info):
        self.layer = layer
        self.fanout = np.ones(info.n_in, dtype=np.int64)

    def apply(self, z, stream, sign=0):
        out = z * float(self.layer.stream_weights[stream])
        if sign == 1:
            return torch.clamp(out, min=0)
        if sign == -1:
            return torch.clamp(out, max=0)
        return out

