"""Progress bars on stderr (tqdm), only when asked: the library is silent by default."""
from __future__ import annotations


def progress(iterable=None, *, desc: str, unit: str, enabled: bool, leave: bool = False):
    """``iterable`` wrapped in a tqdm bar when ``enabled`` (a manual bar, to ``update()``,
    when ``iterable`` is None); otherwise ``iterable`` itself (None for a manual bar)."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit=unit, leave=leave)
