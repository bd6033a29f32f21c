"""The MovieLens-shaped generator of the scale benchmark (benchmarks/movielens.py): simple graph
with the requested degrees, seeded, and MixedModels.jl's subset rule on the bundled counts."""
import pathlib
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import movielens as ml  # noqa: E402


def realizable_skewed_degrees(seed=0, nu=400, nm=80):
    """Degrees of a random simple bipartite graph with Zipf-like heavy users and movies (the
    heaviest users rate every movie), so that they are realizable and the configuration model
    makes many duplicates (~1,000 of ~6,000 edges, multiplicity up to ~8)."""
    rng = np.random.default_rng(seed)
    a = np.arange(1, nu + 1) ** -0.8
    b = np.arange(1, nm + 1) ** -0.8
    p = np.minimum(1.0, 20 * np.outer(a / a.mean(), b / b.mean()) / nm)
    A = rng.random((nu, nm)) < p
    A[np.arange(nu), rng.integers(0, nm, nu)] = True        # every user and movie present
    A[rng.integers(0, nu, nm), np.arange(nm)] = True
    return A.sum(1), A.sum(0)


def edge_keys(u, m, nm):
    return u.astype(np.int64) * nm + m


def test_simple_graph_with_exact_degrees():
    du, dm = realizable_skewed_degrees()
    u, m, rep = ml.simple_bipartite(du, dm, np.random.default_rng(1))
    k = edge_keys(u, m, dm.size)
    assert np.unique(k).size == k.size                     # simple: no (user, movie) twice
    assert rep["duplicates_initial"] > 500                 # the rewiring had work to do
    assert rep["max_multiplicity_initial"] >= 5
    assert du.max() == dm.size                             # a user rated every movie
    if rep["dropped"] == 0:                                # exact degrees ...
        np.testing.assert_array_equal(np.bincount(u, minlength=du.size), du)
        np.testing.assert_array_equal(np.bincount(m, minlength=dm.size), dm)
    # ... or the report says by how much they moved
    assert ml.degree_change(u, m, du, dm) == dict(l1_user=rep["l1_user"], l1_movie=rep["l1_movie"])
    assert rep["duplicates_after"] == 0
    assert rep["edges"] == du.sum() == u.size
    assert u.dtype == np.int32 and m.dtype == np.int32
    assert np.all(np.diff(k) > 0)                          # sorted by (user, movie)


def test_leftovers_are_dropped_and_reported():
    with pytest.raises(ValueError, match="no simple graph"):
        ml.simple_bipartite([4, 1], [2, 2, 1], np.random.default_rng(0))
    with pytest.raises(ValueError, match="sums differ"):
        ml.simple_bipartite([2, 1], [2, 2], np.random.default_rng(0))
    # no rewiring allowed: every duplicate is dropped, and the report gives the L1 change
    du, dm = realizable_skewed_degrees(seed=2)
    u, m, rep = ml.simple_bipartite(du, dm, np.random.default_rng(0), max_rounds=0)
    assert rep["dropped"] == rep["duplicates_initial"] > 0 and rep["swaps"] == 0
    assert np.unique(edge_keys(u, m, dm.size)).size == u.size == du.sum() - rep["dropped"]
    assert ml.degree_change(u, m, du, dm) == dict(l1_user=rep["l1_user"], l1_movie=rep["l1_movie"])
    assert rep["l1_user"] == rep["l1_movie"] == rep["dropped"]
    assert np.bincount(u, minlength=du.size).min() > 0     # a kept copy always remains


def test_seeded_and_deterministic():
    du, dm = realizable_skewed_degrees(seed=3)
    a = ml.simple_bipartite(du, dm, np.random.default_rng(7))
    b = ml.simple_bipartite(du, dm, np.random.default_rng(7))
    c = ml.simple_bipartite(du, dm, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert {k: v for k, v in a[2].items() if not k.startswith("seconds")} == \
           {k: v for k, v in b[2].items() if not k.startswith("seconds")}
    assert not np.array_equal(edge_keys(*a[:2], dm.size), edge_keys(*c[:2], dm.size))


def test_rows_table(tmp_path):
    kw = dict(rows=6000, users=300, items=40, seed=5)
    df = ml.generate(**kw)
    assert list(df.columns) == ["user", "item", "x", "y"]
    assert df["user"].dtype == np.int32 and df["item"].dtype == np.int32
    assert len(df) == 6000 and df["user"].nunique() == 300 and df["item"].nunique() == 40
    assert not df.duplicated(["user", "item"]).any()
    pd.testing.assert_frame_equal(df, ml.generate(**kw))
    assert not np.array_equal(df["y"], ml.generate(**{**kw, "seed": 6})["y"])
    # the known model: x's coefficient by least squares within noise of beta_x
    X = np.column_stack([np.ones(len(df)), df["x"]])
    assert abs(np.linalg.lstsq(X, df["y"], rcond=None)[0][1] - ml.DEFAULTS["beta_x"]) < 0.1
    # the cache gives the same table back
    first = ml.generate(**kw, cache=True, cache_dir=tmp_path)
    again = ml.generate(**kw, cache=True, cache_dir=tmp_path)
    assert again.attrs["report"].get("from_cache") and not first.attrs["report"].get("from_cache")
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, df)


def test_subset_mask_is_the_simultaneous_filter_on_full_counts():
    du, dm = realizable_skewed_degrees(seed=4)
    u, m, _ = ml.simple_bipartite(du, dm, np.random.default_rng(2))
    df = pd.DataFrame({"u": u, "m": m})
    df["nu"] = df.groupby("u")["u"].transform("size")
    df["nm"] = df.groupby("m")["m"].transform("size")
    for mc, uc in [(1, 1), (5, 3), (20, 10), (60, 2)]:
        expect = ((df["nm"] >= mc) & (df["nu"] >= uc)).to_numpy()
        np.testing.assert_array_equal(ml.subset_mask(u, m, mc, uc), expect)


def test_subset_sizes_from_the_bundled_counts():
    du, dm = ml.real_degrees()
    assert du.size == 200_948 and dm.size == 84_432 and du.sum() == dm.sum() == 32_000_204
    pub = ml.published()
    assert len(pub) == 21
    for r in pub:
        b = ml.subset_bounds(r["mc"], r["uc"], du, dm)
        # a user or movie passes the filter but may lose every rating: the counts are bounds
        assert r["nusers"] <= b["users_ge_uc"] and r["nmvie"] <= b["movies_ge_mc"]
        assert b["users_ge_uc"] - r["nusers"] <= 1          # the thresholds fix the users ...
        if r["uc"] == 20:
            assert b["movies_ge_mc"] == r["nmvie"]           # ... and with uc = 20 the movies
        if b["exact"]:                                      # mc = 1 or uc = 20: rows are fixed
            assert b["exact"]["rows"] == r["nratings"], r
        else:                                               # otherwise A * B / E is close
            assert abs(b["expected_rows"] / r["nratings"] - 1) < 0.003, r
    b = ml.subset_bounds(50, 80, du, dm)
    assert (b["users_ge_uc"], b["movies_ge_mc"]) == (94_380, 16_034)
    assert ml.published_row(50, 80)["nratings"] == 27_083_536
