"""Sphinx configuration of Kamikaze's documentation.

Build it with: .venv/bin/pip install -e '.[docs]' && .venv/bin/sphinx-build -W docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / "_ext")]

from kamikaze import __version__  # noqa: E402

project = "Kamikaze"
author = "the Kamikaze authors"
copyright = "2014-2026, the Kamikaze authors"
release = __version__
version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx_click",
    "kamikaze_docs",
]

exclude_patterns = ["_build", "_*.rst"]
# Internal Sphinx notes only: anything a reader could meet stays a warning (and -W fails it).
suppress_warnings: list[str] = []
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_class_signature = "separated"
python_use_unqualified_type_names = True

# Options stay as typed: "--yes" must not become an en dash.
smartquotes = False
pygments_style = "default"
html_title = f"Kamikaze {release}"
html_short_title = "Kamikaze"
try:
    import furo  # noqa: F401

    html_theme = "furo"
except ImportError:  # the docs extra brings furo; Sphinx's own theme otherwise
    html_theme = "alabaster"
html_static_path = ["_static"]
html_css_files = ["kamikaze.css"]
html_show_sourcelink = False
