"""Notebook parameters: the names a notebook's ``parameters`` cell declares, and the values a run applied.

One rule, checked in two places: a parameter a notebook does not declare is an error, never a warning. The runner
and the CLI check before any kernel starts (:func:`check_parameters`, also for anyone driving papermill from Python);
a notebook run by plain ``papermill -p`` checks itself in its first code cell (:func:`applied_parameters`), since
papermill only logs a one-line warning and the notebook would run on its defaults (for a misspelt ``DATA_FOLDERS``:
the synthetic benchmark). Parameters cells are parsed with :mod:`ast`, never run.
"""
from __future__ import annotations

import ast
import difflib
import json
import os
from pathlib import Path
from typing import Any

import nbformat
from IPython import get_ipython
from IPython.core.inputtransformer2 import TransformerManager

# The first line of the cell papermill injects after the parameters cell (tagged ``injected-parameters``).
INJECTED_COMMENT = "# Parameters"
# Names every notebook's parameters cell declares (DESIGN.md): how a kernel's history shows which cell it was.
ALWAYS_DECLARED = ("PROFILE", "OUTPUT_DIR")


class ParameterError(ValueError):
    """A notebook parameter that cannot be passed: reserved, declared by no selected notebook, or a bad value."""


def _target_names(target: ast.expr) -> list[str]:
    """The plain names an assignment target binds (``A = ...``, ``A, B = ...``); none for ``A[0] = ...``."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _assignments(source: str, where: str) -> list[tuple[list[str], ast.expr | None]]:
    """The top-level assignments of a cell's source: (names bound, value expression)."""
    try:
        tree = ast.parse(TransformerManager().transform_cell(source))  # IPython magics become plain Python
    except SyntaxError as error:
        raise ParameterError(f"{where}: its parameters cell is not valid Python (line {error.lineno}: "
                             f"{error.msg}); expected assignments such as PROFILE = \"cpu\"") from error
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            found.append(([n for target in node.targets for n in _target_names(target)], node.value))
        elif isinstance(node, ast.AnnAssign):
            found.append((_target_names(node.target), node.value))
    return found


def assigned_names(source: str, where: str = "cell") -> list[str]:
    """The names a cell assigns at top level, in order, each once (parsed, never run)."""
    return list(dict.fromkeys(name for names, _ in _assignments(source, where) for name in names))


def parameters_cell(book: str | os.PathLike) -> str | None:
    """The source of a notebook's cell tagged ``parameters`` (None when it has none)."""
    nb = nbformat.read(book, as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    return None if cell is None else cell.source


def declared_parameters(book: str | os.PathLike) -> list[str]:
    """The names a notebook's cell tagged ``parameters`` assigns at top level, in order (parsed, never run)."""
    source = parameters_cell(book)
    return [] if source is None else assigned_names(source, Path(book).name)


def declared_defaults(book: str | os.PathLike) -> dict[str, Any]:
    """Each declared parameter's default: its literal value, or the expression's text when it is not a literal."""
    source = parameters_cell(book)
    defaults: dict[str, Any] = {}
    for names, value in _assignments(source or "", Path(book).name):
        try:
            literal = ast.literal_eval(value) if value is not None else None
        except ValueError:
            literal = ast.unparse(value)
        defaults.update(dict.fromkeys(names, literal if len(names) == 1 else ast.unparse(value)))
    return defaults


def unknown_message(unknown: list[str], declared: dict[str, list[str]], *,
                    why: str = "no selected notebook declares") -> str:
    """The error for parameter names no notebook declares: close matches and each notebook's names."""
    known = sorted({name for names in declared.values() for name in names})
    hints = [f"{name} (did you mean {', '.join(close)}?)" if (close := difflib.get_close_matches(name, known, n=2))
             else name for name in unknown]
    lines = [f"unknown notebook parameter(s): {', '.join(hints)}; {why} "
             f"{'it' if len(unknown) == 1 else 'them'} in its parameters cell. The selected notebooks' parameters:"]
    lines += [f"  {stem}: {', '.join(names) or '(no parameters cell)'}" for stem, names in declared.items()]
    return "\n".join(lines)


def check_parameters(notebook_path: str | os.PathLike, parameters: dict) -> dict[str, Any]:
    """Every parameter of a notebook as a run with ``parameters`` applies it: its defaults, overridden.

    Call it before ``papermill.execute_notebook(notebook_path, ..., parameters=parameters)``: papermill itself only
    warns about a name the notebook does not declare, and runs on the default.

    Raises:
        ParameterError: a name in ``parameters`` the notebook's ``parameters`` cell does not declare (the message
            names it, its close matches and the declared names).
    """
    book = Path(notebook_path)
    defaults = declared_defaults(book)
    unknown = [key for key in parameters if key not in defaults]
    if unknown:
        raise ParameterError(unknown_message(unknown, {book.stem: list(defaults)}))
    return {**defaults, **parameters}


def _json_value(value: Any) -> Any:
    """A value as JSON records it: itself when JSON can hold it, else its repr."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return value


def applied_parameters(shell: Any = None) -> dict[str, Any]:
    """The notebook's parameters as this kernel applied them (defaults included); ``{}`` outside a notebook.

    Read from the kernel's input history: the latest cell assigning ``PROFILE`` and ``OUTPUT_DIR`` is the parameters
    cell, and the cells after it that start with papermill's ``# Parameters`` comment are the injected ones.

    Raises:
        ParameterError: papermill injected a name the parameters cell does not declare (e.g. ``DATA_FOLDER`` for
            ``DATA_FOLDERS``): the notebook stops here instead of running on its defaults.
    """
    shell = shell if shell is not None else get_ipython()
    if shell is None:
        return {}
    history = [cell for cell in shell.history_manager.input_hist_parsed if cell.strip()]
    declared_at = next((i for i in range(len(history) - 1, -1, -1)
                        if not history[i].lstrip().startswith(INJECTED_COMMENT)
                        and set(ALWAYS_DECLARED) <= set(assigned_names(history[i]))), None)
    if declared_at is None:
        return {}
    declared = assigned_names(history[declared_at], "the parameters cell")
    injected = [name for cell in history[declared_at + 1:] if cell.lstrip().startswith(INJECTED_COMMENT)
                for name in assigned_names(cell, "papermill's injected cell")]
    unknown = list(dict.fromkeys(name for name in injected if name not in declared))
    if unknown:
        raise ParameterError(unknown_message(unknown, {"this notebook": declared},
                                             why="papermill passed, but this notebook does not declare")
                             + "\nNothing ran: fix the name (papermill -p NAME VALUE) and run again.")
    return {name: _json_value(shell.user_ns[name]) for name in declared if name in shell.user_ns}
