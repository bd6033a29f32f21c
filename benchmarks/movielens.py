"""Synthetic rating tables with the degree structure of MovieLens ml-32m, for the scale benchmark.

    python benchmarks/movielens.py --mc 50 --uc 80 [--seed 1] [--graph-only] [--cache-dir DIR]
    python benchmarks/movielens.py --rows 1000000 --users 20000 --items 2000

Graph.  The number of ratings of each of the 200,948 users and 84,432 movies of ml-32m
(``benchmarks/data/ml32m_*_n_ratings.csv``) are paired as a *simple* bipartite graph: user and
movie "stubs" (one per rating) are matched at random (configuration model), then every
duplicate (user, movie) pair is rewired by degree-preserving edge swaps: a duplicate edge
(u, m) and a random simple edge (u', m') become (u, m') and (u', m) when neither new pair
exists yet (and the batch creates no pair twice).  The swaps run in vectorised rounds over
all remaining duplicates, with more random partners per duplicate as they get few; when a
round moves nothing, partners are drawn uniformly over levels, three-edge rotations are tried
and the stuck users' edges reshuffled.  What is still duplicated after ``max_rounds`` (or
``patience`` rounds without progress) is dropped and reported as an L1 change of the degree
sequences.  On ml-32m: 3,697,218 duplicates, all rewired in 21 rounds, degrees exact.  The
report (``df.attrs["report"]``) gives the initial number of duplicates (and the expected
number), the number left, rounds, swaps and the L1 change.

Subsets.  MixedModels.jl (EmbraceUncertainty, "A large-scale observational study") keeps the
ratings whose movie has >= mc ratings and whose user has >= uc ratings *in the full data*,
both filters at once on the full-data counts; a user or movie left without ratings
disappears.  The subset degrees are not determined by the counts (they depend on who rated
what), so the rule is applied to the full synthetic graph, which is built once per seed
(~80 s of CPU, 1.5 GB; cached as ml32m_graph_seed<seed>_v<VERSION>.npz with ``cache=True``).
What the counts alone fix (rows when mc = 1 or uc <= 20, users >= uc, movies >= mc) is in
:func:`subset_bounds`.

Ratings: y = intercept + a[user] + b[movie] + e, a ~ N(0, sd_user^2), b ~ N(0, sd_movie^2),
e ~ N(0, sigma^2); every random stream (graph, subset effects, rows design) is seeded from
``seed``: same arguments -> same table, bit for bit.

``rows=N`` instead gives an N-row table on ``users`` x ``items`` levels (every level used at
least once, the rest uniform), with a covariate x ~ N(0, 1): y = intercept + beta_x x + a + b + e,
for ``y ~ x + (1|user) + (1|item)``; its graph is made simple the same way.

Tables are cached as .npz under ``cache_dir`` (default benchmarks/.cache/, git-ignored)
when ``cache=True``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
CACHE = HERE / ".cache"
VERSION = 1          # bump when the generated tables change for the same arguments

# defaults: a rating scale (0.5-5 stars) with user and movie effects of the size seen in
# MovieLens fits; any values work, the benchmark only needs them known
DEFAULTS = dict(intercept=3.5, sd_user=0.4, sd_movie=0.5, sigma=0.85, beta_x=0.5)


# -- the published counts ----------------------------------------------------------------
def real_degrees(data_dir: Path | str = DATA) -> tuple[np.ndarray, np.ndarray]:
    """Ratings per user and per movie of ml-32m (int64 arrays, in the CSVs' order)."""
    data_dir = Path(data_dir)

    def col(name):
        return np.loadtxt(data_dir / name, delimiter=",", skiprows=1, usecols=1, dtype=np.int64)

    return col("ml32m_users_n_ratings.csv"), col("ml32m_movies_n_ratings.csv")


def published(data_dir: Path | str = DATA) -> list[dict]:
    """MixedModels.jl's sizespeed table as a list of dicts (numbers as int or float)."""
    lines = (Path(data_dir) / "mixedmodels_jl_ml32m_sizespeed.csv").read_text().split()
    head = lines[0].split(",")
    out = []
    for line in lines[1:]:
        vals = [float(v) for v in line.split(",")]
        out.append({k: (int(v) if k in ("mc", "uc", "nratings", "nusers", "nmvie", "nv") else v)
                    for k, v in zip(head, vals)})
    return out


def published_row(mc: int, uc: int, data_dir: Path | str = DATA) -> dict | None:
    for r in published(data_dir):
        if r["mc"] == mc and r["uc"] == uc:
            return r
    return None


# -- subsets ---------------------------------------------------------------------------------
def subset_bounds(mc: int, uc: int, du=None, dm=None) -> dict:
    """What the counts alone say about MixedModels.jl's (mc, uc) subset: users with >= uc
    and movies with >= mc ratings (upper bounds on nusers, nmvie), their ratings A and B,
    and the configuration model's expected number of kept ratings A * B / E.  Exact
    (rows, users, movies) when mc <= 1 (rows = A) or uc <= min user degree (rows = B)."""
    if du is None or dm is None:
        du, dm = real_degrees()
    E = int(du.sum())
    ku, km = du >= uc, dm >= mc
    A, B = int(du[ku].sum()), int(dm[km].sum())
    out = dict(mc=mc, uc=uc, users_ge_uc=int(ku.sum()), movies_ge_mc=int(km.sum()), A=A, B=B,
               expected_rows=A * B / E, exact=None)
    if km.all():
        out["exact"] = dict(rows=A, users=int(ku.sum()), movies=int((dm > 0).sum()) if ku.all() else None)
    elif ku.all():
        out["exact"] = dict(rows=B, users=None, movies=int(km.sum()))
    return out


def subset_mask(user, movie, mc: int, uc: int, nu: int | None = None, nm: int | None = None):
    """MixedModels.jl's rule on an edge list: keep the ratings whose movie has >= mc and whose
    user has >= uc ratings in this (full) table, both counted before any filtering."""
    du = np.bincount(user, minlength=nu or 0)
    dm = np.bincount(movie, minlength=nm or 0)
    return (dm[movie] >= mc) & (du[user] >= uc)


def _recode(codes: np.ndarray):
    """Consecutive int32 codes 0..k-1 for the levels present (in the old codes' order)."""
    present = np.flatnonzero(np.bincount(codes))
    lut = np.full(int(codes.max()) + 1 if codes.size else 0, -1, dtype=np.int32)
    lut[present] = np.arange(present.size, dtype=np.int32)
    return lut[codes], present


# -- the simple bipartite graph -----------------------------------------------------------
def _member(sorted_keys: np.ndarray, x: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(sorted_keys, x)
    np.minimum(idx, sorted_keys.size - 1, out=idx)
    return sorted_keys[idx] == x


def _ranks_in_runs(sorted_vals: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of a sorted array."""
    return np.arange(sorted_vals.size) - np.searchsorted(sorted_vals, sorted_vals, side="left")


def _is_simple_at(ks: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Whether the key at sorted position p occurs once in the multiset ks."""
    E = ks.size
    k = ks[p]
    return (((ks[np.maximum(p - 1, 0)] != k) | (p == 0))
            & ((ks[np.minimum(p + 1, E - 1)] != k) | (p == E - 1)))


def _swap_round(ks: np.ndarray, D: np.ndarray, ps, nm: int):
    """One vectorised round of degree-preserving moves of the edges D (keys u * nm + m).

    ``ps`` is one array of partner positions in ks (a swap: (u, m), (u', m') -> (u, m'),
    (u', m)) or two (a rotation: (u, m), (u', m'), (u'', m'') -> (u, m'), (u', m''),
    (u'', m)); attempt j of edge i uses ps[.][j * k + i].  A move is valid when the partners
    are simple edges, all users and all movies differ, the new pairs are not in the graph,
    and no other move of the batch uses the same partner or makes the same pair.
    Returns (new ks, indices into D of the edges moved, number moved)."""
    if isinstance(ps, np.ndarray):
        ps = [ps]
    k = D.size
    r = ps[0].size // k
    Dr = np.tile(D, r)                              # attempt j of edge i at j * k + i
    keys = [Dr] + [ks[p] for p in ps]
    um = [np.divmod(x, nm) for x in keys]
    L = len(keys)
    ok = np.ones(Dr.size, dtype=bool)
    for p in ps:
        ok &= _is_simple_at(ks, p)
    for i in range(L):
        for j in range(i + 1, L):
            ok &= (um[i][0] != um[j][0]) & (um[i][1] != um[j][1])
    new = [um[i][0] * nm + um[(i + 1) % L][1] for i in range(L)]
    for x in new:
        ok &= ~_member(ks, x)
    okm = ok.reshape(r, k)
    has = okm.any(axis=0)
    sel = (okm.argmax(axis=0) * k + np.arange(k))[has]   # the first valid attempt of each
    acc = np.flatnonzero(has)

    def unique_rows(cols):          # moves whose values (across cols) occur once in the batch
        allv = np.concatenate([c[sel] for c in cols])
        vals, cnt = np.unique(allv, return_counts=True)
        return ~np.isin(allv, vals[cnt > 1]).reshape(len(cols), -1).any(axis=0)

    keep = unique_rows(keys[1:])                    # partners distinct
    sel, acc = sel[keep], acc[keep]
    keep = unique_rows(new)                         # new pairs distinct
    sel, acc = sel[keep], acc[keep]
    if sel.size:
        # drop one copy of each moved edge and the partners, insert the new pairs (none
        # present before, all distinct): the sorted multiset stays sorted
        rem = np.sort(np.concatenate([D[acc]] + [x[sel] for x in keys[1:]]))
        ks = np.delete(ks, np.searchsorted(ks, rem, side="left") + _ranks_in_runs(rem))
        add = np.sort(np.concatenate([x[sel] for x in new]))
        ks = np.insert(ks, np.searchsorted(ks, add), add)
    return ks, acc, int(sel.size)


class _LevelSampler:
    """Positions in the sorted multiset ks of a random edge of a uniformly random user (or
    movie); levels without edges fall back to a uniformly random edge."""

    def __init__(self, ks: np.ndarray, nu: int, nm: int, rng: np.random.Generator):
        self.ks, self.nu, self.nm, self.rng = ks, nu, nm, rng
        self._movie_order = None

    def _pick(self, start, count):
        pos = start + (self.rng.random(start.size) * count).astype(np.int64)
        empty = count == 0
        pos[empty] = self.rng.integers(0, self.ks.size, size=int(empty.sum()))
        return pos

    def by_user(self, size: int) -> np.ndarray:
        u = self.rng.integers(0, self.nu, size=size)
        lo = np.searchsorted(self.ks, u * self.nm)
        return self._pick(lo, np.searchsorted(self.ks, (u + 1) * self.nm) - lo)

    def by_movie(self, size: int) -> np.ndarray:
        if self._movie_order is None:               # edges grouped by movie, once per round
            mov = self.ks % self.nm
            self._movie_order = np.argsort(mov, kind="stable")
            self._count = np.bincount(mov, minlength=self.nm)
            self._start = np.concatenate(([0], np.cumsum(self._count)[:-1]))
        m = self.rng.integers(0, self.nm, size=size)
        pos = self._pick(self._start[m], self._count[m])
        inner = self._count[m] > 0
        pos[inner] = self._movie_order[pos[inner]]
        return pos


def _shake(ks: np.ndarray, D: np.ndarray, rng: np.random.Generator, nm: int, s: int) -> np.ndarray:
    """Degree-preserving random swaps among simple edges: about s random pairs, plus, for every
    stuck duplicate (u, m), one of u's other edges with a random partner, which changes the
    set of movies u lacks (a user next to almost every movie can otherwise block all swaps)."""
    E = ks.size
    lo = np.searchsorted(ks, (D // nm) * nm)
    hi = np.searchsorted(ks, (D // nm + 1) * nm)
    own = lo + (rng.random(D.size) * (hi - lo)).astype(np.int64)
    pos1 = np.unique(np.concatenate((own, rng.integers(0, E, size=s))))
    pos1 = pos1[_is_simple_at(ks, pos1)]
    pos1 = pos1[rng.permutation(pos1.size)]
    pos2 = rng.integers(0, E, size=pos1.size)
    ok = ~np.isin(pos2, pos1)                      # partners apart from the edges moved
    ks, _, _ = _swap_round(ks, ks[pos1[ok]], pos2[ok], nm)
    return ks


def simple_bipartite(du, dm, rng: np.random.Generator, max_rounds: int = 2000, patience: int = 60,
                     candidates: int = 2_000_000, max_tries: int = 512, shake_after: int = 3,
                     verbose: bool = False):
    """A simple bipartite graph with user degrees ``du`` and movie degrees ``dm``.

    Returns (user, movie, report): int32 edge arrays sorted by (user, movie) and a dict.
    Configuration model, then rounds of degree-preserving swaps of the duplicate edges with
    random simple edges (``_swap_round``; up to ``max_tries`` partners per duplicate, about
    ``candidates`` attempts per round).  When ``shake_after`` rounds in a row move nothing
    (a heavy user next to almost every movie can block every single swap), a round of random
    swaps among simple edges reshuffles the neighbourhoods first.  After ``patience`` rounds
    without progress, or ``max_rounds``, the remaining extra copies are dropped; the report
    gives the L1 change of the degrees.  Vectorised over edges; the Python loop is over rounds.
    """
    t0 = time.perf_counter()
    du = np.asarray(du, dtype=np.int64)
    dm = np.asarray(dm, dtype=np.int64)
    E = int(du.sum())
    if int(dm.sum()) != E:
        raise ValueError(f"degree sums differ: users {E}, movies {int(dm.sum())}")
    if (du < 0).any() or (dm < 0).any():
        raise ValueError("negative degree")
    nu, nm = du.size, dm.size
    if du.max(initial=0) > nm or dm.max(initial=0) > nu:
        raise ValueError("a degree exceeds the number of levels on the other side: no simple graph")
    # configuration model: users' stubs in order, movies' stubs shuffled
    mstubs = np.repeat(np.arange(nm, dtype=np.int64), dm)
    rng.shuffle(mstubs)
    ks = np.repeat(np.arange(nu, dtype=np.int64) * nm, du)
    ks += mstubs
    del mstubs
    ks.sort()                                       # the multiset of edges as keys u * nm + m
    same = ks[1:] == ks[:-1]
    D = ks[1:][same]                                # one entry per extra copy
    n_dup0 = int(D.size)
    if E:
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        max_mult = int(np.diff(np.append(starts, E)).max())
    else:
        max_mult = 0
    del same
    t_pair = time.perf_counter() - t0
    rounds = swaps = stalled = shakes = rotations = 0
    while D.size and rounds < max_rounds and stalled < patience:
        rounds += 1
        k = D.size
        r = int(min(max_tries, max(1, min(candidates, 4 * E) // k)))
        mode = "edge" if stalled == 0 else ("movie", "user", "rotation", "shake")[(stalled - 1) % 4]
        if mode == "edge":          # partners uniform over edges
            ks, acc, n_acc = _swap_round(ks, D, rng.integers(0, E, size=r * k), nm)
        else:                       # stuck: partners uniform over levels, which reaches the
            lev = _LevelSampler(ks, nu, nm, rng)       # light users and movies heavy ones lack
            if mode == "shake":
                ks = _shake(ks, D, rng, nm, s=int(min(E // 4, max(1000, 50 * k))))
                shakes += 1
                lev = _LevelSampler(ks, nu, nm, rng)
                mode = "rotation"
            if mode == "rotation":
                ks, acc, n_acc = _swap_round(ks, D, [lev.by_movie(r * k), lev.by_user(r * k)], nm)
                rotations += n_acc
            else:
                ks, acc, n_acc = _swap_round(
                    ks, D, lev.by_movie(r * k) if mode == "movie" else lev.by_user(r * k), nm)
        if n_acc == 0:
            stalled += 1
            continue
        stalled = 0
        swaps += n_acc
        left = np.ones(k, dtype=bool)
        left[acc] = False
        D = D[left]
        if verbose and (rounds <= 10 or rounds % 50 == 0 or not D.size):
            print(f"  round {rounds}: {k:,} duplicates x {r} tries ({mode}), {n_acc:,} moved, "
                  f"{D.size:,} left ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    dropped = int(D.size)
    if dropped:                                     # give up on these: remove the extra copies
        rem = np.sort(D)
        ks = np.delete(ks, np.searchsorted(ks, rem, side="left") + _ranks_in_runs(rem))
    user, movie = np.divmod(ks, nm)
    assert ks.size < 2 or bool((ks[1:] > ks[:-1]).all())
    report = dict(edges_requested=E, edges=int(ks.size), duplicates_initial=n_dup0,
                  duplicates_expected=round(expected_duplicates(du, dm)),
                  max_multiplicity_initial=max_mult, rounds=rounds, swaps=swaps, rotations=rotations, shakes=shakes,
                  duplicates_after=dropped, dropped=dropped, l1_user=dropped, l1_movie=dropped,
                  seconds_pairing=round(t_pair, 3), seconds=round(time.perf_counter() - t0, 3))
    return user.astype(np.int32), movie.astype(np.int32), report


def expected_duplicates(du, dm, chunk: int = 256) -> float:
    """Expected number of extra copies in the configuration model on these degrees,
    sum over pairs of (lam - 1 + exp(-lam)), lam = du * dm / E (Poisson approximation),
    grouped by distinct degree values."""
    du = np.asarray(du, dtype=np.int64)
    dm = np.asarray(dm, dtype=np.int64)
    E = float(du.sum())
    if E == 0:
        return 0.0
    vu, cu = np.unique(du[du > 0], return_counts=True)
    vm, cm = np.unique(dm[dm > 0], return_counts=True)
    tot = 0.0
    for i in range(0, vu.size, chunk):
        lam = np.outer(vu[i:i + chunk], vm) / E
        tot += float((np.outer(cu[i:i + chunk], cm) * (lam - 1.0 + np.exp(-lam))).sum())
    return tot


def degree_change(user, movie, du, dm) -> dict:
    """L1 distance between the requested degrees and those of the edge lists."""
    gu = np.bincount(user, minlength=len(du))
    gm = np.bincount(movie, minlength=len(dm))
    return dict(l1_user=int(np.abs(gu - du).sum()), l1_movie=int(np.abs(gm - dm).sum()))


# -- tables ---------------------------------------------------------------------------------
def _cache_file(cache_dir: Path, spec: dict) -> Path:
    h = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    name = (f"rows{spec['rows']}" if spec.get("rows") else f"ml32m_mc{spec['mc']}_uc{spec['uc']}")
    return cache_dir / f"{name}_seed{spec['seed']}_{h}.npz"


def _frame(cols: dict, report: dict):
    import pandas as pd

    df = pd.DataFrame(cols)
    df.attrs["report"] = report
    return df


def full_graph(seed: int = 1, cache: bool = False, cache_dir: Path | str | None = None,
               verbose: bool = False):
    """The simple bipartite graph with ml-32m's exact degrees: (user, movie, report), int32
    codes in the order of the count files, edges sorted by (user, movie).  With ``cache`` it
    is kept as <cache_dir>/ml32m_graph_seed<seed>_v<VERSION>.npz (256 MB) for later subsets."""
    path = None
    if cache:
        cdir = Path(cache_dir) if cache_dir is not None else CACHE
        cdir.mkdir(parents=True, exist_ok=True)
        path = cdir / f"ml32m_graph_seed{int(seed)}_v{VERSION}.npz"
        if path.exists():
            t0 = time.perf_counter()
            with np.load(path) as z:
                rep = json.loads(str(z["report"]))
                user, movie = z["user"], z["movie"]
            rep.update(cache=str(path), graph_from_cache=True,
                       seconds_load=round(time.perf_counter() - t0, 3))
            if "duplicates_expected" not in rep:
                rep["duplicates_expected"] = round(expected_duplicates(*real_degrees()))
            return user, movie, rep
    du, dm = real_degrees()
    user, movie, rep = simple_bipartite(du, dm, np.random.default_rng([int(seed), 0]), verbose=verbose)
    if path is not None:
        np.savez(path, report=np.array(json.dumps(rep)), user=user, movie=movie)
    return user, movie, rep


def generate(mc: int = 1, uc: int = 1, seed: int = 1, sd_user: float = DEFAULTS["sd_user"],
             sd_movie: float = DEFAULTS["sd_movie"], sigma: float = DEFAULTS["sigma"],
             intercept: float = DEFAULTS["intercept"], rows: int | None = None,
             users: int = 20_000, items: int = 2_000, beta_x: float = DEFAULTS["beta_x"],
             cache: bool = False, cache_dir: Path | str | None = None, verbose: bool = False):
    """A rating table (pandas DataFrame) from the crossed model, with its report in
    ``df.attrs["report"]``.

    * ``rows=None``: the ml-32m-shaped graph (:func:`full_graph`) restricted to MixedModels.jl's
      (mc, uc) subset; columns ``user``, ``movie`` (int32 codes 0..n-1) and ``y``.
      mc=1, uc=1: all 32,000,204 ratings.
    * ``rows=N``: N rows on ``users`` x ``items`` levels; columns ``user``, ``item``, ``x``, ``y``
      (``sd_movie`` is the item standard deviation).

    ``cache=True`` reads/writes ``<cache_dir>/<name>_seed<seed>_<hash>.npz`` (and the full
    graph, for the MovieLens shape).
    """
    spec = dict(version=VERSION, seed=int(seed), sd_user=float(sd_user), sd_movie=float(sd_movie),
                sigma=float(sigma), intercept=float(intercept))
    if rows:
        spec.update(rows=int(rows), users=int(users), items=int(items), beta_x=float(beta_x))
    else:
        spec.update(mc=int(mc), uc=int(uc))
    path = None
    if cache:
        cdir = Path(cache_dir) if cache_dir is not None else CACHE
        cdir.mkdir(parents=True, exist_ok=True)
        path = _cache_file(cdir, spec)
        if path.exists():
            with np.load(path) as z:
                report = json.loads(str(z["report"]))
                report.update(cache=str(path), from_cache=True)
                return _frame({k: z[k] for k in z.files if k != "report"}, report)
    t0 = time.perf_counter()
    if rows:
        cols, report = _rows_table(spec, np.random.default_rng([int(seed), 2]), verbose)
    else:
        cols, report = _movielens_table(spec, cache, cache_dir, verbose)
    report["seconds_total"] = round(time.perf_counter() - t0, 3)
    report["spec"] = spec
    if path is not None:
        np.savez(path, report=np.array(json.dumps(report)), **cols)
        report["cache"] = str(path)
    return _frame(cols, report)


def movielens_subset(mc: int, uc: int, seed: int = 1, cache: bool = False, cache_dir=None,
                     verbose: bool = False):
    """(user, movie, report) of the (mc, uc) subset of the full synthetic graph, recoded to
    consecutive codes; the report compares its size with MixedModels.jl's subset."""
    user, movie, rep = full_graph(seed, cache, cache_dir, verbose)
    rep = dict(rep)
    t0 = time.perf_counter()
    du, dm = real_degrees()
    if mc > 1 or uc > 1:
        keep = subset_mask(user, movie, mc, uc, du.size, dm.size)
        user, movie = user[keep], movie[keep]
    user, _ = _recode(user)
    movie, _ = _recode(movie)
    b = subset_bounds(mc, uc, du, dm)
    pub = published_row(mc, uc)
    if mc > 1 or uc > 1:          # had the subset been paired directly from its own degrees
        rep["subset_duplicates_expected"] = round(expected_duplicates(np.bincount(user), np.bincount(movie)))
    rep.update(mc=mc, uc=uc, rows=int(user.size), users=int(user.max()) + 1, movies=int(movie.max()) + 1,
               expected_rows=round(b["expected_rows"]), users_ge_uc=b["users_ge_uc"],
               movies_ge_mc=b["movies_ge_mc"], seconds_subset=round(time.perf_counter() - t0, 3),
               published=None if pub is None else dict(rows=pub["nratings"], users=pub["nusers"],
                                                       movies=pub["nmvie"]))
    return user, movie, rep


def _movielens_table(spec, cache, cache_dir, verbose):
    user, movie, rep = movielens_subset(spec["mc"], spec["uc"], spec["seed"], cache, cache_dir, verbose)
    rng = np.random.default_rng([spec["seed"], 1, spec["mc"], spec["uc"]])
    a = spec["sd_user"] * rng.standard_normal(rep["users"])
    b = spec["sd_movie"] * rng.standard_normal(rep["movies"])
    y = spec["intercept"] + a[user] + b[movie] + spec["sigma"] * rng.standard_normal(user.size)
    return dict(user=user, movie=movie, y=y), rep


def _rows_table(spec, rng, verbose):
    n, nu, ni = spec["rows"], spec["users"], spec["items"]
    if n < max(nu, ni):
        raise ValueError(f"rows={n} is fewer than the levels ({nu} users, {ni} items)")
    if n > nu * ni:
        raise ValueError(f"rows={n} exceeds users x items = {nu * ni}")
    du, di = uniform_degrees(n, nu, ni, rng)
    user, item, rep = simple_bipartite(du, di, rng, verbose=verbose)
    x = rng.standard_normal(user.size)
    a = spec["sd_user"] * rng.standard_normal(nu)
    b = spec["sd_movie"] * rng.standard_normal(ni)
    y = (spec["intercept"] + spec["beta_x"] * x + a[user] + b[item]
         + spec["sigma"] * rng.standard_normal(user.size))
    # shuffle the rows so that the table is not sorted by user (as a real data set would not be)
    order = rng.permutation(user.size)
    rep.update(rows=int(user.size), users=nu, items=ni)
    return dict(user=user[order], item=item[order], x=x[order], y=y[order]), rep


def uniform_degrees(n: int, nu: int, ni: int, rng: np.random.Generator):
    """Degrees of an n-edge design on nu x ni levels: every level once, the rest uniform."""
    du = 1 + rng.multinomial(n - nu, np.full(nu, 1.0 / nu))
    di = 1 + rng.multinomial(n - ni, np.full(ni, 1.0 / ni))
    return du, di


def format_report(rep: dict) -> str:
    lines = [f"rows {rep.get('rows', rep['edges']):,}"]
    if "users" in rep:
        lines.append(f"levels: {rep['users']:,} users x {rep.get('movies', rep.get('items')):,} "
                     f"{'movies' if 'movies' in rep else 'items'}")
    lines.append(f"graph of {rep['edges_requested']:,} edges, configuration model: "
                 f"{rep['duplicates_initial']:,} duplicate pairs (expected "
                 f"{rep.get('duplicates_expected', float('nan')):,}) "
                 f"({100 * rep['duplicates_initial'] / max(rep['edges_requested'], 1):.2f}% of edges, "
                 f"max multiplicity {rep['max_multiplicity_initial']})")
    lines.append(f"rewiring: {rep['swaps']:,} swaps in {rep['rounds']} rounds, "
                 f"{rep['duplicates_after']:,} duplicates left (dropped); degree L1 change "
                 f"users {rep['l1_user']:,}, movies {rep['l1_movie']:,}; graph {rep['seconds']:.1f} s"
                 + (" (graph read from the cache)" if rep.get("graph_from_cache") else ""))
    if rep.get("subset_duplicates_expected") is not None:
        lines.append(f"subset: a simple subgraph of the full graph (its degrees are the filter's); "
                     f"pairing its own degrees afresh would give ~{rep['subset_duplicates_expected']:,} "
                     "duplicates to rewire")
    if rep.get("published"):
        p = rep["published"]
        lines.append(f"MixedModels.jl subset: {p['rows']:,} rows, {p['users']:,} users x "
                     f"{p['movies']:,} movies; ours {rep['rows'] / p['rows'] - 1:+.3%} rows, "
                     f"{rep['users'] - p['users']:+,} users, {rep['movies'] - p['movies']:+,} movies")
    if "expected_rows" in rep:
        lines.append(f"from the counts: configuration-model expected rows A*B/E {rep['expected_rows']:,}; "
                     f"users with >= uc ratings {rep['users_ge_uc']:,}, movies with >= mc {rep['movies_ge_mc']:,}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mc", type=int, default=1)
    ap.add_argument("--uc", type=int, default=1)
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--graph-only", action="store_true",
                    help="build the graph (and subset) and print the degree report; no ratings")
    ap.add_argument("--cache-dir", default=None, help=f"default {CACHE}")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--counts", action="store_true",
                    help="print what the counts say about every published subset and exit")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.counts:
        du, dm = real_degrees()
        for r in published():
            b = subset_bounds(r["mc"], r["uc"], du, dm)
            print(f"mc={r['mc']:>3} uc={r['uc']:>3}: published {r['nratings']:>11,} rows "
                  f"{r['nusers']:>8,} users {r['nmvie']:>7,} movies | counts: expected rows "
                  f"{b['expected_rows']:>13,.0f}, users >= uc {b['users_ge_uc']:>8,}, movies >= mc "
                  f"{b['movies_ge_mc']:>7,}" + ("  (rows exact)" if b["exact"] else ""))
        return
    t0 = time.perf_counter()
    if a.graph_only:
        if a.rows:
            rng = np.random.default_rng([a.seed, 2])
            du, dm = uniform_degrees(a.rows, a.users, a.items, rng)
            user, movie, rep = simple_bipartite(du, dm, rng, verbose=a.verbose)
            assert degree_change(user, movie, du, dm) == dict(l1_user=rep["l1_user"], l1_movie=rep["l1_movie"])
            rep.update(rows=int(user.size), users=a.users, items=a.items)
        else:
            user, movie, rep = movielens_subset(a.mc, a.uc, a.seed, not a.no_cache, a.cache_dir, a.verbose)
    else:
        df = generate(mc=a.mc, uc=a.uc, seed=a.seed, rows=a.rows, users=a.users, items=a.items,
                      cache=not a.no_cache, cache_dir=a.cache_dir, verbose=a.verbose)
        rep = df.attrs["report"]
    print(format_report(rep))
    print(f"wall {time.perf_counter() - t0:.1f} s" + (f"; cache {rep['cache']}" if rep.get("cache") else ""))
    print(json.dumps({k: v for k, v in rep.items() if k != "spec"}))


if __name__ == "__main__":
    main()
