"""The command line: summaries, JSON, files, and clear errors with exit status 2."""
import json
import subprocess
import sys

import numpy as np
import pytest

import sparsemixed as sm
from sparsemixed.cli import main


def test_fit_bundled_dataset_prints_lme4_summary(capsys):
    assert main(["fit", "sleepstudy", "Reaction ~ Days + (Days | Subject)"]) == 0
    out = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6\n" in out          # lme4 prints it rounded to 0.1
    assert "Random effects:" in out and "Fixed effects:" in out


def test_json_from_csv_and_parquet_equals_library(tmp_path, capsys):
    d = sm.datasets.load("Penicillin")
    csv, pq, parts = tmp_path / "pen.csv", tmp_path / "pen.parquet", tmp_path / "parts"
    d.to_csv(csv, index=False)
    d.to_parquet(pq)
    parts.mkdir()
    d.iloc[:50].to_parquet(parts / "a.parquet")
    d.iloc[50:].to_parquet(parts / "b.parquet")
    ref = sm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", d, REML=False).fit()
    for path in (csv, pq, parts):           # a directory is a Parquet dataset
        out = tmp_path / "out.json"
        assert main(["fit", str(path), "diameter ~ 1 + (1|plate) + (1|sample)", "--ml", "--json",
                     "--output", str(out)]) == 0
        doc = json.loads(out.read_text())
        assert doc["REML"] is False and doc["nobs"] == 144
        assert doc["objective"] == pytest.approx(ref.objective, rel=1e-9)
        np.testing.assert_allclose(doc["theta"], ref.theta, rtol=1e-6)
        assert {r["grpvar"] for r in doc["ranef"]} == {"plate", "sample"}
        assert [f["term"] for f in doc["fixef"]] == ["(Intercept)"]


@pytest.mark.parametrize("args, message", [
    (["fit", "nosuchfile.csv", "y ~ (1|g)"], "no such file or bundled data set"),
    (["fit", "sleepstudy", "Reaction ~ Dayz + (Days|Subject)"], "did you mean 'Days'"),
    (["fit", "sleepstudy", "Reaction ~ Days + (Days|Subject"], "unbalanced parentheses"),
    (["fit", "InstEval", "y ~ 1 + (1|s) + (1|d)", "--memory-limit", "1MB"], "memory limit"),
    (["datasets", "nosuch"], "unknown data set"),
])
def test_bad_input_gives_one_line_and_status_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("sparsemixed: error:")


def test_unreadable_file(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    assert main(["fit", str(bad), "y ~ (1|g)"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_module_entry_point_runs():
    p = subprocess.run([sys.executable, "-m", "sparsemixed", "datasets"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "InstEval" in p.stdout
    p = subprocess.run([sys.executable, "-m", "sparsemixed", "fit", "x.csv", "y ~ 1"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_progress_only_when_verbose(capsys):
    d = sm.datasets.load("Dyestuff")
    sm.lmer("Yield ~ 1 + (1|Batch)", d).fit()
    assert capsys.readouterr().err == ""                     # silent by default
    sm.lmer("Yield ~ 1 + (1|Batch)", d).fit(verbose=True)
    assert "fit (lbfgsb)" in capsys.readouterr().err         # the choice for a model on the small engine
    assert main(["fit", "Dyestuff", "Yield ~ 1 + (1|Batch)", "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "built the model" in err and "fitted in" in err


def test_cross_product_progress_over_chunks(capsys, monkeypatch, tmp_path):
    import sparsemixed.crossprod as cp

    monkeypatch.setattr(cp, "CHUNK_ROWS", 50)
    d = sm.datasets.load("sleepstudy")
    sm.lmer("Reaction ~ Days + (1|Subject)", d, verbose=True)
    assert "cross-products" in capsys.readouterr().err
    d.to_csv(tmp_path / "s.csv", index=False)
    sm.lmer("Reaction ~ Days + (1|Subject)", str(tmp_path / "s.csv"), chunksize=60, verbose=True)
    err = capsys.readouterr().err
    assert "levels (pass 1)" in err and "cross-products (pass 2)" in err
    sm.lmer("Reaction ~ Days + (1|Subject)", d)
    assert capsys.readouterr().err == ""


def test_parquet_directory_checks(tmp_path, capsys):
    """A Parquet directory is read file by file: '_'/'.' files are skipped, subdirectories read,
    and a stray or mismatched file is named in one line with status 2."""
    d = sm.datasets.load("Penicillin")
    parts = tmp_path / "parts"
    (parts / "sub").mkdir(parents=True)
    d.iloc[:50].to_parquet(parts / "a.parquet")
    d.iloc[50:].to_parquet(parts / "sub" / "b.parquet")
    (parts / "_SUCCESS").write_text("")
    formula = "diameter ~ 1 + (1|plate) + (1|sample)"
    out = tmp_path / "out.json"
    assert main(["fit", str(parts), formula, "--json", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["nobs"] == 144
    (parts / "README.txt").write_text("how these files were made")
    assert main(["fit", str(parts), formula]) == 2
    err = capsys.readouterr().err
    assert f"{parts / 'README.txt'} is not a Parquet file" in err and "move it out of the directory" in err
    assert "Traceback" not in err and err.count("\n") == 1
    (parts / "README.txt").unlink()
    d.iloc[50:].drop(columns="sample").to_parquet(parts / "sub" / "b.parquet")
    assert main(["fit", str(parts), formula]) == 2
    err = capsys.readouterr().err
    assert f"{parts / 'sub' / 'b.parquet'} has no column 'sample'" in err and "Traceback" not in err
