"""Griffe extension for the docs build (mkdocs.yml loads it).

- jaxrnn's docstrings title their examples ``Example:`` (STYLE.md), which
  Griffe's Google parser reads as an admonition rather than an examples
  section, so doctest lines would render as prose: the title becomes
  ``Examples:``.
- The API is loaded by inspection (the recurrent layers' docstrings are
  filled in at import time with their cells' arguments and the recurrent
  flags, jaxrnn/layers/_docs.py; static analysis would show the
  placeholders). Inspection gives an attribute the docstring of its value's
  type (``bool(x) -> bool`` for ``return_sequences = False``); those are
  dropped, so attributes show only where a docstring documents them.
- A NamedTuple's fields inspect as ``_tuplegetter(0, 'Alias for field
  number 0')``: they show their annotation instead, and the class
  docstring's ``Attributes:`` section says what they hold.
- ``params`` and the inputs default to a sentinel (``<required>``) only so
  that a call without them gets a clear error; the signatures show them as
  the required arguments they are (and ruff can then wrap them).
- Inspection evaluates annotations (``Union`` for ``ActivationLike``):
  parameters show them as written in the source instead, from the
  function's string annotations (``from __future__ import annotations``)
  or, for a dataclass's generated ``__init__``, from its fields.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_TITLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class JaxrnnDocstrings(griffe.Extension):
    """The fixes above."""

    def on_attribute_instance(
        self, *, node: Any, attr: griffe.Attribute, agent: Any, **kwargs: Any
    ) -> None:
        if not isinstance(agent, griffe.Inspector):
            return
        value = getattr(node, "obj", None)
        if type(value).__name__ == "_tuplegetter":
            owner = getattr(getattr(node, "parent", None), "obj", None)
            annotation = getattr(owner, "__annotations__", {}).get(attr.name)
            attr.value = None
            attr.annotation = (
                annotation if isinstance(annotation, str) else None
            )
            attr.docstring = None
            return
        if getattr(value, "__doc__", None) == getattr(
            type(value), "__doc__", None
        ):
            attr.docstring = None

    def on_function_instance(
        self, *, node: Any, func: griffe.Function, **kwargs: Any
    ) -> None:
        owner = getattr(getattr(node, "parent", None), "obj", None)
        fields = (
            getattr(owner, "__dataclass_fields__", {})
            if func.name == "__init__"
            else {}
        )
        written = {name: field.type for name, field in fields.items()}
        written.update(
            getattr(getattr(node, "obj", None), "__annotations__", {})
        )
        for parameter in func.parameters:
            if str(parameter.default) == "<required>":
                parameter.default = None
            if isinstance(written.get(parameter.name), str):
                parameter.annotation = written[parameter.name]

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_TITLE.sub(
                r"\1Examples:", obj.docstring.value
            )
