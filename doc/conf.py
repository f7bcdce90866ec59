"""Sphinx configuration of the skflow documentation.

Build from the repository root with::

    python -m sphinx -W --keep-going -b html doc doc/_build/html

Links to the Python, NumPy, scikit-learn, PyTorch and POT documentation (intersphinx) need the
network, so they are off by default; set ``SKFLOW_DOC_INTERSPHINX=1`` to turn them on.
"""

import os
import re
import sys
from pathlib import Path

# Document the checkout this file lives in, whether or not skflow is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# ... and this folder, for gallery_order.py
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import skflow  # noqa: E402

# -- Project information -------------------------------------------------------------------------

project = "skflow"
author = "skflow developers"
copyright = "skflow developers"
version = skflow.__version__
release = skflow.__version__

# -- General configuration -----------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
# examples/ holds the gallery's sources; sphinx-gallery renders them into auto_examples/
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "examples"]
root_doc = "index"
default_role = "literal"
# "On this page" lists methods as ``fit()``, not ``FlowMatchingDensity.fit()``
toc_object_entries_show_parents = "hide"

# -- autodoc / autosummary -----------------------------------------------------------------------

autosummary_generate = True
# Members are switched on in _templates/autosummary/class.rst, not here, so that the
# ``automodule:: ... :no-members:`` directives of api.rst show only the module docstrings.
autodoc_default_options = {}
# the class template leaves torch.nn.Module's own methods out of the networks' method tables
autosummary_context = {"torch_module_members": sorted(dir(torch.nn.Module))}
# the numpydoc "Parameters" sections carry the types; keep the signatures short
autodoc_typehints = "none"
autodoc_member_order = "groupwise"

# -- numpydoc ------------------------------------------------------------------------------------

# autosummary already lists the members; numpydoc's own member tables would duplicate them
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# -- sphinx-gallery ------------------------------------------------------------------------------

# doc/examples/plot_*.py are run at build time (each with a small training budget) and rendered,
# with their figures and output, under doc/auto_examples/.
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # from the first use to the more specialised ones (doc/gallery_order.py)
    "within_subsection_order": "gallery_order.ExampleOrder",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    # no sg_execution_times.rst written into the source tree
    "write_computation_times": False,
    # the figures as matplotlib's scraper saves them, refused if a text is cut off (check_site.py)
    "image_scrapers": ("check_site.checked_matplotlib_scraper",),
}

# -- intersphinx (opt-in: needs the network) -----------------------------------------------------

if os.environ.get("SKFLOW_DOC_INTERSPHINX", "0") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "sklearn": ("https://scikit-learn.org/stable/", None),
        "torch": ("https://docs.pytorch.org/docs/stable/", None),
        "ot": ("https://pythonot.github.io/", None),
    }
else:
    intersphinx_mapping = {}
intersphinx_timeout = 10

# -- MathJax -------------------------------------------------------------------------------------

# MathJax 3 is copied into the site (sphinx-mathjax-offline), so that the pages show their maths
# offline and load nothing from outside the site.
extensions.append("sphinx-mathjax-offline")

# -- HTML output ---------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skflow {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
# light or dark as the reader's system prefers (unset, the theme logs an error on every page)
html_context = {"default_mode": "auto"}
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["custom.css"]
# no left sidebar where it would be empty or would narrow code of up to 100 columns below a
# laptop's width (the examples and the API pages; the top bar and "On this page" still navigate)
html_sidebars = {
    "index": [],
    "install": [],
    "api": [],
    "generated/*": [],
    "auto_examples/*": [],
}


# -- Docstring fixes ----------------------------------------------------------------------------

_SKLEARN_REF = re.compile(r":(?:ref|term):`(?:([^`<]*?)\s*<[^`>]*>|([^`<]*))`")


def _fix_docstring(app, what, name, obj, options, lines):
    """Keep inherited scikit-learn docstrings from breaking a ``-W`` build.

    Methods that estimators inherit from scikit-learn (``set_output``, ``set_fit_request``,
    ...) cite labels and glossary terms of scikit-learn's own documentation. Without intersphinx
    they cannot resolve, so they are reduced to their text; with intersphinx they are left to
    resolve.
    """
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("sklearn") and not intersphinx_mapping:
        lines[:] = [_SKLEARN_REF.sub(_plain_reference, line) for line in lines]


def _plain_reference(match):
    """Text of a scikit-learn ``:ref:`` or ``:term:`` that cannot resolve offline."""
    if match.group(1):  # :ref:`title <label>`
        return f"*{match.group(1).strip()}*"
    label = match.group(2).strip()
    example = re.search(r"_(plot_\w+\.py)$", label)
    if label.startswith("sphx_glr_") and example:  # a gallery example cited by its label
        return f"scikit-learn's example ``{example.group(1)}``"
    return f"*{label}*"


def setup(app):
    app.connect("autodoc-process-docstring", _fix_docstring)
