"""Memory-bounded input: lmer on files, chunk iterables, pyarrow datasets and dask frames.

    sources.py         CSV / Parquet / Chunks: a source read chunk by chunk, twice; files checked
                       (footers, schemas, pages, unchanged between the passes)
    levels.py          pass 1: levels, counts, types (Scan, mergeable)
    encode.py          pass 2: a chunk -> y, X, Z rows with the pass-1 levels
    partial.py         cross-products of chunks, shifted and summed exactly
    streaming.py       the two passes over a source; build_streamed (lmer's entry)
    dask_runner.py     the two passes as tree reductions over dask partitions
    streamed_model.py  the LinearMixedModel built from the summed cross-products

No module here imports dask or pyarrow at import time.
"""
from .sources import CSV, Chunks, ChunkSource, Parquet, is_dask, open_source
from .streamed_model import StreamedDataError, StreamedModel
from .streaming import build_streamed

__all__ = ["CSV", "Parquet", "Chunks", "ChunkSource", "open_source", "is_dask", "build_streamed",
           "StreamedModel", "StreamedDataError"]
