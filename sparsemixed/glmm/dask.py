"""GLMMs on a Dask DataFrame: the rows stay on the cluster, encoded once, persisted.

    build:   levels and fixed-effect encoding from the streamed pass (io/), the structural
             pattern of Z'Z summed over partitions, then per partition a block
             (X, Z, y, prior weights, offset; each row's positions in Z'Z's storage), persisted
    PIRLS:   each pass (glmm/rows.py) runs on every block where it lives; the client sums
             the blocks' results: sum d_i, or the cross-products on Z'Z's pattern
             (nnz(Z'Z) + q (p + 1) + p^2 numbers per block), and solves as in memory.

A PIRLS iteration is two passes over the blocks (one for the cross-products, one or more
for the penalized deviance); the gradient is one more (the blocks add up X'd, Z'd,
X'(h o w') and Z'(h o w'), given M^-1 on its pattern); the client
never holds row-level data.  The row-level methods (fitted, residuals, predict on the
fitted rows) refuse, as for a streamed linear model.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..crossprod import CrossProducts, z_matrix
from ..errors import ArgumentError, DataError
from .response import OFFSET, RESPONSE, WEIGHTS, GLMResponse, prepare
from .rows import MemoryRows, RowState
from .weighted import WeightedProducts


def _ones_gram(part: pd.DataFrame, enc):
    """Structural Z'Z of a partition (every stored entry counted 1: no value cancels)."""
    got = enc.arrays(part)
    if got is None:
        return None
    Z = z_matrix(got[2], [t.nlevels for t in enc.terms])
    ones = sp.csr_matrix((np.ones(Z.nnz), Z.indices, Z.indptr), shape=Z.shape)
    return (ones.T @ ones).tocsr()


def _add(a, b):
    if a is None:
        return b
    return a if b is None else a + b


def _block(part: pd.DataFrame, enc, cols, A, family, trials_weights):
    """A partition's rows as MemoryRows (None for a partition with no kept rows)."""
    df = part[enc.plan.columns]
    df = df.loc[~df.isna().any(axis=1).to_numpy()]
    got = enc.arrays(df)
    if got is None:
        return None
    _, X, rows, _ = got
    Z = z_matrix(rows, [t.nlevels for t in enc.terms])
    resp = GLMResponse(df[RESPONSE].to_numpy(dtype=float), df[WEIGHTS].to_numpy(dtype=float),
                       df[OFFSET].to_numpy(dtype=float), family, trials_weights)
    resp.check("the response", whole=False)
    return MemoryRows(WeightedProducts(Z, X[:, cols], A), resp)


def _deviance(block, beta, b):
    return 0.0 if block is None else block.evaluate(beta, b).deviance


def _products(block, beta, b, joint):
    if block is None:
        return None
    cp, _ = block.products(block.evaluate(beta, b), joint)
    return cp.ZtZ.data, cp.ZtX, cp.Zty, cp.XtX, cp.Xty, cp.yty, cp.n


def _deviance_products(block, beta, b, joint):
    """One pass: the deviance and the cross-products at the working weights."""
    if block is None:
        return 0.0, None
    s = block.evaluate(beta, b)
    cp, _ = block.products(s, joint)
    return s.deviance, (cp.ZtZ.data, cp.ZtX, cp.Zty, cp.XtX, cp.Xty, cp.yty, cp.n)


def _m2ll(block, beta, b):
    return 0.0 if block is None else block.minus2loglik(block.evaluate(beta, b))


def _gradient(block, relcov, theta, beta, b, Minv):
    return 0.0 if block is None else block.gradient_sums(relcov, theta, beta, b, Minv)


def _counts(block):
    """(rows with weight > 0, of them y == 0, y == 1, sum y) for the whole-response checks."""
    if block is None:
        return np.zeros(4)
    r = block.response
    used = r.prior_weights > 0
    y = r.y[used]
    return np.array([used.sum(), np.sum(y == 0), np.sum(y == 1), y.sum()], dtype=float)


def _start_parts(block):
    """X'X and X'(g(mustart) - offset): glm's unweighted start, summed over blocks."""
    if block is None:
        return None
    r, X = block.response, block.weighted.X
    t = r.family.link.linkfun(r.family.mustart(r.y, r.prior_weights)) - r.offset
    return X.T @ X, X.T @ t


class DaskRows:
    """glmm/rows.py's passes over persisted blocks, summed on the client."""

    in_memory = False

    def __init__(self, blocks, A, n):
        self.blocks, self.A, self._n = blocks, A, n

    @property
    def n(self) -> int:
        return self._n

    def _map(self, fn, *args):
        import dask

        return dask.compute(*[dask.delayed(fn, pure=True)(blk, *args) for blk in self.blocks])

    def evaluate(self, beta, b, joint=None) -> RowState:
        """The deviance at (beta, b); with ``joint`` given, the cross-products at its working
        weights too, in the same pass (PIRLS asks for them next unless it halves the step)."""
        if joint is None:
            return RowState(beta, b, float(sum(self._map(_deviance, beta, b))))
        out = self._map(_deviance_products, beta, b, joint)
        s = RowState(beta, b, float(sum(d for d, _ in out)))
        s.products = (joint, self._sum_products([p for _, p in out]))
        return s

    def products(self, s: RowState, joint: bool):
        if s.products is not None and s.products[0] == joint:
            return s.products[1], None
        return self._sum_products(self._map(_products, s.beta, s.b, joint)), None

    def _sum_products(self, parts) -> CrossProducts:
        parts = [p for p in parts if p is not None]
        A_vals = sum(p[0] for p in parts)
        ZtZ = sp.csr_matrix((A_vals, self.A.indices, self.A.indptr), shape=self.A.shape, copy=False)
        return CrossProducts(ZtZ, sum(p[1] for p in parts), sum(p[2] for p in parts), sum(p[3] for p in parts),
                             sum(p[4] for p in parts), float(sum(p[5] for p in parts)), int(sum(p[6] for p in parts)))

    @staticmethod
    def moved(a, b) -> float:
        return np.inf

    def minus2loglik(self, s: RowState) -> float:
        return float(sum(self._map(_m2ll, s.beta, s.b)))

    def gradient_sums(self, relcov, theta, beta, b, Minv) -> np.ndarray:
        return sum(self._map(_gradient, relcov, theta, beta, b, Minv))

    def counts(self) -> np.ndarray:
        return sum(self._map(_counts))

    def start_beta(self) -> np.ndarray:
        parts = [p for p in self._map(_start_parts) if p is not None]
        XtX, Xtt = sum(p[0] for p in parts), sum(p[1] for p in parts)
        return np.linalg.lstsq(XtX, Xtt, rcond=None)[0] if XtX.size else np.zeros(0)


def prepare_dask(formula, ddf, family, weights, offset):
    """prepare() per partition, lazily: the response, weights and offset columns added."""
    for label, v in (("weights", weights), ("offset", offset)):
        if v is not None and not isinstance(v, str):
            raise DataError(f"for a Dask DataFrame give {label}= as a column name, not a {type(v).__name__}")
    lhs = formula.split("~", 1)[0].strip()
    if lhs in ddf.columns:
        dtype = ddf[lhs].dtype
        if family.name == "binomial" and (dtype == object or pd.api.types.is_string_dtype(dtype)):
            raise DataError(f"binomial response {lhs!r} is text: on a Dask DataFrame give it as 0/1, as a logical "
                            "or as a categorical with known categories (ddf[col].astype('category') after "
                            "categorize()), so that every partition codes it alike")
    meta = prepare(formula, ddf._meta, family, weights, offset)
    out = ddf.map_partitions(lambda d: prepare(formula, d, family, weights, offset).data, meta=meta.data)
    return meta, out


def build(model, formula, ddf, family, weights, offset, na_action, ordering, memory_limit):
    """Fill ``model`` (a GeneralizedLinearMixedModel under construction) from a Dask DataFrame."""
    import dask

    from ..assemble import ModelParts, Source, check_terms, select_fixed
    from ..engine.reweight import values_on_pattern
    from ..formula.bars import parse_formula
    from ..io.dask_runner import DaskRunner, DaskSource
    from ..io.encode import Encoding
    from ..io.levels import Plan
    from ..io.partial import finish
    from ..io.streamed_model import StreamedModel

    meta, ddf2 = prepare_dask(formula, ddf, family, weights, offset)
    parsed = parse_formula(meta.formula)
    runner = DaskRunner(ddf2)
    plan = Plan.make(parsed, WEIGHTS, OFFSET, na_action, runner.columns())
    enc = Encoding.from_scan(runner.scan(plan), plan)
    part = runner.accumulate(enc)
    S = runner._reduce(plan.columns, _ones_gram, enc, _add)
    S.sort_indices()
    terms = list(enc.terms)
    check_terms(terms, enc.n, residual_variance=False)
    fixed = select_fixed(part.cp.XtX, enc.X_names)
    crossprod, fixed.shift = finish(part, fixed.cols)
    A = sp.csr_matrix((values_on_pattern(crossprod.ZtZ, S), S.indices.copy(), S.indptr.copy()), shape=S.shape)
    crossprod.ZtZ = A
    src = Source(formula, parsed, DaskSource(ddf), weights, offset, na_action, enc.n_dropped, enc.fixed_spec.rhs,
                 streamed=True)
    model.lmm = StreamedModel.from_model_parts(ModelParts(src, terms, crossprod, fixed, None, False), False,
                                               ordering, memory_limit)
    blocks = [dask.delayed(_block, pure=True)(p, enc, fixed.cols, A, family, meta.trials_weights)
              for p in ddf2[plan.columns].to_delayed()]
    blocks = list(dask.persist(*blocks))
    model.rows = DaskRows(blocks, A, enc.n)
    model.response_label = meta.response_label
    n_used, n0, n1, _ = model.rows.counts()
    if family.name == "binomial" and n_used and (n0 == n_used or n1 == n_used):
        raise DataError(f"binomial response {meta.response_label!r} is {0 if n0 == n_used else 1} in every row: "
                        "nothing to estimate")
    if family.name == "poisson" and n_used and n0 == n_used:
        raise DataError(f"poisson response {meta.response_label!r} is 0 in every row: nothing to estimate")


def check_nagq(nAGQ: int) -> None:
    if nAGQ > 1:
        raise ArgumentError("nAGQ > 1 (adaptive quadrature) is not available for Dask data; use nAGQ=1 or 0")
