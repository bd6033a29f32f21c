"""Contrast families for :func:`sparsemixed.contrast`, R emmeans' ``.emmc`` functions.

Each takes the k level labels of one family and returns the k x m coefficient matrix
(columns = contrasts), their names and emmeans' attributes: the default adjustment,
whether the family is "pairs" (Tukey's method applies) and the family size.

    pairwise      a - b, a - c, ..., b - c          (i < j; tukey)
    revpairwise   b - a, c - a, c - b ...           (i > j; tukey)
    trt.vs.ctrl   b - a, c - a (ref = the control; dunnettx); trt.vs.ctrlk: ref = last
    dunnett       = trt.vs.ctrl
    consec        b - a, c - b                      (mvt)
    poly          orthogonal polynomials, integer scaled (R's poly(), none)
    eff           level - mean of all levels        (fdr)
    del.eff       level - mean of the other levels  (fdr)
    identity      each level itself                 (none)
    a dict        {name: coefficients}              (none)

Level references (``ref``, ``exclude``) are level labels, or 1-based positions as in R.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError


@dataclass
class ContrastFamily:
    names: list
    coef: np.ndarray            # k x m
    desc: str
    adjust: str = "none"
    type: str | None = None     # "pairs" for pairwise families
    fam_size: int | None = None


def _positions(levs, keys, what: str) -> list[int]:
    """0-based positions of level labels or 1-based R positions."""
    if keys is None:
        return []
    if isinstance(keys, (str, int, np.integer)):
        keys = [keys]
    out = []
    for k in keys:
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            if not 1 <= k <= len(levs):
                raise ArgumentError(f"{what} position {k} is out of range 1..{len(levs)} (positions are 1-based, "
                                    f"as in emmeans; or give a level label: {', '.join(levs)})")
            out.append(int(k) - 1)
        elif str(k) in levs:
            out.append(levs.index(str(k)))
        else:
            raise ArgumentError(f"{what} {k!r} is not one of the levels ({', '.join(levs)})")
    return out


def _excluded(levs, exclude, include) -> list[int]:
    ex = _positions(levs, exclude, "exclude")
    if include is not None:
        inc = _positions(levs, include, "include")
        ex = [i for i in range(len(levs)) if i not in inc]
    return sorted(set(ex))


def _fs(levs, ex):
    return len(levs) - len(ex) if ex else None


def pairwise(levs, exclude=None, include=None, **_):
    ex = _excluded(levs, exclude, include)
    k = len(levs)
    names, cols = [], []
    for i in range(k - 1):
        if i in ex:
            continue
        for j in range(i + 1, k):
            if j in ex:
                continue
            c = np.zeros(k)
            c[i], c[j] = 1, -1
            names.append(f"{levs[i]} - {levs[j]}")
            cols.append(c)
    return ContrastFamily(names, _mat(cols, k), "pairwise differences", "tukey", "pairs", k - len(ex))


def revpairwise(levs, exclude=None, include=None, **_):
    ex = _excluded(levs, exclude, include)
    k = len(levs)
    names, cols = [], []
    for i in range(1, k):
        if i in ex:
            continue
        for j in range(i):
            if j in ex:
                continue
            c = np.zeros(k)
            c[i], c[j] = 1, -1
            names.append(f"{levs[i]} - {levs[j]}")
            cols.append(c)
    return ContrastFamily(names, _mat(cols, k), "pairwise differences", "tukey", "pairs", _fs(levs, ex))


def trt_vs_ctrl(levs, ref=1, reverse=False, exclude=None, include=None, **_):
    refs = _positions(levs, ref, "ref")
    if not refs:
        raise ArgumentError("trt.vs.ctrl needs a reference level (ref=)")
    ex = _excluded(levs, exclude, include)
    if set(ex) & set(refs):
        raise ArgumentError("the exclude set cannot overlap with ref")
    k = len(levs)
    cnm = levs[refs[0]] if len(refs) == 1 else "avg(" + ",".join(levs[r] for r in refs) + ")"
    names, cols = [], []
    for i in range(k):
        if i in refs or i in ex:
            continue
        c = np.zeros(k)
        c[refs] = -1.0 / len(refs)
        c[i] = 1
        names.append(f"{cnm} - {levs[i]}" if reverse else f"{levs[i]} - {cnm}")
        cols.append(-c if reverse else c)
    return ContrastFamily(names, _mat(cols, k), "differences from control", "dunnettx", None, _fs(levs, ex))


def trt_vs_ctrlk(levs, ref=None, **kw):
    return trt_vs_ctrl(levs, ref=len(levs) if ref is None else ref, **kw)


def consec(levs, reverse=False, exclude=None, include=None, **_):
    ex = _excluded(levs, exclude, include)
    active = [i for i in range(len(levs)) if i not in ex]
    sgn = -1 if reverse else 1
    names, cols = [], []
    for a, b in zip(active[:-1], active[1:]):
        c = np.zeros(len(levs))
        c[a], c[b] = -sgn, sgn
        names.append(f"{levs[a]} - {levs[b]}" if reverse else f"{levs[b]} - {levs[a]}")
        cols.append(c)
    return ContrastFamily(names, _mat(cols, len(levs)), "changes between consecutive levels", "mvt", None,
                          _fs(levs, ex))


def r_poly(k: int, degree: int) -> np.ndarray:
    """R's poly(1:k, degree): orthonormal polynomial columns, each the residual of the
    centred x^j on the lower powers (positive leading coefficient), scaled to unit length."""
    x = np.arange(1, k + 1, dtype=float)
    x -= x.mean()
    X = np.vander(x, degree + 1, increasing=True)
    out = np.empty((k, degree))
    for j in range(1, degree + 1):
        coef = np.linalg.lstsq(X[:, :j], X[:, j], rcond=None)[0]
        r = X[:, j] - X[:, :j] @ coef
        out[:, j - 1] = r / np.linalg.norm(r)
    return out


def poly(levs, max_degree=None, **_):
    k = len(levs)
    deg = min(6, k - 1) if max_degree is None else int(max_degree)
    deg = min(20, deg)
    M = r_poly(k, deg)
    for j in range(deg):
        con = M[:, j]
        con = con / np.min(con[con > 0.01])
        z = np.max(np.abs(con - np.round(con)))
        while z > 0.05:
            con = con / z
            z = np.max(np.abs(con - np.round(con)))
        M[:, j] = np.round(con)
    names = ["linear", "quadratic", "cubic", "quartic"] + [f"degree {d}" for d in range(5, 21)]
    return ContrastFamily(names[:deg], M, "polynomial contrasts", "none")


def eff(levs, wts=None, exclude=None, include=None, **_):
    ex = _excluded(levs, exclude, include)
    k = len(levs)
    w = np.ones(k) if wts is None else np.asarray(wts, float)
    if ex and w.size == k - len(ex):
        full = np.zeros(k)
        full[[i for i in range(k) if i not in ex]] = w
        w = full
    if w.size != k:
        raise ArgumentError("the length of wts must equal the number of levels or of included levels")
    w = w.copy()
    w[ex] = 0
    w = w / w.sum()
    names, cols = [], []
    for i in range(k):
        if i in ex:
            continue
        c = -w.copy()
        c[i] += 1
        names.append(f"{levs[i]} effect")
        cols.append(c)
    return ContrastFamily(names, _mat(cols, k), "differences from grand mean", "fdr", None, _fs(levs, ex))


def del_eff(levs, exclude=None, include=None, **_):
    ex = _excluded(levs, exclude, include)
    k = len(levs)
    active = [i for i in range(k) if i not in ex]
    n = len(active)
    names, cols = [], []
    for i in active:
        c = np.zeros(k)
        c[active] = -1.0 / (n - 1)
        c[i] = 1
        names.append(f"{levs[i]} effect")
        cols.append(c)
    return ContrastFamily(names, _mat(cols, k), "differences from mean of others", "fdr", None, _fs(levs, ex))


def identity(levs, exclude=None, include=None, **_):
    ex = _excluded(levs, exclude, include)
    k = len(levs)
    names, cols = [], []
    for i in range(k):
        if i in ex:
            continue
        c = np.zeros(k)
        c[i] = 1
        names.append(str(levs[i]))
        cols.append(c)
    return ContrastFamily(names, _mat(cols, k), "identity", "none")


def custom(levs, coefs: dict, **_):
    names, cols = [], []
    for name, c in coefs.items():
        c = np.asarray(c, float).reshape(-1)
        if c.size != len(levs):
            raise ArgumentError(f"contrast {name!r} has {c.size} coefficients; the family has {len(levs)} levels "
                                f"({', '.join(map(str, levs))})")
        names.append(str(name))
        cols.append(c)
    return ContrastFamily(names, _mat(cols, len(levs)), "custom", "none")


def _mat(cols, k) -> np.ndarray:
    return np.column_stack(cols) if cols else np.zeros((k, 0))


FAMILIES = {
    "pairwise": pairwise, "revpairwise": revpairwise, "trt.vs.ctrl": trt_vs_ctrl, "trt.vs.ctrl1": trt_vs_ctrl,
    "trt.vs.ctrlk": trt_vs_ctrlk, "dunnett": trt_vs_ctrl, "consec": consec, "poly": poly, "eff": eff,
    "del.eff": del_eff, "identity": identity,
}


def family(method, levs, **options) -> ContrastFamily:
    """The coefficients of ``method`` (a name in FAMILIES, underscores allowed for dots, a
    dict of coefficient vectors, or a callable levs -> ContrastFamily or dict) for ``levs``."""
    levs = [str(v) for v in levs]
    if isinstance(method, dict):
        return custom(levs, method)
    if callable(method):
        out = method(levs, **options)
        return out if isinstance(out, ContrastFamily) else custom(levs, dict(out))
    if not isinstance(method, str):
        raise ArgumentError(f"method must be a contrast family name ({', '.join(FAMILIES)}), a dict of "
                            f"coefficient vectors or a function, got {type(method).__name__}")
    key = method.strip().replace("_", ".")
    if key.endswith(".emmc"):
        key = key[:-5]
    if key not in FAMILIES:
        raise ArgumentError(f"unknown contrast method {method!r}; use one of {', '.join(FAMILIES)} or a dict "
                            "{name: coefficients}")
    return FAMILIES[key](levs, **options)
