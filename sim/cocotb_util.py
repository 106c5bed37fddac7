"""cocotb 2.x helpers shared by the benches (imported inside the simulator process).

Timing discipline: inputs change only at the falling edge of ``clk``; every output is sampled
in the ``ReadOnly`` phase that follows, when all combinational logic has settled. A stream
transfer happens at the next rising edge when ``valid`` and ``ready`` were both high in that
sample. One falling edge + one ReadOnly per cycle keeps the benches fast.
"""

from __future__ import annotations

import json
import os
import random

__all__ = ["Source", "Sink", "load_config", "write_json", "uint"]


def uint(handle):
    """Unsigned value of a signal (1-bit signals give a ``Logic``, wider ones a ``LogicArray``)."""
    v = handle.value
    return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


def load_config():
    with open(os.environ["MLSNN_BENCH"]) as f:
        return json.load(f)


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


class Source:
    """Offers integer payload words on ``<prefix>__valid/payload/ready`` with random gaps."""

    def __init__(self, dut, prefix, words, *, rng=None, gap=0.0):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.words = list(words)
        self.pos = 0
        self.rng = rng or random.Random(0)
        self.gap = gap
        self.offering = False
        self.valid.value = 0

    def extend(self, words):
        self.words.extend(words)

    @property
    def done(self):
        return self.pos == len(self.words)

    def drive(self):
        """At the falling edge."""
        if self.offering:
            return
        if self.pos < len(self.words) and not (self.gap and self.rng.random() < self.gap):
            self.payload.value = self.words[self.pos]
            self.valid.value = 1
            self.offering = True
        else:
            self.valid.value = 0

    def sample(self):
        """In ReadOnly; returns True when the offered word is taken at the next edge."""
        if self.offering and int(self.ready.value):
            self.pos += 1
            self.offering = False
            return True
        return False


class Sink:
    """Accepts words on ``<prefix>__valid/payload/ready`` with random stalls."""

    def __init__(self, dut, prefix, *, rng=None, stall=0.0):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.rng = rng or random.Random(0)
        self.stall = stall
        self.enabled = True
        self._ready = 0
        self.ready.value = 0

    def drive(self):
        r = int(self.enabled and not (self.stall and self.rng.random() < self.stall))
        if r != self._ready:
            self.ready.value = r
            self._ready = r

    def sample(self):
        """In ReadOnly; the payload word taken at the next edge, or None."""
        if self._ready and int(self.valid.value):
            return uint(self.payload)
        return None
