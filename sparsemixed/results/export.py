"""Tidy and machine-readable forms of a fit: to_dict (JSON-ready), to_frame (one row per
estimate, like broom.mixed's tidy), and an HTML summary for notebooks."""
from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd


def ranef_records(rf: pd.DataFrame) -> list[dict]:
    """A ranef_frame() as JSON-able records (grpvar, term, grp, condval, condsd)."""
    return [{"grpvar": r.grpvar, "term": r.term, "grp": str(r.grp), "condval": _num(r.condval),
             "condsd": _num(r.condsd)} for r in rf.itertuples(index=False)]


def _num(v):
    """A JSON-safe number (NaN/inf -> None)."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


class ExportMixin:
    """Methods mixed into LmerResult."""

    def to_dict(self, ranef: bool = True) -> dict:
        """Every estimate as plain Python data (json.dumps-able)."""
        m = self.model
        fe = pd.DataFrame({"estimate": self.fixef, "std_error": self.fixef_se})
        fe["t_value"] = fe["estimate"] / fe["std_error"]
        out = {
            "formula": m.formula, "REML": bool(self.REML), "nobs": int(self.nobs),
            "ngroups": {k: int(v) for k, v in self.ngroups.items()},
            "criterion": "REML" if self.REML else "ML", "objective": _num(self.objective),
            "loglik": _num(self.loglik), "aic": _num(self.aic), "bic": _num(self.bic),
            "deviance": _num(self.deviance) if self.deviance is not None else None,
            "sigma": _num(self.sigma), "theta": [_num(t) for t in self.theta],
            "is_singular": bool(self.is_singular), "converged": bool(self.converged),
            "fixef": [{"term": k, **{c: _num(v) for c, v in row.items()}} for k, row in fe.iterrows()],
            "vcov": {"names": list(self.vcov.index), "matrix": [[_num(x) for x in r] for r in self.vcov.to_numpy()]},
            "varcorr": [{k: (_num(v) if k in ("vcov", "sdcor") else (None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)))
                         for k, v in row.items()} for row in self.varcorr.to_dict("records")],
            "optimizer": {"method": self.optsummary.method, "evaluations": int(self.optsummary.feval),
                          "seconds": _num(self.optsummary.seconds), "returnvalue": str(self.optsummary.returnvalue)},
            "dropped_fixef": list(getattr(m, "dropped_fixef", [])),
        }
        if ranef:
            rf = self.ranef_frame()
            out["ranef"] = ranef_records(rf)
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per estimate: effect ("fixed" / "ran_pars"), group, term, estimate,
        std_error (fixed effects; NaN for variance parameters), statistic."""
        rows = []
        for term, est in self.fixef.items():
            se = self.fixef_se[term]
            rows.append(("fixed", None, term, est, se, est / se))
        for r in self.varcorr.itertuples(index=False):
            if r.grp == "Residual":
                term = "sd__Observation"
            elif r.var2 is None or (isinstance(r.var2, float) and np.isnan(r.var2)):
                term = f"sd__{r.var1}"
            else:
                term = f"cor__{r.var1}.{r.var2}"
            rows.append(("ran_pars", r.grp, term, r.sdcor, np.nan, np.nan))
        return pd.DataFrame(rows, columns=["effect", "group", "term", "estimate", "std_error", "statistic"])

    def _repr_html_(self) -> str:
        crit = "REML criterion" if self.REML else "deviance"
        head = (f"<p><b>Linear mixed model fit by {'REML' if self.REML else 'maximum likelihood'}</b> "
                f"[sparsemixed]<br><code>{html.escape(str(self.model.formula))}</code><br>"
                f"{crit} {self.objective:.4f}; logLik {self.loglik:.4f}; "
                f"{self.nobs:,} observations; groups: "
                + ", ".join(f"{html.escape(k)} {v:,}" for k, v in self.ngroups.items())
                + (" &mdash; <b>singular fit</b>" if self.is_singular else "") + "</p>")
        vc = self.varcorr.copy()
        fe = pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.fixef_se})
        fe["t value"] = fe["Estimate"] / fe["Std. Error"]
        return (head + "<p>Random effects</p>" + vc.to_html(index=False, float_format="%.4g", na_rep="")
                + "<p>Fixed effects</p>" + fe.to_html(float_format="%.4g"))
