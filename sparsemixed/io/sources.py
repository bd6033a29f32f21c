"""Row sources read in chunks: every pass is ``for chunk in source.chunks(columns)``.

    data = C_1 ++ C_2 ++ ... ++ C_m        (row-wise; each C_j a pandas DataFrame)

A source must be readable twice (pass 1 finds the levels, pass 2 accumulates the
cross-products), with at most ``chunksize`` rows in memory at once:

* ``CSV(path, chunksize, **read_csv_kw)``      pandas ``read_csv(chunksize=)``;
* ``Parquet(path | pyarrow Dataset | Table)``   pyarrow ``iter_batches`` / ``to_batches``;
* ``Chunks(list_of_frames | callable)``        a re-iterable of DataFrames, or a function
  returning a fresh iterator on each call (a one-shot generator cannot be read twice).

:func:`open_source` turns what ``lmer(data=...)`` was given into one of these.
pyarrow is imported only when a Parquet source is read.
"""
from __future__ import annotations

import collections.abc as cabc
import os
import pathlib

import pandas as pd

from ..errors import DataError

DEFAULT_CHUNKSIZE = 250_000
_CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".csv.zst",
                 ".tsv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")

SUPPORTED = ("a pandas DataFrame, a path to a .csv or .parquet file (or a directory of Parquet "
             "files), sparsemixed.io.CSV/Parquet/Chunks, a pyarrow Dataset or Table, a list of "
             "DataFrame chunks, a function returning an iterator of DataFrame chunks, or a dask "
             "DataFrame")


class ChunkSource:
    """Base: ``columns()`` (None if unknown before reading) and ``chunks(columns)``."""

    chunksize: int = DEFAULT_CHUNKSIZE

    def columns(self) -> list[str] | None:
        return None

    def chunks(self, columns: list[str]):
        raise NotImplementedError


class CSV(ChunkSource):
    """A delimited text file read with ``pandas.read_csv(chunksize=...)``; extra keyword
    arguments go to read_csv (e.g. ``dtype={"g": str}``, ``sep=";"``)."""

    def __init__(self, path, chunksize: int | None = None, **read_csv_kw):
        self.path = _existing(path)
        self.chunksize = int(chunksize or DEFAULT_CHUNKSIZE)
        self.kw = dict(read_csv_kw)
        if str(self.path).lower().endswith((".tsv", ".tsv.gz")):
            self.kw.setdefault("sep", "\t")

    def columns(self):
        return [str(c) for c in pd.read_csv(self.path, nrows=0, **self.kw).columns]

    def chunks(self, columns):
        with pd.read_csv(self.path, usecols=list(columns), chunksize=self.chunksize, **self.kw) as reader:
            yield from reader

    def __repr__(self):
        return f"CSV({str(self.path)!r}, chunksize={self.chunksize})"


class Parquet(ChunkSource):
    """A Parquet file (read by row-group batches), a directory of them, or a pyarrow
    Dataset / Table; ``kw`` go to ``pyarrow.dataset.dataset`` for paths."""

    def __init__(self, source, chunksize: int | None = None, **kw):
        self.source = _existing(source) if isinstance(source, (str, os.PathLike)) else source
        self.chunksize = int(chunksize or DEFAULT_CHUNKSIZE)
        self.kw = kw

    def _dataset(self):
        import pyarrow as pa
        import pyarrow.dataset as pads

        src = self.source
        if isinstance(src, pathlib.Path):
            return pads.dataset(str(src), format="parquet", **self.kw)
        if isinstance(src, pa.Table):
            return pads.dataset(src)
        return src

    def columns(self):
        return [n for n in self._dataset().schema.names if not n.startswith("__index_level_")]

    def chunks(self, columns):
        src = self.source
        if isinstance(src, pathlib.Path) and src.is_file() and not self.kw:
            import pyarrow.parquet as pq

            with pq.ParquetFile(str(src)) as f:
                for batch in f.iter_batches(batch_size=self.chunksize, columns=list(columns)):
                    if batch.num_rows:
                        yield batch.to_pandas()
            return
        for batch in self._dataset().to_batches(columns=list(columns), batch_size=self.chunksize):
            if batch.num_rows:
                yield batch.to_pandas()

    def __repr__(self):
        what = str(self.source) if isinstance(self.source, pathlib.Path) else type(self.source).__name__
        return f"Parquet({what!r}, chunksize={self.chunksize})"


class Chunks(ChunkSource):
    """DataFrame chunks given by a re-iterable (list, tuple ...) or by a function that
    returns a fresh iterable of DataFrames each time it is called."""

    def __init__(self, chunks):
        if isinstance(chunks, cabc.Iterator):
            raise DataError(
                f"data is a one-shot iterator ({type(chunks).__name__}); a streamed model reads its "
                "source twice (levels first, then cross-products). Pass a list of chunks, a file "
                "path, or a function returning a fresh iterator, e.g. "
                "lambda: pd.read_csv(path, chunksize=100_000)")
        self.source = chunks

    def _iter(self):
        it = self.source() if callable(self.source) else self.source
        for chunk in it:
            if isinstance(chunk, dict):
                chunk = pd.DataFrame(chunk)
            if not isinstance(chunk, pd.DataFrame):
                raise DataError(f"each chunk must be a pandas DataFrame, got {type(chunk).__name__}")
            yield chunk

    def chunks(self, columns):
        for chunk in self._iter():
            missing = [c for c in columns if c not in chunk.columns]
            if missing:
                raise DataError(f"a chunk lacks column(s) {missing}; every chunk needs the same columns")
            if len(chunk):
                yield chunk[list(columns)]

    def columns(self):
        for chunk in self._iter():
            return [str(c) for c in chunk.columns]
        raise DataError("the data have no chunks")

    def __repr__(self):
        return f"Chunks({type(self.source).__name__})"


def _existing(path) -> pathlib.Path:
    p = pathlib.Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise DataError(f"no such file or directory: {str(p)!r}")
    return p


def is_dask(data) -> bool:
    """A dask collection, recognised without importing dask."""
    mod = type(data).__module__.split(".")[0]
    return mod in ("dask", "dask_expr") and hasattr(data, "to_delayed")


def open_source(data, chunksize: int | None = None) -> ChunkSource:
    if isinstance(data, ChunkSource):
        return data
    if isinstance(data, (str, os.PathLike)):
        p = _existing(data)
        name = p.name.lower()
        if p.is_dir() or name.endswith(_PARQUET_SUFFIXES):
            return Parquet(p, chunksize)
        if name.endswith(_CSV_SUFFIXES):
            return CSV(p, chunksize)
        raise DataError(f"cannot tell the format of {str(p)!r} from its name; use a .csv or .parquet "
                        "name, or wrap it: sparsemixed.io.CSV(path, ...) / sparsemixed.io.Parquet(path)")
    if type(data).__module__.split(".")[0] == "pyarrow":
        return Parquet(data, chunksize)
    if isinstance(data, pd.io.parsers.TextFileReader):
        raise DataError("data is a pandas read_csv(chunksize=...) reader, which can be read only once; "
                        "pass the file path (and chunksize=) instead, or sparsemixed.io.CSV(path, ...)")
    if callable(data) or (isinstance(data, cabc.Iterable) and not isinstance(data, (str, bytes, dict))
                          and not hasattr(data, "__array__")):
        return Chunks(data)
    raise DataError(f"data must be {SUPPORTED}; got {type(data).__name__}")
