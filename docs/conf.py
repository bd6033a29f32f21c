"""Sphinx configuration: the Markdown pages (MyST), the API reference (autodoc + numpydoc) and
the checks of docs/_ext/docscheck.py.  Build with ``make docs`` (HTML into docs/_build/html)."""
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import sparsemixed  # noqa: E402

project = "sparsemixed"
author = "the sparsemixed authors"
copyright = "the sparsemixed authors"
version = release = sparsemixed.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "numpydoc",
    "sphinx.ext.intersphinx",
    "docscheck",
]
source_suffix = {".md": "markdown"}
autosummary_generate = False
exclude_patterns = ["_build", "_ext", "_intersphinx", "_static", "**/.ipynb_checkpoints"]
root_doc = "index"

# Every cross-reference must resolve (with -W, `make docs` fails otherwise).  A third-party
# type that has no inventory would go into nitpick_ignore; none is needed.  References to
# objects of sparsemixed without an entry of their own: docs/_ext/docscheck.py.
nitpicky = True
nitpick_ignore = []

# the pages link to headings by GitHub's slugs: [text](engine.md#the-equations)
myst_heading_anchors = 4
# curly quotes and ellipses, but "--json" stays two hyphens (command-line options in prose)
smartquotes_action = "qe"

autodoc_member_order = "alphabetical"
autodoc_default_options = {"members": True, "undoc-members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Inventories of the projects we link to, kept in docs/_intersphinx/ so that the build needs
# no network (CI reaches only PyPI and Debian): each is the objects.inv of Debian's
# documentation package (python3.11-doc 3.11.2 of Debian 12; python-numpy-doc 2.2.4,
# python-scipy-doc 1.15.3, python-pandas-doc 2.2.3 of Debian 13).  Where one is missing
# the online inventory is tried.
_INV = DOCS / "_intersphinx"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3.11/", (str(_INV / "python-3.11.inv"), None)),
    "numpy": ("https://numpy.org/doc/stable/", (str(_INV / "numpy-2.2.inv"), None)),
    "scipy": ("https://docs.scipy.org/doc/scipy/", (str(_INV / "scipy-1.15.inv"), None)),
    "pandas": ("https://pandas.pydata.org/docs/", (str(_INV / "pandas-2.2.inv"), None)),
}

# docscheck (docs/_ext/docscheck.py): docstrings to show as preformatted text because they
# are not valid reStructuredText (free-form tables, |x| and name_ read as markup); none now:
# fix such a docstring rather than listing it here.
docscheck_verbatim = []

html_theme = "pydata_sphinx_theme"
html_title = "sparsemixed"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = [str(DOCS / "_static")]
html_css_files = ["custom.css"]
