"""The random effects of a fit by grouping factor (lme4's ranef() and coef()):

    b = Lambda u, cut per term into (levels x columns) blocks;  coef = fixef + b per factor

Shared by LmerResult and GlmerResult (each supplies ``model.terms``, ``b`` and ``fixef``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


class RandomEffectsMixin:
    @property
    def ngroups(self) -> dict:
        out = {}
        for t in self.model.terms:
            out.setdefault(t.group.name, t.nlevels)
        return out

    def _term_blocks(self, vec):
        off = 0
        for t in self.model.terms:
            yield t, vec[off: off + t.q].reshape(t.nlevels, t.k)
            off += t.q

    @property
    def ranef(self) -> dict:
        """Conditional modes b = Lambda u: grouping factor -> DataFrame (levels x terms)."""
        out: dict[str, pd.DataFrame] = {}
        for t, block in self._term_blocks(self.b):
            df = pd.DataFrame(block, index=pd.Index(t.group.levels, name=t.group.name), columns=t.columns)
            if t.group.name in out:
                prev = out[t.group.name]
                df = pd.concat([prev, df.rename(columns=lambda c: c if c not in prev.columns else f"{c}.1")], axis=1)
            out[t.group.name] = df
        return out

    def coef(self) -> dict:
        """lme4's coef(): per grouping factor, fixed effects plus that factor's random effects."""
        fe = self.fixef
        out = {}
        for g, re in self.ranef.items():
            df = pd.DataFrame({name: np.full(len(re), val) for name, val in fe.items()}, index=re.index)
            for c in re.columns:
                base = c.removesuffix(".1")
                df[base] = df[base] + re[c] if base in df else re[c]
            out[g] = df
        return out
