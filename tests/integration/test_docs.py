"""The documentation site builds without a warning, its API pages cover the
public API, and its code runs.

The strict build takes a few seconds. Running every page's snippets takes
about a minute (each page in a fresh interpreter), hence ``slow``; one page:
``python -m pytest tests/integration/test_docs.py -m slow -k masking``.
"""

import importlib
import importlib.util
import re
import sys
import textwrap

import pytest
from integration.scripts import ROOT

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
# Modules whose public names must each have an API entry (`::: path`).
DOCUMENTED = [
    "jaxrnn",
    "jaxrnn.layers",
    "jaxrnn.interop",
    "jaxrnn.activations",
    "jaxrnn.initializers",
]
# Fences may be indented (inside tabs or admonitions).
_FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
_IMPORT = re.compile(r"^\s*(?:import|from)\s+(\w+)", re.MULTILINE)


# Over the inherited environment (scripts.environment).
ENV = {"KERAS_BACKEND": "jax", "NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg"}


# CI builds the site again on its own (.ci/run): slow here.
@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path, run_script):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    run_script(
        "-m",
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        tmp_path / "site",
        cwd=ROOT,
        env=ENV,
        timeout=600,
    )
    assert (tmp_path / "site" / "api" / "core" / "index.html").exists()


def _public_names(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_")
            and getattr(v, "__module__", None) == module.__name__
        ]
    return names


def _resolve(path):
    """The object a `::: path` entry documents."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def test_api_pages_document_every_public_name():
    pages = [*(DOCS / "api").glob("*.md"), DOCS / "writing-cells.md"]
    entries = [
        line.split(":::", 1)[1].strip()
        for page in pages
        for line in page.read_text().splitlines()
        if line.startswith(":::")
    ]
    documented = {id(_resolve(path)) for path in entries}
    whole_modules = {
        path for path in entries if isinstance(_resolve(path), type(sys))
    }
    missing = []
    for module_name in DOCUMENTED:
        if module_name in whole_modules:
            continue
        module = importlib.import_module(module_name)
        missing += [
            f"{module_name}.{name}"
            for name in _public_names(module)
            if id(getattr(module, name)) not in documented
        ]
    assert not missing, f"no `::: ...` entry in docs/api/*.md for {missing}"


def _snippets(page):
    return [
        textwrap.dedent(block) for _, block in _FENCE.findall(page.read_text())
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if _snippets(p)],
    ids=lambda p: str(p.relative_to(DOCS)),
)
def test_page_snippets_run(page, tmp_path, run_script):
    """A page's ```python blocks run in order in one fresh interpreter."""
    code = "\n\n".join(_snippets(page))
    for module in sorted(set(_IMPORT.findall(code))):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    run_script("-c", code, cwd=tmp_path, env=ENV, timeout=600)


@pytest.mark.slow
def test_figures_script_runs(tmp_path, run_script):
    pytest.importorskip("matplotlib")
    run_script(
        DOCS / "figures" / "make_figures.py",
        "--out",
        tmp_path,
        env=ENV,
        timeout=300,
    )
    # benchmarks.svg comes from benchmarks/run.py (the performance chart).
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name
        for p in (DOCS / "figures").iterdir()
        if p.suffix != ".py" and p.name != "benchmarks.svg"
    )
