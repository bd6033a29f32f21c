"""Determinism: the same data and options give bit-identical estimates (theta, beta,
sigma, objective, conditional modes), run to run within one process and across fresh
Python processes, for the blocked factor (dense Schur complement, LAPACK) and for
CHOLMOD (ordering="amd"), with L-BFGS-B and with BOBYQA.

Each case is summarised by the hex of the estimates' bytes, computed by DIGEST_CODE,
which runs here (exec) and in two ``python -c`` subprocesses.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

DIGEST_CODE = r'''
import json, warnings
import numpy as np
import sparsemixed as sm

CASES = {
    # name: (data set, rows, formula, ordering, expected factor ordering)
    "penicillin-blocked": ("Penicillin", None, "diameter ~ 1 + (1|plate) + (1|sample)", "blocked", "blocked"),
    "insteval-blocked": ("InstEval", 1500, "y ~ service + (1|s) + (1|d) + (1|dept:service)", "auto", "blocked"),
    "penicillin-amd": ("Penicillin", None, "diameter ~ 1 + (1|plate) + (1|sample)", "amd", "amd"),
    "sleepstudy-amd": ("sleepstudy", None, "Reaction ~ Days + (Days|Subject)", "amd", "amd"),
}
OPTIMIZERS = ("lbfgsb", "bobyqa")


def _hex(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes().hex()


def digest(res):
    ranef = b"".join(np.ascontiguousarray(res.ranef[k].to_numpy(dtype=np.float64)).tobytes()
                     for k in sorted(res.ranef))
    return {"theta": _hex(res.theta), "beta": _hex(res.beta), "sigma": _hex(res.sigma),
            "objective": _hex(res.objective), "ranef": ranef.hex(), "b": _hex(res.b),
            "feval": int(res.optsummary.feval)}


def build(case):
    name, rows, formula, ordering, expect = CASES[case]
    data = sm.datasets.load(name)
    if rows is not None:
        data = data.iloc[:rows]
    model = sm.lmer(formula, data, ordering=ordering)
    assert model.factor.ordering == expect, (case, model.factor.ordering)
    return model


def run_all(twice_on_one_model=False):
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case in CASES:
            model = build(case)
            for opt in OPTIMIZERS:
                out[f"{case}/{opt}"] = digest(model.fit(optimizer=opt))
                if twice_on_one_model:      # the same model object fitted again
                    out[f"{case}/{opt}/again"] = digest(model.fit(optimizer=opt))
    return out
'''

_ns: dict = {}
exec(compile(DIGEST_CODE, "<DIGEST_CODE>", "exec"), _ns)
KEYS = [f"{c}/{o}" for c in _ns["CASES"] for o in _ns["OPTIMIZERS"]]
FIELDS = ("theta", "beta", "sigma", "objective", "ranef", "b", "feval")


def _subprocess_digests(count: int = 2) -> list[dict]:
    """Digests from ``count`` fresh interpreters, started together (most of their time is
    the import)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONHASHSEED="random")
    code = DIGEST_CODE + "\nprint(json.dumps(run_all()))\n"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(count)]
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


@pytest.fixture(scope="module")
def in_process():
    return _ns["run_all"](twice_on_one_model=True), _ns["run_all"]()


@pytest.fixture(scope="module")
def fresh_processes():
    return tuple(_subprocess_digests(2))


def _diff(a: dict, b: dict) -> list[str]:
    return [f for f in FIELDS if a[f] != b[f]]


@pytest.mark.parametrize("key", KEYS)
def test_identical_within_a_process(in_process, key):
    first, second = in_process
    assert not _diff(first[key], second[key]), f"{key}: fresh model, fit again: {_diff(first[key], second[key])}"
    again = first[key + "/again"]
    assert not _diff(first[key], again), f"{key}: same model object refitted: {_diff(first[key], again)}"


@pytest.mark.parametrize("key", KEYS)
def test_identical_across_fresh_processes(fresh_processes, key):
    one, two = fresh_processes
    assert not _diff(one[key], two[key]), f"{key}: two fresh processes differ in {_diff(one[key], two[key])}"


@pytest.mark.parametrize("key", KEYS)
def test_identical_between_this_process_and_a_fresh_one(in_process, fresh_processes, key):
    here, there = in_process[0][key], fresh_processes[0][key]
    assert not _diff(here, there), f"{key}: this process and a fresh one differ in {_diff(here, there)}"


def test_the_cases_cover_both_factors_and_both_optimizers(in_process):
    assert {k.split("/")[1] for k in KEYS} == {"lbfgsb", "bobyqa"}
    orderings = {c[4] for c in _ns["CASES"].values()}
    assert {"blocked", "amd"} <= orderings
