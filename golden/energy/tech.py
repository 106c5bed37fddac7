"""The technology table: every energy constant of the analytic models, in one place.

Defaults follow ENERGY.md: Horowitz (ISSCC 2014) 45 nm operations as used by Lemaire et al.,
a linear fit of the 45 nm SRAM access energy against capacity, the packed 64-bit alternative,
and Dampfhoffer's normalised constants (seed 002, Table 3.1, §3.4).

A user overrides any field from a TOML (``tomllib``) or JSON file with the same sections::

    [ops]                 # Horowitz 45 nm, pJ
    bits = 32             # which adder/multiplier width the Lemaire model uses (8 or 32)
    add_pj = {8 = 0.03, 32 = 0.1}
    mul_pj = {8 = 0.2, 32 = 3.1}

    [sram]
    model = "linear"      # "linear": E = slope·(elements·bits) + offset; "packed64"
    slope_pj_per_bit = 1.09e-5
    offset_pj = 13.2
    packed_pj = 10.0      # one packed_bits-wide access
    packed_bits = 64
    fifo_depth = 1000     # event FIFO depth when the hardware's is unknown

    [widths]              # bits of a stored element when the network does not say
    weight = 16
    bias = 16
    potential = 16
    activation = 16
    event = 16

    [dampfhoffer]
    e_ac_45 = 0.13 ...    # see :class:`Dampfhoffer`

Energies are in pJ inside the models; reports are in nJ per inference.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass, field

from ..errors import MlsnnError

__all__ = ["Ops", "Sram", "Widths", "Dampfhoffer", "Tech", "DEFAULT", "load_tech"]


def _num(owner, name, value, *, positive=False, minimum=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MlsnnError(f"tech: field '{owner}.{name}' must be a finite number, not {value!r}")
    if positive and value <= 0:
        raise MlsnnError(f"tech: field '{owner}.{name}' must be > 0, not {value!r}")
    if minimum is not None and value < minimum:
        raise MlsnnError(f"tech: field '{owner}.{name}' must be >= {minimum}, not {value!r}")
    return value


def _int(owner, name, value, *, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MlsnnError(f"tech: field '{owner}.{name}' must be an integer >= {minimum}, "
                         f"not {value!r}")
    return value


@dataclass(frozen=True)
class Ops:
    """Arithmetic energies in pJ (Horowitz 45 nm), per operand width in bits.

    Members
    -------
    bits : the width the Lemaire model uses (32 as in Lemaire et al. and its public code).
    add_pj, mul_pj : ``{bits: pJ}``; a MAC costs one multiply plus one add.
    """

    bits: int = 32
    add_pj: dict = field(default_factory=lambda: {8: 0.03, 32: 0.1})
    mul_pj: dict = field(default_factory=lambda: {8: 0.2, 32: 3.1})

    def __post_init__(self):
        for name in ("add_pj", "mul_pj"):
            table = getattr(self, name)
            if not isinstance(table, dict) or not table:
                raise MlsnnError(f"tech: field 'ops.{name}' must be a table {{bits = pJ}}")
            clean = {}
            for k, v in table.items():
                try:
                    kb = int(k)
                except (TypeError, ValueError):
                    raise MlsnnError(f"tech: field 'ops.{name}' has a key {k!r} that is not a "
                                     f"width in bits") from None
                clean[kb] = float(_num("ops", f"{name}.{k}", v, minimum=0))
            object.__setattr__(self, name, clean)
        _int("ops", "bits", self.bits)
        for name in ("add_pj", "mul_pj"):
            if self.bits not in getattr(self, name):
                raise MlsnnError(f"tech: field 'ops.bits' is {self.bits} but 'ops.{name}' has "
                                 f"no entry for it (has {sorted(getattr(self, name))})")

    @property
    def add(self):
        """pJ of one accumulate (ACC) at :attr:`bits`."""
        return self.add_pj[self.bits]

    @property
    def mul(self):
        return self.mul_pj[self.bits]

    @property
    def mac(self):
        """pJ of one multiply-accumulate: one multiply and one add."""
        return self.mul + self.add


@dataclass(frozen=True)
class Sram:
    """SRAM access energy in pJ per access of one element.

    ``model = "linear"``: ``E = slope_pj_per_bit · (elements · bits) + offset_pj``, a least-squares
    line through Horowitz's 64-bit accesses of 8 KiB (10 pJ), 32 KiB (20 pJ) and 1 MiB (100 pJ)
    SRAMs, where the capacity is that of the memory holding the data (Lemaire et al.).
    ``model = "packed64"``: ``E = packed_pj · bits / packed_bits``: one ``packed_bits``-wide
    access of ``packed_pj`` carries several narrow elements, whatever the capacity.
    """

    model: str = "linear"
    slope_pj_per_bit: float = 1.09e-5
    offset_pj: float = 13.2
    packed_pj: float = 10.0
    packed_bits: int = 64
    fifo_depth: int = 1000

    def __post_init__(self):
        if self.model not in ("linear", "packed64"):
            raise MlsnnError(f"tech: field 'sram.model' must be 'linear' or 'packed64', "
                             f"not {self.model!r}")
        _num("sram", "slope_pj_per_bit", self.slope_pj_per_bit, minimum=0)
        _num("sram", "offset_pj", self.offset_pj, minimum=0)
        _num("sram", "packed_pj", self.packed_pj, minimum=0)
        _int("sram", "packed_bits", self.packed_bits)
        _int("sram", "fifo_depth", self.fifo_depth)

    def access(self, elements, bits):
        """pJ of one read or write of one ``bits``-wide element in a memory of ``elements``."""
        if self.model == "packed64":
            return self.packed_pj * bits / self.packed_bits
        return self.slope_pj_per_bit * elements * bits + self.offset_pj

    def word(self, elements, bits, lanes):
        """pJ of one access of a word of ``lanes`` elements (docs/lanes.md). ``"linear"``: the
        line is fitted to 64-bit accesses, so a word of up to ``packed_bits`` bits costs one
        access of the memory's capacity and a wider word one per started ``packed_bits``
        (``ceil(lanes·bits / packed_bits)``; with one lane every element is its own access, as
        before). ``"packed64"``: elements are packed already: ``lanes`` times an element."""
        if self.model == "packed64":
            return lanes * self.access(elements, bits)
        return max(1, -(-lanes * bits // self.packed_bits)) * self.access(elements, bits)

    def element(self, elements, bits, lanes=1):
        """pJ per element read or written in words of ``lanes`` elements: ``word / lanes``."""
        if lanes == 1:
            return self.access(elements, bits)
        return self.word(elements, bits, lanes) / lanes


@dataclass(frozen=True)
class Widths:
    """Bits of a stored element, used when the network itself does not say (``--arch``)."""

    weight: int = 16
    bias: int = 16
    potential: int = 16
    activation: int = 16
    event: int = 16

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _int("widths", f.name, getattr(self, f.name))


@dataclass(frozen=True)
class Dampfhoffer:
    """Normalised energies (1 = one MAC) of seed 002, Table 3.1 and §3.4.

    Members
    -------
    e_ac_45, e_sram_45 : 45 nm, 8 bit (§3.3: naive ANN, IF+inst, LIF+inst).
    e_ac_65, e_sram_65, e_reg_65 : 65 nm, 16 bit, Eyeriss (§3.4: reuse, sparsity, Eyeriss).
    gamma : rate of zero input activations (AlexNet/VGG16 conv layers, ImageNet).
    gated : power of a gated (zero-iact) PE operation relative to a normal one in Eyeriss v1.
    rf_alexnet, rf_vgg16 : Eyeriss v1 effective reuse factor of iacts and psums.
    eyeriss_v2_gain : Eyeriss v2 energy efficiency over v1 on non-pruned AlexNet.
    e_ac_8bit, e_sram_8bit, e_reg_8bit : the 8-bit variant of §3.4 (§3.4.3, "with 8 bit data
        precision ... 1.38, 0.30, 0.16, 0.43, 0.38"): Horowitz's 45 nm 8-bit add 0.03 pJ and an
        8 KiB SRAM's 64-bit access of 10 pJ (1.25 pJ per byte) over an 8-bit MAC of
        0.2 + 0.03 pJ, unrounded (Table 3.1 prints them as 0.13 and 5.4), and a register
        access of one MAC as in Eyeriss (Table 3.1 gives none for 8 bits).
    """

    e_ac_45: float = 0.13
    e_sram_45: float = 5.4
    e_ac_65: float = 0.06
    e_sram_65: float = 6.0
    e_reg_65: float = 1.0
    gamma: float = 0.58
    gated: float = 0.55
    rf_alexnet: float = 80.0
    rf_vgg16: float = 25.0
    eyeriss_v2_gain: float = 1.15
    e_ac_8bit: float = 0.03 / 0.23
    e_sram_8bit: float = 1.25 / 0.23
    e_reg_8bit: float = 1.0

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _num("dampfhoffer", f.name, getattr(self, f.name), minimum=0)
        if not 0 <= self.gamma <= 1:
            raise MlsnnError(f"tech: field 'dampfhoffer.gamma' must be in [0, 1], "
                             f"not {self.gamma}")


@dataclass(frozen=True)
class Tech:
    """The whole technology table (see the module docstring for the file format)."""

    ops: Ops = field(default_factory=Ops)
    sram: Sram = field(default_factory=Sram)
    widths: Widths = field(default_factory=Widths)
    dampfhoffer: Dampfhoffer = field(default_factory=Dampfhoffer)
    name: str = "45nm (Horowitz 2014; Lemaire et al.)"

    def to_json(self):
        d = dataclasses.asdict(self)
        for k in ("add_pj", "mul_pj"):
            d["ops"][k] = {str(b): v for b, v in d["ops"][k].items()}
        return d

    def replace(self, **sections):
        """A copy with some sections' fields changed: ``tech.replace(sram={"model": ...})``."""
        return _merge(self, sections, "override")


DEFAULT = Tech()

_SECTIONS = {"ops": Ops, "sram": Sram, "widths": Widths, "dampfhoffer": Dampfhoffer}


def _merge(tech, doc, where):
    if not isinstance(doc, dict):
        raise MlsnnError(f"{where}: the technology table must be a table of sections")
    changes = {}
    for key, value in doc.items():
        if key == "name":
            if not isinstance(value, str):
                raise MlsnnError(f"{where}: field 'name' must be a string")
            changes["name"] = value
            continue
        cls = _SECTIONS.get(key)
        if cls is None:
            raise MlsnnError(f"{where}: unknown section '{key}' (known: name, "
                             f"{', '.join(_SECTIONS)})")
        if not isinstance(value, dict):
            raise MlsnnError(f"{where}: section '{key}' must be a table")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise MlsnnError(f"{where}: section '{key}' has unknown field '{unknown[0]}' "
                             f"(known: {', '.join(sorted(known))})")
        current = getattr(tech, key)
        merged = {f.name: getattr(current, f.name) for f in dataclasses.fields(cls)}
        for k, v in value.items():
            if isinstance(merged.get(k), dict) and isinstance(v, dict):
                merged[k] = {**merged[k], **{int(b) if str(b).isdigit() else b: x
                                             for b, x in v.items()}}
            else:
                merged[k] = v
        changes[key] = cls(**merged)
    return dataclasses.replace(tech, **changes)


def load_tech(path, base=DEFAULT):
    """Read a TOML (``.toml``) or JSON file of overrides on top of ``base``.

    Raises
    ------
    MlsnnError
        On a missing or malformed file, an unknown section or field, or a bad value.
    """
    if not os.path.isfile(path):
        raise MlsnnError(f"tech file not found: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        if path.endswith(".json"):
            doc = json.loads(raw.decode())
        else:
            doc = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MlsnnError(f"{path}: malformed technology file ({e})") from None
    return _merge(base, doc, path)
