#!/usr/bin/env python3
"""Print the pip requirement of scikit-sparse that builds against this system's SuiteSparse.

    python3 tools/scikit_sparse_spec.py [header]     ->  scikit-sparse>=0.4.12,<0.5   (SuiteSparse 5, 6)
                                                          scikit-sparse>=0.5           (SuiteSparse >= 7)

scikit-sparse 0.5 needs SuiteSparse >= 7 and 0.4.x does not build against 7; pip cannot see
the system library, so it would pick 0.5 on Debian 12 (SuiteSparse 5.12) and fail to build.
The version is read from SuiteSparse_config.h (``SUITESPARSE_MAIN_VERSION``), looked up in
the usual include directories unless a path is given.  No header: exit status 2 and a
message saying which package provides it (libsuitesparse-dev on Debian/Ubuntu,
suitesparse-devel on Fedora).  Used by the Makefile and the README's pip route; standard
library only, so it runs before anything is installed.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

HEADERS = ("/usr/include/suitesparse/SuiteSparse_config.h", "/usr/include/SuiteSparse_config.h",
           "/usr/local/include/suitesparse/SuiteSparse_config.h", "/usr/local/include/SuiteSparse_config.h",
           "/opt/homebrew/include/suitesparse/SuiteSparse_config.h")


def suitesparse_version(header: Path) -> int | None:
    m = re.search(r"#\s*define\s+SUITESPARSE_MAIN_VERSION\s+(\d+)", header.read_text(errors="replace"))
    return int(m.group(1)) if m else None


def spec(version: int) -> str:
    return "scikit-sparse>=0.5" if version >= 7 else "scikit-sparse>=0.4.12,<0.5"


def main(argv: list[str]) -> int:
    candidates = [Path(argv[0])] if argv else [Path(h) for h in HEADERS]
    found = [h for h in candidates if h.is_file()]
    if not found:
        print("SuiteSparse's headers were not found (" + ", ".join(map(str, candidates)) + "): install "
              "libsuitesparse-dev (Debian, Ubuntu) or suitesparse-devel (Fedora), then run this again",
              file=sys.stderr)
        return 2
    version = suitesparse_version(found[0])
    if version is None:
        print(f"{found[0]} does not define SUITESPARSE_MAIN_VERSION: is it SuiteSparse's "
              "SuiteSparse_config.h?", file=sys.stderr)
        return 2
    print(spec(version))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
