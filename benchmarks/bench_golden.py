"""Throughput of the integer golden reference (images per second).

Two networks on 1,000 random digit-sized inputs (8x8 pixels, values 0..16 as in scikit-learn's
digits): a 64-128-10 dense network and a small conv network (conv 3x3 s1 p1 8ch -> conv 3x3 s2
p1 16ch -> dense 10). Prints images/s for T = 1 and T = 4. Issue target: >= 10,000 images/s for
the dense network on a 2-core machine.
"""

import time

import numpy as np
import torch

from golden.fixtures import calibrate_thresholds
from golden.ir import Conv2d, Dense, InputSpec, Network
from golden.reference import run


def dense_net(rng, T, N):
    l1 = Dense(name="fc1", inputs=("input",), threshold=1, levels=N,
               weight=rng.integers(-127, 128, (64, 128)), bias=rng.integers(-64, 64, 128))
    l2 = Dense(name="fc2", inputs=("fc1",), threshold=1, levels=1,
               weight=rng.integers(-127, 128, (128, 10)), bias=rng.integers(-64, 64, 10),
               readout=True)
    return Network(input=InputSpec(shape=(64,), in_bits=5), timesteps=T, layers=(l1, l2))


def conv_net(rng, T, N):
    c1 = Conv2d(name="conv1", inputs=("input",), threshold=1, levels=N, padding=1,
                weight=rng.integers(-127, 128, (1, 3, 3, 8)), bias=rng.integers(-64, 64, 8))
    c2 = Conv2d(name="conv2", inputs=("conv1",), threshold=1, levels=N, stride=2, padding=1,
                weight=rng.integers(-127, 128, (8, 3, 3, 16)), bias=rng.integers(-64, 64, 16))
    fc = Dense(name="fc", inputs=("conv2",), threshold=1, levels=1,
               weight=rng.integers(-127, 128, (16 * 4 * 4, 10)), bias=rng.integers(-64, 64, 10),
               readout=True)
    return Network(input=InputSpec(shape=(1, 8, 8), in_bits=5), timesteps=T,
                   layers=(c1, c2, fc))


def bench(name, net, x, repeats=5):
    run(net, x[:10])                       # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = run(net, x, record_events=False)
        best = min(best, time.perf_counter() - t0)
    events = sum(int(c["ev_out"].sum()) for c in res.counters.values())
    print(f"{name:<28} {x.shape[0] / best:>12,.0f} images/s   ({best * 1e3:7.1f} ms per "
          f"{x.shape[0]} images, {events / x.shape[0]:.0f} events/image)")


def main():
    # Small tensors: one intra-op thread is faster than two fighting over 2 busy cores.
    torch.set_num_threads(1)
    print(f"golden reference throughput (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(1000, 64))
    x[rng.random(x.shape) < 0.4] = 0       # digits are ~50 % zero pixels
    for T, N in [(1, 4), (4, 1)]:
        net = calibrate_thresholds(dense_net(rng, T, N), rng)
        bench(f"dense 64-128-10 T={T} N={N}", net, x)
        net = calibrate_thresholds(conv_net(rng, T, N), rng)
        bench(f"conv 8x8 (2 conv + fc) T={T} N={N}", net, x.reshape(1000, 1, 8, 8))


if __name__ == "__main__":
    main()
