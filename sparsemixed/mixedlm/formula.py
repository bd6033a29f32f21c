"""MixedLM.from_formula: statsmodels' formula interface, encoded with formulaic.

    formula     -> endog, exog            (fixed effects; "Intercept" as statsmodels names it)
    re_formula  -> exog_re                (None: a random intercept, unless vc_formula is given)
    vc_formula  -> one variance component per key, in sorted key order; its random effects
                   are the (group, column) pairs that occur, its Z entries the column values

statsmodels evaluates each vc formula group by group (a Python loop); here it is
evaluated once, sparsely, and the (group, column) pairs found with one np.unique.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ArgumentError, DataError, FormulaError, MissingDataWarning


def _matrix(formula: str, data: pd.DataFrame, what: str, sparse: bool = False):
    from formulaic import model_matrix

    try:
        return model_matrix(formula, data, na_action="raise", output="sparse" if sparse else "pandas")
    except Exception as exc:      # formulaic's parse/encoding errors, unknown names
        raise FormulaError(f"cannot encode {what} {formula!r}: {exc}") from None


def _variables(formula: str, data: pd.DataFrame) -> set[str]:
    from formulaic import Formula

    try:
        names = {str(v) for v in Formula(formula).required_variables}
    except Exception as exc:
        raise FormulaError(f"cannot parse formula {formula!r}: {exc}") from None
    return {v for v in names if v in data.columns}


def _vc_component(name, formula, data, gcodes):
    mm = _matrix(formula, data, f"vc_formula[{name!r}]", sparse=True)
    cols = list(mm.model_spec.column_names)
    A = sp.coo_matrix(mm)
    keep = A.data != 0
    r, c, v = A.row[keep], A.col[keep], A.data[keep].astype(float)
    m = max(len(cols), 1)
    key = gcodes[r] * m + c
    uniq, lev = np.unique(key, return_inverse=True)
    Z = sp.csr_matrix((v, (r, lev.reshape(-1))), shape=(len(data), uniq.size))
    from .model import _VC

    return _VC(name, Z, uniq // m, [cols[k] for k in uniq % m])


def model_from_formula(cls, formula, data, re_formula, vc_formula, subset, missing, kwargs):
    if "groups" not in kwargs:
        raise ArgumentError("'groups' is a required keyword argument in MixedLM.from_formula: pass the "
                            "grouping column's name (groups=\"Subject\") or one label per row")
    groups = kwargs.pop("groups")
    use_sqrt = kwargs.pop("use_sqrt", True)
    if not isinstance(data, pd.DataFrame):
        data = pd.DataFrame(data)
    if data.shape[0] == 0:
        raise DataError("data has no rows")
    if isinstance(groups, str):
        if groups not in data.columns:
            raise DataError(f"groups column {groups!r} is not in the data")
        group_name, gser = groups, data[groups]
    else:
        group_name = "Group"
        gser = pd.Series(np.asarray(groups), index=data.index)
        if len(gser) != len(data):
            raise DataError(f"groups has {len(gser)} values but data has {len(data)} rows")
    if subset is not None:
        data, gser = data.loc[subset], gser.loc[subset]
    used = _variables(formula, data)
    if re_formula is not None and re_formula.strip() not in ("1", "0", "~1", "~0"):
        used |= _variables(re_formula if "~" in re_formula else "~" + re_formula, data)
    for f in (vc_formula or {}).values():
        used |= _variables(f if "~" in f else "~" + f, data)
    na = data[sorted(used)].isna().any(axis=1).to_numpy() | gser.isna().to_numpy()
    if na.any():
        cols = [c for c in sorted(used) if data[c].isna().any()] + ([group_name] if gser.isna().any() else [])
        if missing != "drop":
            raise DataError(f"{int(na.sum())} row(s) have missing values in {cols}; use missing='drop' "
                            "to drop them (statsmodels' option)")
        warnings.warn(f"dropped {int(na.sum())} row(s) with missing values in {cols}", MissingDataWarning,
                      stacklevel=3)
        data, gser = data.loc[~na], gser.loc[~na]
        if data.shape[0] == 0:
            raise DataError("no rows are left after dropping missing values")
    # text columns used as covariates: numbers as numbers, stray text refused (as lmer does)
    from ..formula.design import _text_covariates

    exprs = [formula, re_formula or "", *(vc_formula or {}).values()]
    numeric = _text_covariates(data, [c for c in sorted(used) if not isinstance(groups, str) or c != groups],
                               exprs)
    if numeric:
        data = data.assign(**numeric)
    mm = _matrix(formula, data, "formula")
    if not hasattr(mm, "lhs"):
        raise FormulaError(f"formula {formula!r} needs a response on the left of '~'")
    endog = mm.lhs.iloc[:, 0]
    if mm.lhs.shape[1] != 1:
        raise FormulaError(f"the response of {formula!r} must be one numeric column")
    exog = mm.rhs
    labels, gcodes = np.unique(gser.to_numpy(), return_inverse=True)
    gcodes = gcodes.reshape(-1).astype(np.int64)
    if re_formula is None or re_formula.strip() in ("1", "~1"):
        if re_formula is None and vc_formula:
            exog_re, re_names = None, []
        else:
            exog_re, re_names = np.ones((len(data), 1)), [group_name]
    else:
        rf = re_formula if "~" in re_formula else "~" + re_formula
        rm = _matrix(rf, data, "re_formula")
        re_names = [c.replace("Intercept", group_name) for c in rm.columns]
        exog_re = rm.to_numpy(dtype=float)
    vcs = None
    if vc_formula:
        vcs = [_vc_component(name, vc_formula[name] if "~" in vc_formula[name] else "~" + vc_formula[name],
                             data, gcodes) for name in sorted(vc_formula)]
    if exog_re is None and not vcs:
        exog_re, re_names = np.zeros((len(data), 0)), []
    return cls(endog.to_numpy(dtype=float), exog, gser.to_numpy(), exog_re=exog_re, use_sqrt=use_sqrt,
               formula=formula, group_name=group_name, _vcs=vcs or None, exog_re_names=re_names,
               endog_name=str(endog.name))
