"""Row sources read in chunks: every pass is ``for chunk in source.chunks(columns, ledger)``.

    data = C_1 ++ C_2 ++ ... ++ C_m        (row-wise; each C_j a pandas DataFrame)

A source must be readable twice (pass 1 finds the levels, pass 2 accumulates the
cross-products), with at most ``chunksize`` rows in memory at once:

* ``CSV(path, chunksize, **read_csv_kw)``      pandas ``read_csv(chunksize=)``;
* ``Parquet(path | [paths] | pyarrow Dataset | Table)``   pyarrow, file by file, by row group;
* ``Chunks(list_of_frames | callable)``        a re-iterable of DataFrames, or a function
  returning a fresh iterator on each call (a one-shot generator cannot be read twice).

:func:`open_source` turns what ``lmer(data=...)`` was given into one of these.
pyarrow is imported only when a Parquet source is read.

Files are checked as they are read, and every failure is a :class:`DataError` naming the
file and what to do (never a raw pyarrow error, never rows quietly read as missing):

    footer      a file that is empty, not Parquet (README.txt), truncated, or whose footer
                does not parse                                    -> refused when opened
    schema      every file has every column read, all of one type class (integer, floating
                point, text ...); the odd file is named -- all before any row is read
    pages       a page that does not decode, or fails its CRC (pyarrow verifies page
                checksums when the writer stored them: ``write_page_checksum=True``), a
                batch that fails pyarrow's full validation (e.g. text that is not UTF-8),
                and a file that decodes to a row count other than its footer's
    ledger      stamp(f) = (size, mtime_ns, inode, digest of the Parquet footer), taken when
                a file is opened in pass 1 and compared when it is opened in pass 2 and
                after each read: a file changed, added or removed between (or during) the
                passes is refused (:class:`Ledger`; CSV files: size, mtime_ns, inode)
"""
from __future__ import annotations

import collections.abc as cabc
import difflib
import hashlib
import os
import pathlib
import sys

import pandas as pd

from ..errors import DataError, SparseMixedError

DEFAULT_CHUNKSIZE = 250_000
_CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".csv.zst",
                 ".tsv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_SKIPPED = (".", "_")          # as pyarrow's dataset discovery: _SUCCESS, _metadata, .crc files ...
INSTALL_PARQUET = "pip install 'sparsemixed[parquet]'"

SUPPORTED = ("a pandas DataFrame, a path to a .csv or .parquet file (or a directory of Parquet "
             "files), sparsemixed.io.CSV/Parquet/Chunks, a pyarrow Dataset or Table, a list of "
             "DataFrame chunks, a function returning an iterator of DataFrame chunks, or a dask "
             "DataFrame")


class Ledger:
    """Each file's stamp as the first pass of one build saw it, checked by the second.

    A streamed build reads its source twice; the levels found in pass 1 must describe the
    rows of pass 2.  A runner makes one Ledger per build and hands it to both passes; in
    each pass the source calls ``begin()``, ``note(file, stamp)`` for every file it will
    read, then ``end()`` -- before reading any row, so a changed, added or removed file
    stops pass 2 at its start."""

    def __init__(self):
        self.first: dict | None = None      # name -> stamp, once a pass has completed
        self._seen: dict = {}

    def begin(self) -> None:
        self._seen = {}

    def note(self, name: str, stamp) -> None:
        if self.first is not None:
            if name not in self.first:
                raise changed_error(name, BETWEEN, "appeared")
            if self.first[name] != stamp:
                raise changed_error(name, BETWEEN)
        self._seen[name] = stamp

    def end(self) -> None:
        if self.first is None:
            self.first = self._seen
            return
        gone = [n for n in self.first if n not in self._seen]
        if gone:
            raise changed_error(gone[0], BETWEEN, "was removed")


BETWEEN = "between the first pass over the data (levels) and the second (cross-products)"


def changed_error(name: str, when: str, what: str = "changed") -> DataError:
    why = " (its size, modification time or Parquet footer differ)" if what == "changed" else ""
    return DataError(f"{name} {what} {when}{why}. A streamed build reads its source twice, so the files must not "
                     "change while it runs: build again once the writes are finished, or read a copy")


class ChunkSource:
    """Base: ``columns()`` (None if unknown before reading) and ``chunks(columns, ledger)``."""

    chunksize: int = DEFAULT_CHUNKSIZE

    def columns(self) -> list[str] | None:
        return None

    def chunks(self, columns: list[str], ledger: Ledger | None = None):
        raise NotImplementedError


def read_pass(source: ChunkSource, columns, ledger: Ledger | None):
    """``source.chunks(columns, ledger)``; a ChunkSource written for ``chunks(columns)`` alone
    (before the ledger existed) is called that way."""
    import inspect

    try:
        params = inspect.signature(source.chunks).parameters.values()
    except (TypeError, ValueError):
        params = ()
    takes = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) >= 2 or \
        any(p.kind == p.VAR_POSITIONAL for p in params)
    return source.chunks(columns, ledger) if takes else source.chunks(columns)


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
        return [str(c) for c in _guard(lambda: pd.read_csv(self.path, nrows=0, **self.kw), self._failed).columns]

    def _failed(self, exc) -> DataError:
        return DataError(f"cannot read {self.path} as delimited text: {_message(exc)}. Check the file (and the "
                         "read_csv options given to sparsemixed.io.CSV, e.g. sep=, encoding=)")

    def chunks(self, columns, ledger=None):
        name = str(self.path)
        stamp = _os_stamp(self.path, parquet=False)
        if ledger is not None:
            ledger.begin()
            ledger.note(name, stamp)
            ledger.end()
        reader = _guard(lambda: pd.read_csv(self.path, usecols=list(columns), chunksize=self.chunksize, **self.kw),
                        self._failed)
        with reader:
            while (chunk := _guard(lambda: next(reader, None), self._failed)) is not None:
                yield chunk
        if _os_stamp(self.path, parquet=False) != stamp:
            raise changed_error(name, "while it was being read")

    def __repr__(self):
        return f"CSV({str(self.path)!r}, chunksize={self.chunksize})"


class Parquet(ChunkSource):
    """A Parquet file, a directory of them (read recursively; names starting with '.' or '_'
    skipped), a list of Parquet files, or a pyarrow Dataset / Table; ``kw`` go to
    ``pyarrow.dataset.dataset`` for paths (e.g. ``partitioning="hive"``).

    Files are read one at a time, row group by row group, in batches of ``chunksize`` rows,
    and checked as they are read (module docstring)."""

    def __init__(self, source, chunksize: int | None = None, **kw):
        if isinstance(source, (str, os.PathLike)):
            source = _existing(source)
        elif isinstance(source, (list, tuple)):
            if not source or not all(isinstance(p, (str, os.PathLike)) for p in source):
                raise DataError("sparsemixed.io.Parquet takes a path, a non-empty list of paths of Parquet files, "
                                "or a pyarrow Dataset or Table")
            source = tuple(_existing(p) for p in source)
        if isinstance(source, (pathlib.Path, tuple)):
            need_pyarrow()
        self.source = source
        self.chunksize = int(chunksize or DEFAULT_CHUNKSIZE)
        self.kw = kw

    # --- what is read -----------------------------------------------------------------
    def _files(self) -> list[pathlib.Path] | None:
        """The files read, in order (None for a pyarrow object or a path with dataset options)."""
        src = self.source
        if isinstance(src, tuple):
            return list(src)
        if not isinstance(src, pathlib.Path) or self.kw:
            return None
        if not src.is_dir():
            return [src]
        files = []
        for top, dirs, names in os.walk(src):
            dirs[:] = [d for d in dirs if not d.startswith(_SKIPPED)]
            files += [pathlib.Path(top, n) for n in names if not n.startswith(_SKIPPED)]
        if not files:
            raise DataError(f"the directory {src} holds no Parquet files (names starting with '.' or '_' are "
                            "skipped)")
        return sorted(files, key=lambda p: p.as_posix())

    def _dataset(self):
        import pyarrow as pa
        import pyarrow.dataset as pads

        src = self.source
        if isinstance(src, pathlib.Path):
            return _guard(lambda: pads.dataset(str(src), format=_format(), **self.kw),
                          lambda exc: DataError(f"cannot open the Parquet dataset {src}: {_message(exc)}. "
                                                f"{_ADVICE_DIR}"))
        if isinstance(src, pa.Table):
            return pads.dataset(src)
        return src

    def columns(self):
        files = self._files()
        if files is None:
            return [n for n in self._dataset().schema.names if not n.startswith("__index_level_")]
        names: dict = {}
        single = self._single
        for path in files:                   # every footer: a bad file is refused before pass 1
            with _open(path, single) as f:
                schema = _guard(lambda: f.schema_arrow, lambda exc: _unreadable(path, exc, single))
                names.update(dict.fromkeys(schema.names))
        return [n for n in names if not n.startswith("__index_level_")]

    def chunks(self, columns, ledger=None):
        single = self._single
        for name, batch in self._batches(columns, ledger):
            yield _guard(batch.to_pandas, lambda exc: _damaged(name, exc, single))

    def read(self, columns=None) -> pd.DataFrame:
        """All rows in memory, one DataFrame (the same checks as a streamed pass)."""
        import pyarrow as pa

        if columns is None:
            columns = self.columns()
        tables, current, name = [], [], None
        for nm, batch in self._batches(columns, None):
            if nm != name and current:
                tables.append(pa.Table.from_batches(current))
                current = []
            name = nm
            current.append(batch)
        if current:
            tables.append(pa.Table.from_batches(current))
        if not tables:
            raise DataError(f"{self._label()} has no rows")
        table = _guard(lambda: _concat(tables),
                       lambda exc: DataError(f"the files of {self._label()} cannot be put together: {_message(exc)}"))
        return _guard(table.to_pandas, lambda exc: _damaged(self._label(), exc, self._single))

    @property
    def _single(self) -> bool:
        """One Parquet file given by its path (the advice then names no directory)."""
        return isinstance(self.source, pathlib.Path) and not self.kw and self.source.is_file()

    def _label(self) -> str:
        return str(self.source) if isinstance(self.source, pathlib.Path) else repr(self)

    # --- reading ----------------------------------------------------------------------
    def _batches(self, columns, ledger):
        """(file name, pyarrow RecordBatch) over the source, file by file.  Every file's stamp
        and footer are checked first, so a stray, truncated or mismatched file is refused
        before any row is read; then each file is read and stamped again."""
        columns = list(columns)
        if ledger is not None:
            ledger.begin()
        files = self._files()
        if files is not None:
            single = self._single
            stamps, schemas = {}, {}
            for path in files:
                name = str(path)
                stamps[name] = _os_stamp(path)
                if ledger is not None:
                    ledger.note(name, stamps[name])
                with _open(path, single) as f:
                    schemas[name] = _guard(lambda: f.schema_arrow, lambda exc: _unreadable(path, exc, single))
            if ledger is not None:
                ledger.end()
            _check_schemas(schemas, columns, {}, single)
            for path in files:
                yield from self._file_batches(path, columns, stamps[str(path)], single)
        else:
            yield from self._dataset_batches(columns, ledger)

    def _file_batches(self, path, columns, stamp, single):
        name = str(path)
        with _open(path, single) as f:
            md = f.metadata
            rows = 0
            for i in range(md.num_row_groups):
                it = f.iter_batches(batch_size=self.chunksize, row_groups=[i], columns=columns)
                fail = (lambda exc, i=i: _damaged(name, exc, single, i))
                while (batch := _guard(lambda: _valid(next(it, None)), fail)) is not None:
                    rows += batch.num_rows
                    if batch.num_rows:
                        yield name, batch
            if rows != md.num_rows:
                raise DataError(f"{name} decoded to {rows} rows but its footer says {md.num_rows}: the file is "
                                f"damaged. {_advice(single)}")
        if _os_stamp(path) != stamp:
            raise changed_error(name, "while it was being read")

    def _dataset_batches(self, columns, ledger):
        import pyarrow.dataset as pads

        ds = self._dataset()
        label = self._label()
        try:
            fragments = list(ds.get_fragments()) if isinstance(ds, pads.FileSystemDataset) else None
        except ValueError:                  # a filtered dataset does not list its fragments
            fragments = None
        if fragments is None:
            if ledger is not None:
                ledger.end()
            opts = {"fragment_scan_options": _scan_options()} if isinstance(ds, pads.FileSystemDataset) else {}
            it = iter(ds.to_batches(columns=columns, batch_size=self.chunksize, **opts))
            fail = (lambda exc: DataError(f"cannot read {label}: {_message(exc)}. {_ADVICE_DIR}"))
            while (batch := _guard(lambda: _valid(next(it, None)), fail)) is not None:
                if batch.num_rows:
                    yield label, batch
            return
        stamps, schemas, keys, expected = {}, {}, {}, {}
        for frag in fragments:
            name = frag.path
            stamps[name] = _fs_stamp(frag.filesystem, name)
            if ledger is not None:
                ledger.note(name, stamps[name])
            fail = (lambda exc, n=name: DataError(f"{n} cannot be read as Parquet: {_message(exc)}. {_ADVICE_DIR}"))
            schemas[name] = _guard(lambda: frag.physical_schema, fail)
            keys[name] = tuple(pads.get_partition_keys(frag.partition_expression) or {})
            expected[name] = _guard(lambda: sum(rg.num_rows for rg in frag.row_groups), fail)
        if ledger is not None:
            ledger.end()
        _check_schemas(schemas, columns, keys, False)
        for frag in fragments:
            name = frag.path
            it = iter(frag.to_batches(schema=ds.schema, columns=columns, batch_size=self.chunksize,
                                      fragment_scan_options=_scan_options()))
            rows = 0
            fail = (lambda exc, n=name: _damaged(n, exc, False))
            while (batch := _guard(lambda: _valid(next(it, None)), fail)) is not None:
                rows += batch.num_rows
                if batch.num_rows:
                    yield name, batch
            if rows != expected[name]:
                raise DataError(f"{name} decoded to {rows} rows but its footer says {expected[name]}: the file is "
                                f"damaged. {_advice(False)}")
            if _fs_stamp(frag.filesystem, name) != stamps[name]:
                raise changed_error(name, "while it was being read")

    def __repr__(self):
        src = self.source
        if isinstance(src, pathlib.Path):
            what = str(src)
        elif isinstance(src, tuple):
            what = f"{len(src)} files"
        else:
            what = type(src).__name__
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

    def chunks(self, columns, ledger=None):
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


# --- Parquet helpers ---------------------------------------------------------------------
_ADVICE_DIR = ("If the file is not part of the data, move it out of the directory (names starting with '_' or '.' "
               "are skipped); if it is, write it again from its source")


def _advice(single: bool) -> str:
    return "Write it again from its source" if single else _ADVICE_DIR


def need_pyarrow() -> None:
    """A DataError naming the extra to install when pyarrow is missing."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.dataset  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise DataError(f"reading Parquet needs pyarrow, which is not installed: {INSTALL_PARQUET}") from None


def _concat(tables):
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except TypeError:                       # pyarrow < 14
        return pa.concat_tables(tables, promote=True)


def _guard(fn, error):
    """fn(), with a failure turned into ``error(exc)`` -- but not an interrupt (KeyboardInterrupt,
    or pyarrow's ArrowCancelled for a signal), a MemoryError, or one of our own errors."""
    try:
        return fn()
    except Exception as exc:
        pa = sys.modules.get("pyarrow")
        keep = (MemoryError, SparseMixedError) + ((pa.ArrowCancelled,) if pa is not None else ())
        if isinstance(exc, keep):
            raise
        raise error(exc) from None


def _valid(batch):
    """The batch after pyarrow's full validation (offsets, dictionary indices, UTF-8 of text:
    a damaged page can decode to bytes that are not text), or None at the end."""
    if batch is not None:
        batch.validate(full=True)
    return batch


def _message(exc) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + (" ..." if len(text) > 300 else "") if text else type(exc).__name__


def _damaged(name: str, exc, single: bool, row_group: int | None = None) -> DataError:
    where = f" (row group {row_group})" if row_group is not None else ""
    return DataError(f"{name} is damaged: its data{where} cannot be decoded ({_message(exc)}). {_advice(single)}")


_CHECKSUM_KW: dict | None = None


def _checksum_kw() -> dict:
    """Verify page CRCs where the writer stored them (pyarrow >= 14; a no-op for pages without)."""
    global _CHECKSUM_KW
    if _CHECKSUM_KW is None:
        import inspect

        import pyarrow.parquet as pq

        try:
            ok = "page_checksum_verification" in inspect.signature(pq.ParquetFile).parameters
        except (TypeError, ValueError):
            ok = False
        _CHECKSUM_KW = {"page_checksum_verification": True} if ok else {}
    return _CHECKSUM_KW


def _scan_options():
    import pyarrow.dataset as pads

    return pads.ParquetFragmentScanOptions(**_checksum_kw())


def _format():
    import pyarrow.dataset as pads

    return pads.ParquetFileFormat(default_fragment_scan_options=_scan_options())


def _open(path: pathlib.Path, single: bool):
    import pyarrow.parquet as pq

    return _guard(lambda: pq.ParquetFile(str(path), **_checksum_kw()), lambda exc: _unreadable(path, exc, single))


def _unreadable(path: pathlib.Path, exc, single: bool) -> DataError:
    """Why a file does not open as Parquet: empty, not Parquet, truncated, or a bad footer."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(max(size - 4, 0))
            tail = fh.read(4)
    except OSError as err:
        return DataError(f"cannot open {path}: {_message(err)}")
    if size == 0:
        what = "is empty (0 bytes), not a Parquet file"
    elif head != b"PAR1":
        what = "is not a Parquet file (it does not begin with the Parquet magic bytes PAR1)"
    elif tail != b"PAR1" or size < 12:
        what = (f"is truncated ({size:,} bytes): it begins as a Parquet file but has no footer at its end (an "
                "interrupted write or copy?)")
    else:
        what = f"has a damaged footer ({_message(exc)})"
    return DataError(f"{path} {what}. {_advice(single)}")


def type_class(t) -> str:
    """A column's type as the model sees it: types in one class read alike (int32/int64,
    string/large_string/dictionary of strings ...), across classes they do not."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        inner = type_class(t.value_type)
        return "text" if inner == "text" else f"categorical {inner}"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", bool)(t):
        return "text"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "floating point"
    if pa.types.is_null(t):
        return "null"
    return str(t)


def _check_schemas(schemas: dict, columns, partition_keys: dict, single: bool) -> None:
    """Every column read is in every file (file name -> arrow schema), of one type class; a
    column whose class differs names the first file that departs from the most common class."""
    names = {n: list(s.names) for n, s in schemas.items()}
    for name, have in names.items():
        keys = partition_keys.get(name, ())
        for c in columns:
            if c not in have and c not in keys:
                others = next((v for k, v in names.items() if k != name), have)
                shown = ", ".join(map(repr, [n for n in have if not n.startswith("__index_level_")][:20]))
                raise DataError(f"{name} has no column {c!r}{_renamed(c, have, columns, set(others))}; its columns "
                                f"are {shown}. Every file needs the model's columns: write {name} again with {c!r}"
                                + ("" if single else ", or move it out of the directory"))
    for c in columns:
        found = [(name, schema.field(c).type) for name, schema in schemas.items()
                 if c not in partition_keys.get(name, ())]
        found = [(name, t, type_class(t)) for name, t in found if type_class(t) != "null"]   # null: all missing
        classes = [cls for _, _, cls in found]
        if len(set(classes)) > 1:           # the most common class (the earliest on a tie) is the rule
            common = max(dict.fromkeys(classes), key=classes.count)
            name, t, odd = next(e for e in found if e[2] != common)
            name0, t0, _ = next(e for e in found if e[2] == common)
            n0 = classes.count(common)
            where = f"{n0} other files, e.g. {name0}" if n0 > 1 else name0
            raise DataError(f"column {c!r} is {odd} ({t}) in {name} but {common} ({t0}) in {where}; every file of a "
                            f"Parquet dataset needs the same column types. Write {name} again with {c!r} as {t0}, "
                            "or move it out of the directory")


def _renamed(c: str, names: list, columns, ref_names: set) -> str:
    """' (renamed to 'C'?)' when one of the file's other columns looks like c renamed: the same
    name in another case, a close spelling, or the one name the first file does not have."""
    other = [n for n in names if n not in columns and not n.startswith("__index_level_")]
    guess = ([n for n in other if n.lower() == c.lower()] or difflib.get_close_matches(c, other, n=1)
             or [n for n in other if n not in ref_names])
    return f" (renamed to {guess[0]!r}?)" if len(guess) == 1 else ""


# --- stamps ------------------------------------------------------------------------------
def _footer_digest(fh, size: int) -> str:
    """A digest of a Parquet file's footer (row groups, sizes, offsets, statistics), or of its
    last 4 KiB if it has none."""
    if size >= 12:
        fh.seek(size - 8)
        tail = fh.read(8)
        n = int.from_bytes(tail[:4], "little")
        if tail[4:] == b"PAR1" and n + 12 <= size:
            fh.seek(size - 8 - n)
            return hashlib.blake2b(fh.read(n), digest_size=16).hexdigest()
    fh.seek(max(size - 4096, 0))
    return hashlib.blake2b(fh.read(4096), digest_size=16).hexdigest()


def _os_stamp(path: pathlib.Path, parquet: bool = True) -> tuple:
    try:
        st = os.stat(path)
        if not parquet:
            return (st.st_size, st.st_mtime_ns, st.st_ino)
        with open(path, "rb") as fh:
            return (st.st_size, st.st_mtime_ns, st.st_ino, _footer_digest(fh, st.st_size))
    except FileNotFoundError:
        raise changed_error(str(path), "while the data were being read", "was removed") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {_message(exc)}") from None


def _fs_stamp(fs, path: str) -> tuple:
    def stamp():
        info = fs.get_file_info(path)
        with fs.open_input_file(path) as fh:
            return (info.size, info.mtime_ns, _footer_digest(fh, info.size))

    return _guard(stamp, lambda exc: DataError(f"cannot read {path}: {_message(exc)}"))


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
