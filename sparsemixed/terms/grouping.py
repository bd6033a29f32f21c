"""A grouping factor: the map row -> level index, ``codes[i] in 0..nlevels-1``.

For an interaction ``b:a`` the level of row i is the pair (b_i, a_i); lme4 orders the
pairs with the first factor varying slowest and labels them ``"b_level:a_level"``.
Unused levels (of a pandas categorical or of an interaction) are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError


def _level_labels(values) -> list[str]:
    out = []
    for v in values:
        if isinstance(v, (float, np.floating)):
            out.append(str(int(v)) if float(v).is_integer() else repr(float(v)))
        else:
            out.append(str(v))
    return out


def encode_column(col: pd.Series, name: str) -> tuple[np.ndarray, list[str]]:
    """Codes (int64, 0-based) and level labels of one column used as a factor."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy(dtype=np.int64)
        categories = col.cat.categories
        used = np.bincount(codes[codes >= 0], minlength=len(categories)) > 0
        if not used.all():                 # unused categories dropped, the others in their order
            new = np.cumsum(used) - 1
            codes = np.where(codes >= 0, new[np.maximum(codes, 0)], -1)
            categories = categories[used]
        labels = _level_labels(categories)
    else:
        values = col.to_numpy()
        try:
            codes, uniq = pd.factorize(values, sort=True)      # hashing: ~10x np.unique on text
            uniq = np.asarray(uniq)
        except TypeError as exc:  # mixed types, e.g. numbers and strings
            raise DataError(
                f"grouping column {name!r} mixes value types ({exc}); convert it to one type, "
                f"e.g. data[{name!r}].astype(str)"
            ) from None
        codes = codes.astype(np.int64).reshape(-1)
        labels = _level_labels(uniq)
    if len(set(labels)) != len(labels):
        raise DataError(f"grouping column {name!r} has distinct values with the same text label; "
                        "convert it to strings first")
    return codes, labels


@dataclass
class GroupingFactor:
    """Levels of a grouping factor (possibly an interaction); codes are kept apart (TermRows)."""

    name: str
    factors: tuple[str, ...]
    levels: list[str]

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @classmethod
    def from_data(cls, factors: tuple[str, ...], data: pd.DataFrame) -> tuple["GroupingFactor", np.ndarray]:
        codes, labels = encode_column(data[factors[0]], factors[0])
        for f in factors[1:]:
            c2, l2 = encode_column(data[f], f)
            combined = codes * len(l2) + c2
            uniq, codes = np.unique(combined, return_inverse=True)
            labels = [f"{labels[u // len(l2)]}:{l2[u % len(l2)]}" for u in uniq]
            codes = codes.astype(np.int64).reshape(-1)
        return cls(":".join(factors), tuple(factors), labels), codes

    def codes_for(self, data: pd.DataFrame) -> np.ndarray:
        """Codes of new data against these levels; -1 marks a level not seen in the fit."""
        keys = data[self.factors[0]].astype("object").map(lambda v: _level_labels([v])[0])
        for f in self.factors[1:]:
            keys = keys + ":" + data[f].astype("object").map(lambda v: _level_labels([v])[0])
        index = pd.Index(self.levels)
        return index.get_indexer(keys.to_numpy()).astype(np.int64)
