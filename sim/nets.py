"""Small hand-shaped IR networks for testbenches and benchmarks of the residual hardware.

:func:`small_resnet` is a miniature ResNet with *chained* identity blocks (the output of one join
is the residual input of the next, as in ResNet18's stages), so that the SEW avalanche builds up
from join to join (seed 000 §4.3, Fig. 4); :func:`golden.fixtures.random_network` starts every
block with a fresh convolution instead. :func:`as_barrier` turns the SEW joins of a network into
barrier joins with the same weights everywhere else.
"""

from __future__ import annotations


import numpy as np

from golden.fixtures import calibrate_thresholds
from golden.ir import INPUT, Barrier, Conv2d, Dense, InputSpec, Join, Network

__all__ = ["small_resnet", "as_barrier"]


def small_resnet(seed, *, join="sew", blocks=2, channels=2, size=5, levels=2, timesteps=1,
                 in_bits=4, classes=4, calibrate=True):
    """stem conv 3×3 → ``blocks`` × [conv 3×3 → conv 3×3, identity shortcut, join] → dense
    readout, random integer weights (seeded), thresholds calibrated on random inputs.

    ``join`` is ``"sew"`` or ``"barrier"`` (θ_b calibrated, N_b = ``levels``, weights (1, 1)).
    """
    rng = np.random.default_rng(seed)
    shape = (1, size, size)

    def weights(shape_):
        w = rng.integers(-3, 4, size=shape_)
        w[rng.random(shape_) < 0.2] = 0
        return w.astype(np.int64)

    def conv(name, src, c_in):
        return Conv2d(name=name, inputs=(src,), threshold=1, levels=levels,
                      weight=weights((c_in, 3, 3, channels)),
                      bias=rng.integers(-2, 3, size=channels).astype(np.int64),
                      stride=1, padding=1)

    layers = [conv("stem", INPUT, 1)]
    prev = "stem"
    for i in range(blocks):
        a = conv(f"b{i}a", prev, channels)
        b = conv(f"b{i}b", a.name, channels)
        if join == "sew":
            j = Join(name=f"sum{i}", inputs=(b.name, prev), mode="sew")
        else:
            j = Join(name=f"sum{i}", inputs=(b.name, prev), mode="barrier", threshold=1,
                     levels=levels)
        layers += [a, b, j]
        prev = j.name
    n = channels * size * size
    layers.append(Dense(name="fc", inputs=(prev,), threshold=1, levels=1,
                        weight=weights((n, classes)), bias=np.zeros(classes, np.int64),
                        readout=True))
    net = Network(input=InputSpec(shape=shape, in_bits=in_bits), timesteps=timesteps,
                  layers=tuple(layers), name=f"resnet-{join}-{seed}")
    return calibrate_thresholds(net, rng) if calibrate else net


def as_barrier(net, *, lossless=True, levels=None, threshold=1):
    """``net`` with every SEW join replaced by a barrier join (stream weights 1, v0 0).

    ``lossless=True``: θ_b = 1 and N_b = the largest possible sum of the two inputs, so the
    barrier emits z_direct + z_residual exactly: every downstream potential is unchanged and
    only the number of events differs. Otherwise θ_b = ``threshold`` and N_b = ``levels``.
    """
    layers = []
    for layer in net.layers:
        if layer.passthrough:
            n_b = net.info(layer.name).zmax_out if lossless else levels
            layer = Barrier(name=layer.name, inputs=layer.inputs, scale=layer.scale,
                            threshold=1 if lossless else threshold, levels=n_b)
        layers.append(layer)
    return Network(input=net.input, timesteps=net.timesteps, layers=tuple(layers),
                   name=net.name + "-barrier")
