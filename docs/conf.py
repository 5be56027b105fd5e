"""Sphinx configuration of the skvae documentation.

Build from the repository root::

    python -m pip install -e ".[docs]"
    sphinx-build -W -b html docs docs/_build/html                    # runs the gallery
    sphinx-build -W -b html -D plot_gallery=0 docs docs/_build/html  # does not

The gallery is made of ``examples/plot_*.py``, executed at build time. The API pages are
generated from the ``__all__`` of ``skvae``, ``skvae.diagnostics`` and ``skvae.datasets``, so
that a public name appears in the documentation as soon as it is exported.
"""

import os
from pathlib import Path

import skvae

DOCS = Path(__file__).resolve().parent
EXAMPLES = DOCS.parent / "examples"

# The MNIST examples read the standard IDX files from SKVAE_MNIST_DIR and otherwise download
# them from OpenML. Where the project's shared data folder sits beside the checkout, as it does
# for every developer and CI run, the gallery uses it, so that the build needs no network.
_SHARED_MNIST = DOCS.parents[1] / "shared" / "data" / "mnist"
if not os.environ.get("SKVAE_MNIST_DIR") and _SHARED_MNIST.is_dir():
    os.environ["SKVAE_MNIST_DIR"] = str(_SHARED_MNIST)

# -- Project -------------------------------------------------------------------------------

project = "skvae"
author = "the skvae developers"
copyright = "the skvae developers"
release = skvae.__version__
version = release

# -- General -------------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb"]
default_role = "code"

# Every public name gets documented from its module's __all__: the autosummary tables of
# api.rst generate one page per module (gen_modules/, not tracked), whose built-in module
# template lists the classes and functions of __all__, and autodoc documents them there.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_default_options = {
    "members": True,
    # SparseVAE and GaussianVAE inherit their methods from skvae's base class. The methods
    # they inherit from scikit-learn are skipped (see _skip_scikit_learn_member).
    "inherited-members": True,
    "member-order": "bysource",
}
autodoc_typehints = "none"

# The methods are documented in full on the class's page and listed in the page's table of
# contents; numpydoc's extra summary table of them would only repeat that list.
numpydoc_show_class_members = False
numpydoc_validation_checks = set()

# -- HTML ----------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skvae {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
html_sidebars = {"index": [], "getting_started": [], "user_guide": [], "experiments": []}

# MathJax is loaded from its CDN when a page is viewed (Sphinx's default mathjax_path,
# MathJax 4), so the formulas render in any browser that is online. Offline, build with a
# local copy of MathJax 3 (npm package mathjax@3, which needs no font download):
# -D mathjax_path=file:///path/to/mathjax/es5/tex-mml-chtml.js

# -- Gallery -------------------------------------------------------------------------------


def _remove_example_outputs(gallery_conf, fname, when):
    """Delete the figure files that an example saved next to itself.

    sphinx-gallery runs each example with the examples folder as working directory, so a
    script that saves a figure under a relative name (the demo writes skvae-demo.png) would
    leave it in the source tree. The figure is in the gallery anyway, captured from
    matplotlib. Only PNG files that appeared while the example ran are removed.
    """
    if when == "before":
        _remove_example_outputs.existing = set(EXAMPLES.glob("*.png"))
    elif fname is not None:
        for path in set(EXAMPLES.glob("*.png")) - _remove_example_outputs.existing:
            path.unlink(missing_ok=True)


_remove_example_outputs.existing = set()

# Sphinx cannot pickle the function above, so it keeps sphinx_gallery_conf out of its cache
# of the environment and warns; the value needs no caching (it triggers no rebuild).
suppress_warnings = ["config.cache"]

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "within_subsection_order": "FileNameSortKey",
    # Show what the examples print (their tables), not the repr of the last expression of
    # a block, which is often a matplotlib object.
    "capture_repr": (),
    "reset_modules": ("matplotlib", _remove_example_outputs),
    "reset_modules_order": "both",
    # Names from skvae in the examples' code link to their API pages.
    "reference_url": {"skvae": None},
    "doc_module": ("skvae",),
    "remove_config_comments": True,
    "show_memory": False,
    "matplotlib_animations": False,
}


def _skip_scikit_learn_member(app, what, name, obj, skip, options):
    """Leave out what skvae's estimators inherit from scikit-learn (get_params, set_output,
    set_*_request, ...): scikit-learn documents it, with references into its own docs."""
    if getattr(obj, "__module__", None) and obj.__module__.split(".")[0] == "sklearn":
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_scikit_learn_member)
