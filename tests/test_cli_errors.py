"""Bad input on the `mlsnn` command line (issue 11): one line on stderr, a non-zero exit, no
traceback, and no long work (training, simulation, synthesis) before the error.

The first tests reproduce each class of defect the user found; the parametrised test at the end
drives every command that :func:`flows.cli._discover` finds (so a new command is covered at once)
with a malformed input file, an unwritable output path and a NaN for each numeric option.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from flows import cli
from golden import fixtures, ir

BAD_OUT = "/proc/mlsnn-x/out"
#: Seconds any one bad-input case may take (the errors must come before the long work).
LIMIT = 10


class _TooSlow(BaseException):      # not caught by a command's own "except Exception"
    pass


def _alarm(signum, frame):
    raise _TooSlow(f"no error within {LIMIT} s: the command started its long work")


def run_cli(capsys, argv):
    """``mlsnn ARGV`` in this process: (exit status, stdout, stderr)."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT)
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:             # argparse usage errors
        rc = e.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(capsys, argv):
    """Run; assert a non-zero exit and exactly one error line; return that line."""
    rc, out, err = run_cli(capsys, argv)
    cmd = str(argv[0])
    lines = err.strip().splitlines()
    assert rc not in (0, None), (argv, out, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith((f"mlsnn {cmd}: error: ", "mlsnn: error: ")), lines[0]
    return lines[0]


# -- shared files -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A valid network, inputs, checkpoint, and malformed versions of each."""
    root = tmp_path_factory.mktemp("cli_errors")
    net = fixtures.random_network(1)
    ir.save(net, root / "net")
    np.savez(root / "net" / "inputs.npz", x=fixtures.random_inputs(net, 2, seed=1))
    res = fixtures.random_network(1, kind="residual", join="barrier")
    ir.save(res, root / "res")

    from golden.train import ModelConfig, build_model, save_checkpoint
    model = build_model(ModelConfig(arch="mlp", input_shape=(1, 8, 8), num_classes=10,
                                    hidden=4))
    save_checkpoint(model, root / "model.pt")

    (root / "badnet").mkdir()
    (root / "badnet" / "network.json").write_text('{"schema": "mlsnn-network", "layers": [')
    np.savez(root / "badnet" / "network.npz")
    (root / "garbage.npz").write_bytes(b"PK\x03\x04 this is no zip archive" * 8)
    (root / "garbage.pt").write_bytes(b"\x80\x02 not a checkpoint" * 8)
    (root / "garbage.json").write_text("[1, 2,")
    (root / "afile").write_text("a file, not a directory\n")
    return root


def _edit_net(files, tmp_path, edit, src="net"):
    """A copy of network ``src`` whose network.json was changed by ``edit(doc)``."""
    out = tmp_path / f"edited_{src}"
    out.mkdir()
    doc = json.loads((files / src / "network.json").read_text())
    doc = edit(doc) or doc
    (out / "network.json").write_text(json.dumps(doc))
    (out / "network.npz").write_bytes((files / src / "network.npz").read_bytes())
    return out


# -- tracebacks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd,extra", [
    ("golden", ["--inputs", "INPUTS"]), ("simulate", ["--inputs", "INPUTS"]),
    ("verilog", ["-o", "OUT/top.v"]), ("synth", ["--target", "ice40-up5k"]),
])
def test_npz_given_as_ir(files, tmp_path, capsys, cmd, extra):
    extra = [a.replace("INPUTS", str(files / "net" / "inputs.npz"))
             .replace("OUT", str(tmp_path)) for a in extra]
    line = one_line_error(capsys, [cmd, "--ir", files / "net" / "network.npz", *extra])
    assert "this is the array file; give network.json" in line


@pytest.mark.parametrize("cmd", ["golden", "simulate", "verilog", "synth"])
def test_threshold_beyond_64_bits(files, tmp_path, capsys, cmd):
    def edit(doc):
        doc["layers"][0]["threshold"] = 2 ** 70
    bad = _edit_net(files, tmp_path, edit)
    extra = {"golden": ["--inputs", files / "net" / "inputs.npz"],
             "simulate": ["--inputs", files / "net" / "inputs.npz"],
             "verilog": ["-o", tmp_path / "top.v"], "synth": ["--target", "ice40-up5k"]}[cmd]
    line = one_line_error(capsys, [cmd, "--ir", bad, *extra])
    name = json.loads((bad / "network.json").read_text())["layers"][0]["name"]
    assert f"layer '{name}': field 'threshold' is {2 ** 70}" in line
    assert "64-bit potential of the hardware" in line


def test_threshold_limit_in_ir_validation():
    net = fixtures.random_network(1, kind="dense", depth=0, levels=4)
    layer = net.layers[0]
    top = ((1 << 63) - 1) // 4
    ok = ir.Network(input=net.input, timesteps=1, layers=(
        ir.Dense(name=layer.name, inputs=layer.inputs, threshold=top, levels=4,
                 weight=layer.weight, bias=layer.bias, w_bits=layer.w_bits, readout=True),))
    assert ok.info(layer.name).width == 64
    with pytest.raises(ir.MlsnnError, match=rf"threshold <= {top} for levels=4"):
        ir.Dense(name=layer.name, inputs=layer.inputs, threshold=top + 1, levels=4,
                 weight=layer.weight, bias=layer.bias, w_bits=layer.w_bits, readout=True)


def test_inputs_without_images(files, tmp_path, capsys):
    x = np.load(files / "net" / "inputs.npz")["x"][:0]
    np.savez(tmp_path / "empty.npz", x=x)
    line = one_line_error(capsys, ["golden", "--ir", files / "net", "--inputs",
                                   tmp_path / "empty.npz"])
    assert line.endswith(f"array 'x' holds no images (shape {tuple(x.shape)})")


@pytest.mark.parametrize("out,msg", [
    ("/proc/x", "-o /proc/x: cannot write this file"),
    ("/dev/full", "-o /dev/full: not a regular file"),
    (BAD_OUT, "-o /proc/mlsnn-x/out: directory /proc/mlsnn-x does not exist"),
])
def test_train_output_checked_before_training(capsys, out, msg):
    t0 = time.monotonic()
    line = one_line_error(capsys, ["train", "--epochs", "50", "-o", out])
    assert msg in line and time.monotonic() - t0 < 5


def test_train_output_probe_leaves_nothing(tmp_path, capsys):
    from flows.io import check_output_dir, check_output_file
    check_output_file(str(tmp_path / "m.pt"))
    check_output_dir(str(tmp_path / "a" / "b"))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv,msg", [
    (["train", "--seed", str(2 ** 63)], "--seed must be in [0, 2**63 - 1], not 9223372036854775808"),
    (["train", "--split-seed", "-1"], "--split-seed must be in [0, 2**32 - 1], not -1"),
    (["random-network", "--seed", "-1", "-o", "OUT"], "--seed must be in [0, 2**63 - 1], not -1"),
])
def test_seed_out_of_range(tmp_path, capsys, argv, msg):
    argv = [a.replace("OUT", str(tmp_path / "r")) for a in argv]
    assert msg in one_line_error(capsys, argv)


def test_checkpoint_with_nan_weights(files, tmp_path, capsys):
    import torch
    doc = torch.load(files / "model.pt", weights_only=True)
    doc["state_dict"]["synapses.fc1.weight"].fill_(float("nan"))
    torch.save(doc, tmp_path / "nan.pt")
    line = one_line_error(capsys, ["export", tmp_path / "nan.pt", "-o", tmp_path / "net"])
    assert "the model's 'synapses.fc1.weight' holds non-finite values (NaN or inf)" in line
    assert not (tmp_path / "net").exists()


@pytest.mark.parametrize("argv", [
    ["synth", "--ir", "NET", "--target", "ice40-up5k", "--no-place", "-o", "FILE"],
    ["board", "--ir", "NET", "--board", "icebreaker", "-o", "FILE"],
    ["demo", "-o", "FILE"],
    ["random-network", "-o", "FILE"],
    ["export", "MODEL", "-o", "FILE"],
])
def test_output_dir_is_a_file(files, capsys, argv):
    argv = [str(files / "net") if a == "NET" else str(files / "afile") if a == "FILE" else
            str(files / "model.pt") if a == "MODEL" else a for a in argv]
    line = one_line_error(capsys, argv)
    assert line.endswith(f"-o {files / 'afile'}: exists and is not a directory")


# -- silent garbage or waste --------------------------------------------------------------------

@pytest.mark.parametrize("args,msg", [
    (["--arch", "vgg16", "--snn", "--spike-rate", "nan"],
     "--spike-rate must be finite and >= 0 (events per neuron per timestep), not nan"),
    (["--arch", "vgg16", "--snn", "--spike-rate", "nolayer=0.1"],
     "--spike-rate names layer(s) nolayer that vgg16 does not have (its layers: conv1, conv2"),
    (["--arch", "vgg16", "--snn", "--levels", "4", "--spike-rate", "0.1", "--mean-level", "9"],
     "--mean-level (average spike value, 1..N) must be a finite number in [1, 4], not 9"),
    (["--arch", "vgg16", "--snn", "--spike-rate", "0.1", "--total-spikes", "nan"],
     "--total-spikes must be a finite number in [0, inf), not nan"),
    (["--arch", "vgg16", "--snn", "--spike-rate", "0.1", "--fifo-depth", "100000000"],
     "--fifo-depth must be at most 65536, not 100000000"),
    (["--ir", "NET", "--inputs", "INPUTS", "--ann"],
     "--ann does not apply to --ir (only to --arch without --snn)"),
    (["--breakeven", "--spike-rate", "0.3"],
     "--spike-rate does not apply to --breakeven (only to --arch --snn)"),
    (["--arch", "vgg16", "--spike-rate", "0.3"], "--spike-rate needs --snn"),
    (["--arch", "vgg16", "--plot", "TMP"], "--plot TMP: is a directory, not a file"),
    (["--arch", "vgg16", "--plot", "TMP/e.txt"], "the file must end in .png, .pdf or .svg"),
])
def test_energy_options(files, tmp_path, capsys, args, msg):
    sub = {"NET": str(files / "net"), "INPUTS": str(files / "net" / "inputs.npz"),
           "TMP": str(tmp_path)}
    args = [sub.get(a, a.replace("TMP", str(tmp_path))) for a in args]
    assert msg.replace("TMP", str(tmp_path)) in one_line_error(capsys, ["energy", *args])


def test_energy_plot_reports_the_written_path(tmp_path, capsys):
    rc, out, err = run_cli(capsys, ["energy", "--arch", "vgg16", "--plot", tmp_path / "e"])
    assert rc == 0, err
    assert f"plot written to {tmp_path / 'e.png'}" in out and (tmp_path / "e.png").is_file()


@pytest.mark.parametrize("freq", ["0", "-50", "nan", "inf"])
def test_synth_freq(files, capsys, freq):
    line = one_line_error(capsys, ["synth", "--ir", files / "net", "--target", "ice40-up5k",
                                   f"--freq={freq}"])
    assert "--freq (MHz) must be a finite number in (0, 1000]" in line


@pytest.mark.parametrize("argv", [
    ["verilog", "--ir", "NET", "-o", "OUT", "--fifo-depth", "100000000"],
    ["simulate", "--ir", "NET", "--inputs", "INPUTS", "--fifo-depth", "100000000"],
    ["energy", "--ir", "NET", "--inputs", "INPUTS", "--fifo-depth", "65537"],
])
def test_fifo_depth_bounded(files, tmp_path, capsys, argv):
    sub = {"NET": str(files / "net"), "INPUTS": str(files / "net" / "inputs.npz"),
           "OUT": str(tmp_path / "top.v")}
    line = one_line_error(capsys, [sub.get(a, a) for a in argv])
    assert line.endswith(f"--fifo-depth must be at most 65536, not {argv[-1]}")


def test_random_network_conflicting_join(tmp_path, capsys):
    line = one_line_error(capsys, ["random-network", "--kind", "dense", "--join", "sew", "-o",
                                   tmp_path / "r"])
    assert line.endswith("--join sew applies to --kind residual only, not --kind dense")
    rc, out, err = run_cli(capsys, ["random-network", "--join", "sew", "-o", tmp_path / "r",
                                    "--json"])
    assert rc == 0, err
    kinds = [l["kind"] for l in json.loads(out)["layers"]]
    assert "join-sew" in kinds and "join-barrier" not in kinds


@pytest.mark.parametrize("opt,value,msg", [
    ("--levels", "0", "--levels must be an integer in [1, 255], not 0"),
    ("--timesteps", "0", "--timesteps must be an integer in [1, 1024], not 0"),
    ("--epochs", "0", "--epochs must be an integer at least 1, not 0"),
    ("--images", "0", "--images must be an integer at least 1, not 0"),
])
def test_demo_checks_options_first(tmp_path, capsys, opt, value, msg):
    line = one_line_error(capsys, ["demo", "-o", tmp_path / "demo", opt, value])
    assert line.endswith(msg) and not (tmp_path / "demo").exists()


# -- noise after the error (warnings at exit: a separate interpreter) -------------------------

def _subprocess(argv):
    p = subprocess.run([sys.executable, "-m", "flows.cli", *map(str, argv)],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stderr


def test_board_baud_zero_no_warning(files, tmp_path):
    rc, err = _subprocess(["board", "--ir", files / "net", "--board", "icebreaker", "-o",
                           tmp_path / "b", "--baud", "0"])
    assert rc == 1 and err == ("mlsnn board: error: --baud 0: baud must be a positive rate in "
                               "bit/s, not 0\n")


def test_simulate_vcd_bad_path_no_warning(files):
    rc, err = _subprocess(["simulate", "--ir", files / "net", "--inputs",
                           files / "net" / "inputs.npz", "--vcd", "/proc/x/y.vcd"])
    assert rc == 1 and err == ("mlsnn simulate: error: --vcd /proc/x/y.vcd: directory /proc/x "
                               "does not exist\n")


# -- misleading messages, loose input ----------------------------------------------------------

def _first_two_names(doc):
    doc["layers"][1]["name"] = doc["layers"][0]["name"]


@pytest.mark.parametrize("edit,msg", [
    (_first_two_names, "network.json: layers[0] and layers[1] are both named"),
    (lambda d: d["layers"][0].update(name="input"),
     "network.json: layers[0]: field 'name' may not be 'input' (reserved for the network input)"),
    (lambda d: [d], "not an mlsnn network (the top level must be a JSON object with 'schema': "
                    "'mlsnn-network', not a list)"),
    (lambda d: d.update(schema_version=True),
     "field 'schema_version' is true; this mlsnn reads versions 1 to 2 (an integer)"),
    (lambda d: d.update(schema_version=1.0),
     "field 'schema_version' is 1.0; this mlsnn reads versions 1 to 2 (an integer)"),
    (lambda d: d["layers"][0].update(inputs="input"),
     "field 'inputs' must be a list of layer names (e.g. [\"input\"]), not a string"),
])
def test_malformed_network_json(files, tmp_path, capsys, edit, msg):
    bad = _edit_net(files, tmp_path, edit)
    line = one_line_error(capsys, ["golden", "--ir", bad, "--inputs",
                                   files / "net" / "inputs.npz"])
    assert msg in line


def test_join_needs_mode(files, tmp_path, capsys):
    def edit(doc):                  # a schema-1 file (kind "join" + mode) without its mode
        doc["schema_version"] = 1
        join = next(l for l in doc["layers"] if l["kind"] in ("barrier", "sew"))
        join["kind"] = "join"
    bad = _edit_net(files, tmp_path, edit, src="res")
    line = one_line_error(capsys, ["verilog", "--ir", bad, "-o", tmp_path / "top.v"])
    assert "layer 'join0': missing field 'mode' ('barrier' or 'sew')" in line


# -- export of a model trained on the user's own dataset ----------------------------------------

def test_export_on_own_dataset(tmp_path, capsys):
    from sklearn.datasets import load_digits
    d = load_digits()
    np.savez(tmp_path / "my.npz", x=d.images[:300].astype(np.int64), y=d.target[:300])
    rc, out, err = run_cli(capsys, ["train", "--dataset", tmp_path / "my.npz", "--epochs", "1",
                                    "--hidden", "8", "-o", tmp_path / "m.pt"])
    assert rc == 0, err
    rc, out, err = run_cli(capsys, ["export", tmp_path / "m.pt", "-o", tmp_path / "net",
                                    "--json"])
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["dataset"] == "my.npz" and doc["n_test"] == 75
    assert np.load(tmp_path / "net" / "inputs.npz")["x"].shape == (75, 1, 8, 8)
    os.rename(tmp_path / "my.npz", tmp_path / "moved.npz")
    line = one_line_error(capsys, ["export", tmp_path / "m.pt", "-o", tmp_path / "net2"])
    assert line.endswith(f"the model was trained on {tmp_path / 'my.npz'}, which no longer "
                         f"exists: give the dataset with --dataset PATH")
    rc, out, err = run_cli(capsys, ["export", tmp_path / "m.pt", "-o", tmp_path / "net2",
                                    "--dataset", tmp_path / "moved.npz", "--json"])
    assert rc == 0 and json.loads(out)["n_test"] == 75, err
    np.savez(tmp_path / "flat.npz", x=d.data[:300].astype(np.int64), y=d.target[:300])
    line = one_line_error(capsys, ["export", tmp_path / "m.pt", "-o", tmp_path / "net3",
                                   "--dataset", tmp_path / "flat.npz"])
    assert line.endswith("samples of shape (64,), but the model takes (1, 8, 8)")


# -- every command: malformed input, bad output path, NaN ---------------------------------------

INPUT_DESTS = {"ir": "badnet", "inputs": "garbage.npz", "model": "garbage.pt",
               "measured": "garbage.json", "tech": "garbage.json", "dataset": "garbage.npz"}
OUTPUT_DESTS = {"output", "vcd", "build_dir", "plot", "junit", "keep", "workdir", "out"}


def _subparsers():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


def _base_argv(name, action_list, files, tmp_path):
    """The required arguments of a command, filled with valid values (plus a mode for the
    commands that need one)."""
    argv = []
    valid = {"ir": files / "net", "inputs": files / "net" / "inputs.npz",
             "model": files / "model.pt", "target": "ice40-up5k", "board": "icebreaker",
             "port": "/dev/null", "output": tmp_path / "out"}
    for a in action_list:
        if not (a.required or not a.option_strings) or a.dest == "help":
            continue
        value = valid.get(a.dest, a.choices[0] if a.choices else "1")
        argv += ([a.option_strings[-1]] if a.option_strings else []) + [str(value)]
    if name == "energy":
        argv += ["--ir", str(files / "net"), "--inputs", str(files / "net" / "inputs.npz")]
    return argv


def _replace(argv, action, value):
    """``argv`` with ``action``'s value set to ``value``."""
    argv = list(argv)
    if not action.option_strings:               # the positional argument
        pos = [i for i, a in enumerate(argv)
               if not a.startswith("-") and (i == 0 or not argv[i - 1].startswith("-"))]
        argv[pos[0]] = value
        return argv
    for opt in action.option_strings:
        if opt in argv:
            argv[argv.index(opt) + 1] = value
            return argv
    return argv + [action.option_strings[-1], value]


def _cases():
    cases = []
    for mod in cli._discover():
        name = mod.NAME
        try:
            actions = _subparsers()[name]._actions
        except KeyError:
            continue
        numeric = [a for a in actions if a.type is float]
        if not numeric:
            numeric = [a for a in actions if a.type is int][:1]
        for a in actions:
            if a.dest in INPUT_DESTS:
                cases.append(pytest.param(name, "input", a.dest, id=f"{name}-bad-{a.dest}"))
            if a.dest in OUTPUT_DESTS or "-o" in a.option_strings:
                cases.append(pytest.param(name, "output", a.dest, id=f"{name}-out-{a.dest}"))
        for a in numeric:
            cases.append(pytest.param(name, "nan", a.dest, id=f"{name}-nan-{a.dest}"))
    return cases


def test_cases_cover_every_command():
    names = {p.values[0] for p in _cases()}
    assert names == {m.NAME for m in cli._discover()}


@pytest.mark.parametrize("name,case,dest", _cases())
def test_every_command_fails_fast_on_bad_input(files, tmp_path, capsys, name, case, dest):
    actions = _subparsers()[name]._actions
    action = next(a for a in actions if a.dest == dest)
    argv = _base_argv(name, actions, files, tmp_path)
    value = {"input": str(files / INPUT_DESTS.get(dest, "garbage.npz")), "output": BAD_OUT,
             "nan": "nan"}[case]
    if case == "output" and action.dest == "plot" and name == "energy":
        value = BAD_OUT + ".png"
    argv = _replace(argv, action, value)
    t0 = time.monotonic()
    one_line_error(capsys, [name, *argv])
    assert time.monotonic() - t0 < LIMIT
