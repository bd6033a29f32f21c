"""Fault injection for streamed sources: damaged Parquet datasets, files changed between the
two passes, a Dask worker killed mid-reduction, Ctrl-C during a streamed build.

Each fault class must end in a ``DataError`` that names the file (never a raw pyarrow
error, never rows quietly read as missing, never a wrong model) -- or, where the fault
is harmless (a skipped '_'/'.' file, a header byte that does not change the decoded
data), in the very model of the undamaged data.  The datasets are small Parquet
directories written with page checksums; hypothesis picks the file, the offset, the
byte, the column and the kind of change.
"""
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsemixed as sm
import sparsemixed.io.streaming as streaming
from sparsemixed.io import CSV, Parquet

F = "y ~ x + f + (1|g) + (1|h)"
MODEL_COLUMNS = ["g", "h", "f", "x", "y"]
NFILES, CHUNK = 4, 250
SETTINGS = dict(deadline=None)
PAST_NS = time.time_ns() - 3600 * 10**9        # the files were written an hour before the build


def _frame(n=2400, seed=5):
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, 40, n), rng.integers(0, 15, n)
    df = pd.DataFrame({"g": "g" + pd.Series(g).astype(str), "h": h.astype(np.int64),
                       "f": rng.choice(["a", "b", "c"], n), "x": rng.normal(size=n), "u": rng.normal(size=n)})
    df["y"] = 5.0 + 0.05 * g + np.sin(h) + 0.5 * df.x + rng.normal(size=n)
    return df


FRAME = _frame()
PARTS = [FRAME.iloc[i::NFILES].reset_index(drop=True) for i in range(NFILES)]


def _parquet_bytes(df, checksum=True, **kw) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), sink, row_group_size=200,
                   write_page_checksum=checksum, **kw)
    return sink.getvalue().to_pybytes()


BASE = {f"part-{i}.parquet": _parquet_bytes(p) for i, p in enumerate(PARTS)}
BASE_NO_CRC = {f"part-{i}.parquet": _parquet_bytes(p, checksum=False) for i, p in enumerate(PARTS)}


def _write(root: pathlib.Path, files: dict) -> pathlib.Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(PAST_NS, PAST_NS))
    return root


def _build(source):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.MissingDataWarning)
        return sm.lmer(F, source, chunksize=CHUNK)


def assert_identical(m0, m1):
    """The same rows read in the same chunks: the same bits."""
    assert (m0.nobs, m0.n_dropped) == (m1.nobs, m1.n_dropped)
    assert [t.group.levels for t in m0.terms] == [t.group.levels for t in m1.terms]
    a, b = m0.crossprod, m1.crossprod
    assert (a.ZtZ != b.ZtZ).nnz == 0
    for name in ("ZtX", "Zty", "XtX", "Xty"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.yty == b.yty


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The model of the undamaged directory (equal to the in-memory build)."""
    root = _write(tmp_path_factory.mktemp("pristine"), BASE)
    m = _build(root)
    m_mem = sm.lmer(F, FRAME)
    assert m.nobs == len(FRAME) and m.fixef_names == m_mem.fixef_names
    theta = m.theta0 * 0.6
    assert m.objective(theta) == pytest.approx(m_mem.objective(theta), rel=1e-10)
    return m


def _refused(root, name, *phrases):
    """Building from root raises a DataError naming the file ``name`` (and every phrase)."""
    with pytest.raises(sm.DataError) as info:
        _build(root)
    msg = str(info.value)
    assert str(root / name) in msg, msg
    for p in phrases:
        assert p in msg, (p, msg)
    return msg


def _regions(data: bytes, columns):
    """(start, end) of each column chunk (dictionary page + data pages) of the given columns."""
    md = pq.ParquetFile(pa.BufferReader(data)).metadata
    out = []
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        for j in range(rg.num_columns):
            c = rg.column(j)
            if c.path_in_schema in columns:
                start = c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset
                out.append((start, start + c.total_compressed_size))
    return out


# --- truncated and garbage files --------------------------------------------------------
@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_truncated_file_is_named(data):
    k = data.draw(st.integers(0, NFILES - 1), label="file")
    name = f"part-{k}.parquet"
    cut = data.draw(st.integers(0, len(BASE[name]) - 1), label="truncate at")
    with tempfile.TemporaryDirectory() as tmp:
        root = _write(pathlib.Path(tmp), {**BASE, name: BASE[name][:cut]})
        before = {p: p.read_bytes() for p in root.iterdir()}
        msg = _refused(root, name)
        assert any(w in msg for w in ("is empty", "is not a Parquet file", "is truncated")), msg
        assert "write it again from its source" in msg
        assert {p: p.read_bytes() for p in root.iterdir()} == before       # the data are not modified


@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_byte_flips_in_checksummed_pages_are_refused_or_harmless(data, reference):
    """A flipped bit in a column chunk of a model column: with page CRCs, either the file is
    refused by name or the decoded data are unchanged (a header field nobody reads)."""
    k = data.draw(st.integers(0, NFILES - 1), label="file")
    name = f"part-{k}.parquet"
    regions = _regions(BASE[name], MODEL_COLUMNS)
    start, end = data.draw(st.sampled_from(regions), label="column chunk")
    pos = data.draw(st.integers(start, end - 1), label="offset")
    bit = data.draw(st.integers(0, 7), label="bit")
    bad = bytearray(BASE[name])
    bad[pos] ^= 1 << bit
    with tempfile.TemporaryDirectory() as tmp:
        root = _write(pathlib.Path(tmp), {**BASE, name: bytes(bad)})
        try:
            m = _build(root)
        except sm.DataError as exc:
            msg = str(exc)
            assert str(root / name) in msg and "is damaged" in msg, msg
        else:
            assert_identical(reference, m)


@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_byte_flips_without_checksums_never_leak_raw_errors(data):
    """Without page CRCs a flip may decode to other values (not detectable); it must still
    never surface as a raw pyarrow/numpy error."""
    k = data.draw(st.integers(0, NFILES - 1), label="file")
    name = f"part-{k}.parquet"
    start, end = data.draw(st.sampled_from(_regions(BASE_NO_CRC[name], MODEL_COLUMNS)), label="column chunk")
    pos = data.draw(st.integers(start, end - 1), label="offset")
    bad = bytearray(BASE_NO_CRC[name])
    bad[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    with tempfile.TemporaryDirectory() as tmp:
        root = _write(pathlib.Path(tmp), {**BASE_NO_CRC, name: bytes(bad)})
        try:
            _build(root)
        except sm.SparseMixedError as exc:     # any other exception fails the test
            if str(root) in str(exc):          # an error about a file names the damaged one
                assert str(root / name) in str(exc), str(exc)


def test_page_checksums_catch_a_value_change(tmp_path):
    """A flip inside a plain-encoded double page decodes to another number without CRCs
    (silently different) and is refused by name with them."""
    plain = FRAME.iloc[:400][["g", "h", "f", "x", "y"]]
    for crc in (True, False):
        data = bytearray(_parquet_bytes(plain, checksum=crc, compression="none", use_dictionary=False))
        start, end = _regions(bytes(data), ["x"])[-1]
        data[end - 3] ^= 0x10                         # a mantissa byte of the last x values
        path = tmp_path / f"crc-{crc}.parquet"
        path.write_bytes(bytes(data))
        if crc:
            with pytest.raises(sm.DataError, match=r"is damaged.*CRC"):
                sm.lmer(F, path)
        else:
            got = pd.concat(Parquet(path).chunks(["x"]))
            assert not np.array_equal(got.x.to_numpy(), plain.x.to_numpy())     # undetectable


def test_text_that_is_not_utf8_is_refused_without_checksums(tmp_path):
    """A damaged text value that decodes to bytes that are not UTF-8 (no CRC to catch it) is
    refused by name, not passed on to fail later inside pandas."""
    data = bytearray(_parquet_bytes(FRAME.iloc[:400][MODEL_COLUMNS], checksum=False, compression="none",
                                    use_dictionary=False))
    start, end = _regions(bytes(data), ["g"])[0]
    data[bytes(data).rindex(b"g", start, end)] = 0xFF
    path = tmp_path / "bad-text.parquet"
    path.write_bytes(bytes(data))
    with pytest.raises(sm.DataError, match=re.escape(f"{path} is damaged: ") + ".*row group 0.*UTF8"):
        sm.lmer(F, path)


# --- stray files ------------------------------------------------------------------------
STRAY_NAMES = ["README.txt", "notes.md", "data.csv", "part-9.parquet", "extra", "sub/README.txt", "sub/x.parquet",
               ".DS_Store", "_SUCCESS", "_metadata", ".part-0.parquet.crc", "_tmp/part-5.parquet", ".hidden/a"]


@settings(max_examples=25, **SETTINGS)
@given(stray=st.sampled_from(STRAY_NAMES),
       content=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode),
                         st.just(b"PAR1"), st.binary(max_size=100).map(lambda b: b"PAR1" + b)))
def test_stray_file(stray, content, reference):
    skipped = any(part.startswith((".", "_")) for part in pathlib.PurePosixPath(stray).parts)
    with tempfile.TemporaryDirectory() as tmp:
        root = _write(pathlib.Path(tmp), {**BASE, stray: content})
        if skipped:
            assert_identical(reference, _build(root))
        else:
            msg = _refused(root, stray)
            assert any(w in msg for w in ("is empty", "is not a Parquet file", "is truncated", "damaged footer")), msg
            assert "move it out of the directory" in msg


# --- schemas: a column dropped, renamed or retyped in one file ----------------------------
RETYPED = {"x": lambda s: s.map("{:.6f}".format), "y": lambda s: s.astype(str),     # numbers -> text
           "g": lambda s: s.str[1:].astype(np.int64), "h": lambda s: "h" + s.astype(str),
           "f": lambda s: s.map({"a": 0.0, "b": 1.0, "c": 2.0})}


@settings(max_examples=30, **SETTINGS)
@given(k=st.integers(0, NFILES - 1),
       change=st.sampled_from(["drop", "rename", "retype", "drop unused", "narrow h"]),
       col=st.sampled_from(MODEL_COLUMNS), new=st.sampled_from(["upper", "1", "_v2"]))
def test_schema_change_in_one_file(k, change, col, new, reference):
    name = f"part-{k}.parquet"
    part = PARTS[k].copy()
    renamed = col.upper() if new == "upper" else col + new
    if change == "drop":
        part = part.drop(columns=col)
    elif change == "rename":
        part = part.rename(columns={col: renamed})
    elif change == "retype":
        part[col] = RETYPED[col](part[col])
    elif change == "drop unused":
        part = part.drop(columns="u")
    else:
        part["h"] = part.h.astype(np.int32)
    with tempfile.TemporaryDirectory() as tmp:
        root = _write(pathlib.Path(tmp), {**BASE, name: _parquet_bytes(part)})
        if change in ("drop unused", "narrow h"):           # harmless: the same model
            assert_identical(reference, _build(root))
            return
        msg = _refused(root, name, repr(col))
        if change == "retype":
            assert "every file of a Parquet dataset needs the same column types" in msg
        else:
            assert f"has no column {col!r}" in msg
            if change == "rename":             # a close name, or the one name the other files lack
                assert f"renamed to {renamed!r}" in msg


def test_schema_checks_on_a_partitioned_dataset(tmp_path, reference):
    """The same checks through pyarrow's dataset discovery (hive partitions, a Dataset given)."""
    for i, part in enumerate(PARTS):
        d = tmp_path / f"k={i % 2}"
        d.mkdir(exist_ok=True)
        (d / f"part-{i}.parquet").write_bytes(_parquet_bytes(part.drop(columns="u")))
    m = sm.lmer(F, Parquet(tmp_path, partitioning="hive"), chunksize=CHUNK)
    assert m.nobs == len(FRAME)
    bad = tmp_path / "k=1" / "part-3.parquet"
    bad.write_bytes(_parquet_bytes(PARTS[3].drop(columns="x")))
    for source in (Parquet(tmp_path, partitioning="hive"), pads.dataset(str(tmp_path), partitioning="hive")):
        with pytest.raises(sm.DataError, match=re.escape(str(bad)) + " has no column 'x'"):
            sm.lmer(F, source)                 # not 600 rows counted as missing
    bad.write_bytes(BASE["part-3.parquet"][:-100])
    with pytest.raises(sm.DataError, match=re.escape(str(bad))):
        sm.lmer(F, Parquet(tmp_path, partitioning="hive"))


# --- files changed between (or during) the two passes -------------------------------------
def _rewrite(root, k, how):
    name = f"part-{k}.parquet"
    path = root / name
    if how == "fewer rows":
        path.write_bytes(_parquet_bytes(PARTS[k].iloc[:-10]))
    elif how == "other values":
        path.write_bytes(_parquet_bytes(PARTS[k].assign(y=PARTS[k].y + 1.0)))
    elif how == "touched":
        os.utime(path)
    elif how == "replaced by a copy":
        shutil.copy2(path, root / "copy.tmp")
        os.replace(root / "copy.tmp", path)
    elif how == "added":
        name = "part-9.parquet"
        (root / name).write_bytes(BASE[f"part-{k}.parquet"])
    elif how == "removed":
        path.unlink()
    return name


@settings(max_examples=20, **SETTINGS)
@given(k=st.integers(0, NFILES - 1),
       how=st.sampled_from(["fewer rows", "other values", "touched", "replaced by a copy", "added", "removed"]))
def test_file_changed_between_the_passes(k, how):
    original = streaming.Encoding.from_scan
    changed = []

    def between(scan, plan):                   # runs after pass 1, before pass 2
        changed.append(_rewrite(root, k, how))
        return original(scan, plan)

    with tempfile.TemporaryDirectory() as tmp:
        root = _write(pathlib.Path(tmp), BASE)
        with mock.patch.object(streaming.Encoding, "from_scan", staticmethod(between)):
            msg = _refused(root, _rewrite_name(k, how), "between the first pass")
        assert changed == [_rewrite_name(k, how)]
        assert ("appeared" in msg) if how == "added" else ("removed" in msg) if how == "removed" else ("changed" in msg)


def _rewrite_name(k, how):
    return "part-9.parquet" if how == "added" else f"part-{k}.parquet"


@pytest.mark.parametrize("how", ["in place", "replaced"])
def test_file_changed_while_being_read(tmp_path, how):
    root = _write(tmp_path, BASE)
    original = streaming.scan_chunk
    calls = []

    def first_chunk_then_rewrite(chunk, plan):     # file 0 is open, its first chunk read
        if not calls:
            data = _parquet_bytes(PARTS[0].assign(y=PARTS[0].y * 2))
            if how == "in place":
                (root / "part-0.parquet").write_bytes(data)
            else:
                (root / "new.tmp").write_bytes(data)
                os.replace(root / "new.tmp", root / "part-0.parquet")
        calls.append(1)
        return original(chunk, plan)

    with mock.patch.object(streaming, "scan_chunk", first_chunk_then_rewrite):
        msg = _refused(root, "part-0.parquet")
    assert "changed while it was being read" in msg or "is damaged" in msg


def test_chunk_function_giving_other_rows_the_second_time():
    """No stamps for a function's chunks: the row count of pass 2 is checked against pass 1's."""
    second = []
    original = streaming.Encoding.from_scan

    def between(scan, plan):
        second.append(True)
        return original(scan, plan)

    def chunks():
        return iter(PARTS[:-1] if second else PARTS)

    with mock.patch.object(streaming.Encoding, "from_scan", staticmethod(between)):
        with pytest.raises(sm.DataError, match="2400 rows without missing values in the first pass .* and 1800 in "
                                               "the second .*: the source changed between the passes"):
            sm.lmer(F, chunks)
    assert sm.lmer(F, chunks).nobs == 1800          # the same rows in both passes: accepted


def test_a_chunk_source_written_before_the_ledger_still_works(reference):
    """A user's ChunkSource with ``chunks(self, columns)`` is called without the ledger."""
    class Old(sm.io.ChunkSource):
        def columns(self):
            return list(FRAME.columns)

        def chunks(self, columns):
            for p in PARTS:
                yield p[list(columns)]

    m = sm.lmer(F, Old())
    assert m.nobs == len(FRAME)
    assert m.objective(reference.theta0 * 0.6) == pytest.approx(reference.objective(reference.theta0 * 0.6),
                                                                rel=1e-10)


def test_csv_changed_between_passes_and_garbage(tmp_path):
    csv = tmp_path / "d.csv"
    FRAME.to_csv(csv, index=False)
    os.utime(csv, ns=(PAST_NS, PAST_NS))
    original = streaming.Encoding.from_scan

    def between(scan, plan):
        FRAME.assign(y=FRAME.y + 1).to_csv(csv, index=False)
        return original(scan, plan)

    with mock.patch.object(streaming.Encoding, "from_scan", staticmethod(between)):
        with pytest.raises(sm.DataError, match=re.escape(f"{csv} changed between the first pass")):
            sm.lmer(F, CSV(csv, chunksize=500))
    csv.write_bytes(b"g,h,f,x,y\n" + bytes(range(128, 256)) * 4)
    with pytest.raises(sm.DataError, match=re.escape(f"cannot read {csv} as delimited text")):
        sm.lmer(F, CSV(csv, chunksize=500))


def test_list_of_files_and_empty_directory(tmp_path, reference):
    root = _write(tmp_path / "d", BASE)
    assert_identical(reference, _build(Parquet(sorted(root.iterdir()), chunksize=CHUNK)))
    (tmp_path / "empty" / "_SUCCESS").parent.mkdir()
    (tmp_path / "empty" / "_SUCCESS").write_bytes(b"")
    with pytest.raises(sm.DataError, match="holds no Parquet files"):
        sm.lmer(F, tmp_path / "empty")


# --- no pyarrow: the extra to install -------------------------------------------------------
NO_PYARROW = textwrap.dedent("""
    import importlib.abc, json, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "pyarrow" or name.startswith("pyarrow."):
                raise ImportError("pyarrow is blocked in this test")

    sys.meta_path.insert(0, Block())
    import sparsemixed as sm
    from sparsemixed.cli import main

    formula, out = sys.argv[1], []
    for path in sys.argv[2:]:
        try:
            sm.lmer(formula, path)
            got = {"lmer": "no error"}
        except Exception as exc:
            got = {"lmer": type(exc).__name__ + ": " + str(exc)}
        got["cli"] = main(["fit", path, formula])
        out.append(got)
    print(json.dumps({"results": out, "pyarrow_loaded": "pyarrow" in sys.modules}))
""")


def test_without_pyarrow_the_extra_is_named(tmp_path):
    """pyarrow made unimportable in a fresh process: a Parquet file or directory, given to lmer or
    to the command line, gives our error naming the extra."""
    root = _write(tmp_path / "d", BASE)
    p = subprocess.run([sys.executable, "-c", NO_PYARROW, F, str(root), str(root / "part-0.parquet")],
                       capture_output=True, text=True, timeout=120)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(out["results"]) == 2 and not out["pyarrow_loaded"]
    for got in out["results"]:
        assert got["lmer"] == ("DataError: reading Parquet needs pyarrow, which is not installed: "
                               "pip install 'sparsemixed[parquet]'")
        assert got["cli"] == 2
    assert p.stderr.count("pip install 'sparsemixed[parquet]'") == 2 and "Traceback" not in p.stderr


# --- a Dask worker killed during the cross-product reduction ---------------------------------
def _die_on_second_visit(df, marker_dir, mode, partition_info=None):
    """Counts its visits to a partition (pass 1 is visit 1); kills its worker process on
    visit 2 (pass 2) -- and, with mode "always", on every later visit."""
    k = partition_info["number"]
    visit = 1
    while True:
        try:
            os.close(os.open(os.path.join(marker_dir, f"p{k}-{visit}"), os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            visit += 1
    if k == 2 and (visit == 2 or (mode == "always" and visit >= 2)):
        os.kill(os.getpid(), signal.SIGKILL)
    return df


@pytest.fixture(scope="module")
def process_cluster():
    import cloudpickle
    import dask
    from dask.distributed import Client, LocalCluster

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)     # the worker processes cannot import this file
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                    Client(cluster) as client:
                yield client
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def _killing_frame(marker_dir, mode):
    import dask.dataframe as dd

    df = FRAME[["g", "h", "f", "x", "y"]]
    return dd.from_pandas(df, npartitions=4, sort=False).map_partitions(
        _die_on_second_visit, str(marker_dir), mode, meta=df.iloc[:0])


def test_dask_worker_killed_once_gives_the_same_model(process_cluster, tmp_path):
    m0 = sm.lmer(F, FRAME)
    m = sm.lmer(F, _killing_frame(tmp_path, "once"))
    visits = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("p2-"))
    assert visits == ["p2-1", "p2-2", "p2-3"]          # pass 1, the killed pass-2 task, its rerun
    assert m.nobs == m0.nobs and m.fixef_names == m0.fixef_names
    a, b = m0.crossprod, m.crossprod
    assert abs(a.ZtZ - b.ZtZ).max() <= 1e-10 * abs(a.ZtZ).max()
    for name in ("ZtX", "Zty", "XtX"):
        assert np.abs(getattr(a, name) - getattr(b, name)).max() <= 1e-10 * np.abs(getattr(a, name)).max()
    for theta in (m0.theta0 * 0.7, m0.theta0 * 0.2 + 0.05):
        assert m.objective(theta) == pytest.approx(m0.objective(theta), rel=1e-10)


def test_dask_worker_killed_every_time_fails_clearly(process_cluster, tmp_path):
    from distributed import KilledWorker

    with pytest.raises(KilledWorker) as info:
        sm.lmer(F, _killing_frame(tmp_path, "always"))
    note = " ".join(getattr(info.value, "__notes__", []))
    assert "cross-products (pass 2)" in note and "more memory" in note


# --- Ctrl-C during a streamed build -----------------------------------------------------------
INTERRUPTED = textwrap.dedent("""
    import json, signal, sys, time
    import sparsemixed as sm
    from sparsemixed.io import Parquet

    root, formula = sys.argv[1], sys.argv[2]
    state = {"chunks": 0, "pass": 0, "announce": None, "signal_at": None, "signal_time": None}

    class Counted(Parquet):
        def chunks(self, columns, ledger=None):
            state["pass"] += 1
            state["chunks"] = 0                              # chunks taken in this pass
            for chunk in super().chunks(columns, ledger):
                state["chunks"] += 1
                if state["announce"] == state["pass"] and state["chunks"] == 5:
                    print("READY", flush=True)           # the parent sends SIGINT now
                yield chunk

    def on_sigint(signum, frame):
        state["signal_at"], state["signal_time"] = state["chunks"], time.perf_counter()
        signal.default_int_handler(signum, frame)        # Python's own: raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    before = sm.lmer(formula, Parquet(root))             # a model built before the interrupts
    source = Counted(root, chunksize=20)
    report = {"interrupts": []}
    for target in (1, 2):
        state.update(chunks=0, announce=target, signal_at=None, **{"pass": 0})
        try:
            sm.lmer(formula, source)
            report["interrupts"].append({"target": target, "interrupted": False})
        except KeyboardInterrupt:
            report["interrupts"].append({"target": target, "interrupted": True, "pass": state["pass"],
                                         "chunks_after_signal": state["chunks"] - state["signal_at"],
                                         "seconds_after_signal": time.perf_counter() - state["signal_time"],
                                         "chunks_before_signal": state["signal_at"]})
    state["announce"] = None
    after = sm.lmer(formula, source)                     # the same source object, built again
    theta = before.theta0 * 0.5
    report["objectives"] = [before.objective(theta), after.objective(theta)]
    report["nobs"] = [before.nobs, after.nobs]
    report["fits"] = [before.fit().objective, after.fit().objective]
    print("REPORT " + json.dumps(report), flush=True)
""")


def test_ctrl_c_interrupts_a_streamed_build_within_a_chunk(tmp_path):
    """SIGINT sent to a process in the chunk loop of pass 1, then of pass 2: KeyboardInterrupt
    propagates before another chunk is taken; the source and the models stay usable."""
    files = {f"part-{i:02d}.parquet": _parquet_bytes(FRAME.iloc[i::30].reset_index(drop=True)) for i in range(30)}
    root = _write(tmp_path, files)                 # 30 files of 80 rows: 120 chunks of 20 rows per pass
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED, str(root), F], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    report = None
    try:
        for line in proc.stdout:
            if line.startswith("READY"):
                proc.send_signal(signal.SIGINT)
            elif line.startswith("REPORT "):
                report = json.loads(line[len("REPORT "):])
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    proc.stdout.close(), proc.stderr.close()
    assert proc.returncode == 0 and report is not None, err
    assert [i["target"] for i in report["interrupts"]] == [1, 2]
    for i in report["interrupts"]:
        assert i["interrupted"] and i["pass"] == i["target"], report
        assert i["chunks_after_signal"] <= 1, report
        assert i["seconds_after_signal"] < 1.0, report
    assert report["nobs"] == [len(FRAME), len(FRAME)]
    assert report["objectives"][1] == pytest.approx(report["objectives"][0], rel=1e-10)
    assert report["fits"][1] == pytest.approx(report["fits"][0], rel=1e-10)
