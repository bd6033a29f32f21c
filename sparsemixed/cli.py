"""Command line::

    sparsemixed fit DATA "FORMULA" [--ml] [--json] [--output FILE] ...
    sparsemixed fit DATA "FORMULA" --family binomial|poisson|"binomial(link=probit)" [--nagq N]

DATA is a CSV or Parquet file, a directory of Parquet files, or the name of a bundled data set (``sparsemixed
datasets`` lists them).  The summary (or, with --json, a JSON document with every
estimate) goes to stdout or --output.  Bad input gives one line on stderr naming the
problem and a non-zero exit status (2: input, 3: internal error), never a traceback
(unless --debug).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import warnings

EXIT_INPUT, EXIT_INTERNAL = 2, 3


class _InputError(Exception):
    pass


def _read(source: str):
    import pandas as pd

    from . import datasets

    path = pathlib.Path(source)
    if not path.exists():
        if source in datasets.names():
            return datasets.load(source)
        raise _InputError(f"no such file or bundled data set: {source!r} (bundled: {', '.join(datasets.names())})")
    suffix = path.suffix.lower()
    try:
        if path.is_dir() or suffix in (".parquet", ".pq", ".parq"):     # a directory: a Parquet dataset
            from .io.sources import Parquet

            # file by file, with sparsemixed.io's checks: a stray, truncated or damaged file, or a
            # column missing or of another type in one file, is named (no pyarrow: the extra to install)
            return Parquet(path).read()
        if suffix in (".csv", ".txt", ".tsv", ".gz"):
            return pd.read_csv(path, sep="\t" if ".tsv" in path.name.lower() else ",")
    except _InputError:
        raise
    except Exception as exc:      # unreadable/malformed file
        raise _InputError(f"cannot read {source}: {exc}") from None
    raise _InputError(f"unknown file type {suffix!r} for {source}: use .csv, .tsv, .parquet or a directory "
                      "of Parquet files")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparsemixed", description="Linear mixed models with lme4 formulas, at scale.")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit a model and print its summary (or JSON)")
    f.add_argument("data", help="CSV/Parquet file, a directory of Parquet files, or a bundled data set name")
    f.add_argument("formula", help='lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    f.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    f.add_argument("--json", action="store_true", help="print a JSON document with every estimate")
    f.add_argument("--output", "-o", help="write to this file instead of stdout")
    f.add_argument("--weights", help="column of prior weights")
    f.add_argument("--optimizer", default="auto", help="auto, scoring, lbfgsb, bobyqa, newuoa, nelder_mead")
    f.add_argument("--na-action", default="omit", choices=["omit", "fail"])
    f.add_argument("--memory-limit", help='e.g. "12GB": refuse models whose factor would need more')
    f.add_argument("--no-ranef", action="store_true", help="leave the conditional modes out of the JSON")
    f.add_argument("--verbose", "-v", action="store_true", help="progress and timings on stderr")
    f.add_argument("--family", help='a generalized linear mixed model (glmer): binomial, poisson, '
                                    '"binomial(link=probit)", ...')
    f.add_argument("--nagq", type=int, help="with --family: 1 Laplace (default), 0 beta inside PIRLS, > 1 "
                                            "adaptive Gauss-Hermite quadrature (one scalar term)")
    d = sub.add_parser("datasets", help="list the bundled data sets, or write one as CSV")
    d.add_argument("name", nargs="?")
    return p


def _fit(args) -> str:
    from . import glmer, lmer

    glmm = args.family is not None
    if not glmm and args.nagq is not None:
        raise _InputError("--nagq applies to generalized models: give --family (binomial, poisson, ...)")
    if glmm and args.optimizer != "auto":
        raise _InputError("--optimizer applies to linear models; glmer fits use BOBYQA (leave --optimizer out)")
    t0 = time.perf_counter()
    data = _read(args.data)
    if args.verbose:
        print(f"read {len(data):,} rows x {data.shape[1]} columns in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    t1 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if glmm:                       # maximum likelihood always (--ml changes nothing)
            model = glmer(args.formula, data, family=args.family, nAGQ=1 if args.nagq is None else args.nagq,
                          weights=args.weights, na_action=args.na_action, memory_limit=args.memory_limit)
        else:
            model = lmer(args.formula, data, REML=not args.ml, weights=args.weights, na_action=args.na_action,
                         memory_limit=args.memory_limit, verbose=args.verbose)
        t2 = time.perf_counter()
        if args.verbose:
            factor = model.lmm.factor if glmm else model.factor
            print(f"built the model (q = {model.q:,}, {factor.ordering} factor) in {t2 - t1:.2f} s; fitting ...",
                  file=sys.stderr)
        res = model.fit(verbose=args.verbose) if glmm else model.fit(optimizer=args.optimizer, verbose=args.verbose)
    t3 = time.perf_counter()
    msgs = [f"{w.category.__name__}: {w.message}" for w in caught]
    for msg in msgs:
        print(f"warning: {msg}", file=sys.stderr)
    if args.verbose:
        print(f"fitted in {t3 - t2:.2f} s ({res.optsummary.feval} evaluations, {res.optsummary.method})", file=sys.stderr)
    if args.json:
        doc = res.to_dict(ranef=not args.no_ranef)
        doc["warnings"] = msgs
        doc["seconds"] = {"read": t1 - t0, "build": t2 - t1, "fit": t3 - t2}
        return json.dumps(doc, indent=2)
    return res.summary()


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from .errors import SparseMixedError

    try:
        if args.command == "datasets":
            from . import datasets

            if args.name is None:
                out = "\n".join(f"{n:12s} {datasets.DESCRIPTIONS.get(n, '')}" for n in datasets.names())
            else:
                if args.name not in datasets.names():
                    raise _InputError(f"unknown data set {args.name!r}; available: {', '.join(datasets.names())}")
                out = datasets.load(args.name).to_csv(index=False).rstrip("\n")
            print(out)
            return 0
        text = _fit(args)
        if args.output:
            pathlib.Path(args.output).write_text(text + "\n")
        else:
            print(text)
        return 0
    except (_InputError, SparseMixedError, FileNotFoundError, KeyError) as exc:
        if args.debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"sparsemixed: error: {msg}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:           # e.g. piped into head
        return 0
    except MemoryError as exc:
        if args.debug:
            raise
        print(f"sparsemixed: out of memory: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # noqa: BLE001 - the CLI never shows a raw traceback
        if args.debug:
            raise
        print(f"sparsemixed: internal error ({type(exc).__name__}: {exc}); rerun with --debug and "
              "report it", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
