"""Formal proofs with yosys sat (flows/prove.py, `mlsnn prove`): the proofs pass, the mutants
fail with a counterexample that shows the bug, a proof whose induction does not close is not a
PASS, and the command's JSON and errors."""

import json

import pytest

from flows.cli import main
from flows.prove import (MUTANTS, PROOFS, ProveParams, default_thresholds,
                         parse_int_list, run_proof)
from golden.errors import MlsnnError

# Small widths and a few N's and θ's keep this file under ~30 s on a loaded 2-core machine;
# `mlsnn prove` (defaults: width 10, N 1..8, θ 1, 2, 3, 32, 63) is the full run.
SMALL = dict(width=6, depths=(2, 4))


@pytest.mark.parametrize("name,levels,thresholds", [
    ("fire-parallel", (1, 3, 8), (1, 3, 31)),
    ("fire-pipelined", (3,), (1, 31)),
    ("fire-serial", (1, 3), (3,)),
    ("fire-readout", (1, 4), (31,)),
    ("credit-queue", (1,), (1,)),
])
def test_proof_passes(name, levels, thresholds):
    res = run_proof(name, ProveParams(levels=levels, thresholds=thresholds, **SMALL))
    assert res.status == "PASS", res.summary()
    fire = name.startswith("fire")
    n_th = 1 if name in ("fire-readout", "credit-queue") else len(thresholds)
    expected = 2 * len(levels) * n_th if fire else 2 + 4      # saturate x N x θ; credits 1..d
    assert len(res.cases) == expected
    assert all(c.status == "PASS" and c.steps >= 1 for c in res.cases)
    if name == "fire-serial":
        # Black-box k-induction: it closes only beyond the latency N+1.
        assert max(c.steps for c in res.cases if c.params["levels"] == 3) >= 4


def test_mutant_fire_above_threshold_fails_at_h_equal_k_theta():
    n, th = 2, 3
    res = run_proof("fire-parallel", ProveParams(levels=(n,), thresholds=(th,), **SMALL),
                    mutant="fire-above")
    assert res.status == "FAIL" and res.mutant == "fire-above"
    exact = res.cases[0]            # no saturation: the mutant differs only where H = kθ
    assert exact.params["saturate"] is False and exact.status == "FAIL"
    cex = exact.counterexample
    assert cex and exact.reason.startswith("counterexample from reset")
    assert {"z", "p"} & {v for row in cex for v in row["violated"]}
    accepted = [row["inputs"] for row in cex if row.get("accepted") == 1]
    assert accepted, cex
    assert any((i["i_p"] + i["i_b"]) in [k * th for k in range(1, n + 1)] for i in accepted), cex
    assert "FAIL" in res.summary() and "i_p=" in res.summary()


def test_mutant_credit_at_write_fails_at_the_ports():
    res = run_proof("credit-queue", ProveParams(depths=(2,)), mutant="credit-at-write")
    assert res.status == "FAIL"
    assert all(c.status == "FAIL" and c.counterexample for c in res.cases)
    broken = {v for c in res.cases for row in c.counterexample for v in row["violated"]}
    # Judged at its ports only: the early credit shows as a wrong room (and then overflow).
    assert broken <= {"tokens_within_credits", "credit_count", "room",
                      "no_output_without_input", "order", "queued_token_reaches_o"}
    assert "room" in broken
    first = res.cases[0].counterexample
    assert sum(row["inputs"]["take"] for row in first) >= 1
    assert sum(row["inputs"]["w_en"] for row in first) >= 1


def test_induction_that_does_not_close_is_not_a_pass():
    res = run_proof("fire-serial", ProveParams(levels=(3,), thresholds=(3,), max_steps=3,
                                               **SMALL))
    assert res.status == "FAIL"
    assert all("induction did not close within 3 steps" in c.reason for c in res.cases)
    assert all(c.counterexample is None for c in res.cases)


def test_params_and_lists():
    assert parse_int_list("1-3,8,2", "--levels") == (1, 2, 3, 8)
    assert default_thresholds(10) == (1, 2, 3, 32, 63)
    assert default_thresholds(6) == (1, 2, 3, 31)
    with pytest.raises(MlsnnError, match=r"^--levels: 'x' is not an integer"):
        parse_int_list("x", "--levels")
    with pytest.raises(MlsnnError, match=r"^--width must be an integer in 4\.\.16, not 3$"):
        ProveParams(width=3)
    with pytest.raises(MlsnnError, match=r"^--thresholds: 32 is out of range 1\.\.31 "):
        ProveParams(width=6, thresholds=(32,))
    with pytest.raises(MlsnnError, match=r"^--depths: 6 is not one of 2, 4, 8, 16$"):
        ProveParams(depths=(6,))
    with pytest.raises(MlsnnError, match=r"^unknown proof 'fire'"):
        run_proof("fire")
    assert set(PROOFS) == {"fire-parallel", "fire-pipelined", "fire-serial", "fire-readout",
                           "credit-queue"}
    assert {MUTANTS[m][0] for m in MUTANTS} <= set(PROOFS)


def test_cli_json(capsys):
    rc = main(["prove", "--only", "fire-readout", "--only", "credit-queue", "--width", "6",
               "--levels", "2", "--depths", "2", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["status"] == "PASS"
    assert [p["proof"] for p in doc["proofs"]] == ["fire-readout", "credit-queue"]
    assert [len(p["cases"]) for p in doc["proofs"]] == [2, 2]
    assert doc["params"]["width"] == 6 and doc["params"]["levels"] == [2]
    assert "[prove] fire-readout: PASS" in err and " s)" in err


def test_cli_mutant_exits_1_with_one_line(capsys):
    rc = main(["prove", "--mutant", "credit-at-write", "--depths", "2"])
    out, err = capsys.readouterr()
    assert rc == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("mlsnn prove: 1 of 1 proofs failed: credit-queue: FAIL")
    assert "counterexample" in last and "FAIL  credit-queue" in out


@pytest.mark.parametrize("argv,msg", [
    (["--only", "nope"], "mlsnn prove: error: unknown proof 'nope'; proofs: fire-parallel"),
    (["--width", "40"], "mlsnn prove: error: --width must be an integer in 4..16, not 40"),
    (["--levels", "0-2"], "mlsnn prove: error: --levels: 0 is out of range 1..16"),
    (["--mutant", "nope"], "mlsnn prove: error: unknown mutant 'nope'"),
])
def test_cli_bad_options(capsys, argv, msg):
    rc = main(["prove", *argv])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(msg)


def test_cli_list(capsys):
    assert main(["prove", "--list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == list(PROOFS) + list(MUTANTS)


def test_missing_yosys_is_one_clear_error(monkeypatch):
    import shutil
    import sys
    monkeypatch.setattr(sys, "executable", "/nonexistent/bin/python")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MlsnnError, match=r"^the proofs need yosys with its sat command: pip "
                                         r"install 'mlsnn\[synth\]'"):
        run_proof("fire-readout", ProveParams(levels=(1,), thresholds=(3,), **SMALL))
