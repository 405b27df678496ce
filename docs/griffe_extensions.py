"""Griffe extension for the docs build (mkdocs.yml loads it).

- jaxrnn's docstrings title their examples ``Example:`` (STYLE.md), which
  Griffe's Google parser reads as an admonition rather than an examples
  section, so doctest lines would render as prose: the title becomes
  ``Examples:``.
- The API is loaded by inspection (``LSTM``, ``GRU`` and ``SimpleRNN`` are
  classes made by a factory at import time; static analysis sees
  attributes). Inspection gives an attribute the docstring of its value's
  type (``bool(x) -> bool`` for ``return_sequences = False``); those are
  dropped, so attributes show only where a docstring documents them.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_TITLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class JaxrnnDocstrings(griffe.Extension):
    """The two fixes above."""

    def on_attribute_instance(self, *, node: Any, attr: griffe.Attribute,
                              agent: Any, **kwargs: Any) -> None:
        if not isinstance(agent, griffe.Inspector):
            return
        value = getattr(node, "obj", None)
        if getattr(value, "__doc__", None) == getattr(type(value), "__doc__", None):
            attr.docstring = None

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_TITLE.sub(r"\1Examples:",
                                                     obj.docstring.value)
