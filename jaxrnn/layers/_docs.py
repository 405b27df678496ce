"""Docstrings of the recurrent layers: the cell's arguments and the
recurrent flags, written once and filled into each layer's docstring where
it says ``{CELL_ARGS}`` or ``{RECURRENT_FLAGS}``, so ``help(LSTM)`` and the
API pages list every argument a layer takes."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterable

# A line that holds only {NAME}: where compose_doc puts a part.
_PLACEHOLDER = re.compile(r"(\s*)\{([A-Z_]+)\}\s*")

# The `RNN` flags every recurrent layer takes, as Google-style Args entries.
RECURRENT_FLAGS = """\
return_sequences: return the whole output sequence, else the last output.
return_state: also return the final states.
go_backwards: process the sequence in reverse (outputs in processing
  order, as Keras).
stateful: take `initial_state` and always return the final states, so
  the caller threads them into the next batch.
unroll: a Python loop over the steps instead of `lax.scan`.
time_major: inputs and outputs are `(T, B, ...)`.
zero_output_for_mask: masked steps output zeros.
remat: recompute activations in the backward pass (less memory)."""


def args_entries(doc: str | None, skip: tuple[str, ...] = ()) -> list[str]:
    """The entries of a Google-style ``Args:`` section, one string each
    (continuation lines kept, dedented to the entry), minus those in `skip`.

    Raises:
      ValueError: `doc` has no ``Args:`` section, so a layer's docstring
        would silently lose its arguments.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    try:
        start = lines.index("Args:") + 1
    except ValueError:
        raise ValueError("the docstring has no 'Args:' section") from None
    body = []
    for line in lines[start:]:
        if line.strip() and not line.startswith(" "):
            break  # the next section or paragraph
        if not line.strip():
            break
        body.append(line)
    if not body:
        raise ValueError("the docstring's 'Args:' section is empty")
    indent = min(len(s) - len(s.lstrip()) for s in body)
    entries = _entries(line[indent:] for line in body)
    return [e for e in entries if e.split(":", 1)[0] not in skip]


def _entries(lines: Iterable[str]) -> list[str]:
    """Google-style entries: a line that starts flush begins one, an
    indented line continues the last."""
    entries: list[str] = []
    for text in lines:
        if text.startswith(" ") and entries:
            entries[-1] += "\n" + text
        else:
            entries.append(text)
    return entries


def compose_doc(
    doc: str | None,
    cell_type: type | None = None,
    skip: tuple[str, ...] = (),
    **parts: str,
) -> str | None:
    """`doc` with each line that holds only a ``{NAME}`` replaced by that
    part's text at the line's indentation: ``{RECURRENT_FLAGS}`` by the
    flags' Args entries, ``{CELL_ARGS}`` by `cell_type`'s (minus those in
    `skip`), any other by ``parts[NAME]``. None when docstrings are
    stripped (``python -OO``); dataclasses then fill in a signature.

    Raises:
      ValueError: a placeholder names no part, or `cell_type`'s docstring
        has no ``Args:`` (a layer's would silently lose its arguments).
    """
    if doc is None or sys.flags.optimize >= 2:
        return None
    parts = {"RECURRENT_FLAGS": RECURRENT_FLAGS, **parts}
    if cell_type is not None:
        parts["CELL_ARGS"] = "\n".join(args_entries(cell_type.__doc__, skip))
    lines = []
    for line in doc.splitlines():
        placeholder = _PLACEHOLDER.fullmatch(line)
        if placeholder is None:
            lines.append(line)
            continue
        indent, name = placeholder.groups()
        if name not in parts:
            raise ValueError(f"the docstring's {{{name}}} names no part")
        lines.append(_indent(parts[name], indent))
    return "\n".join(lines)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(
        prefix + line if line else line for line in text.splitlines()
    )
