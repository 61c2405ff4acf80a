"""The report layer: what notebooks write (numbers, figures), the claims report, the runner, the HTML index, the CLI.

Notebooks call :func:`applied_parameters` (first), :func:`record` and :func:`save_figure`; anyone driving papermill
from Python checks a notebook's parameters with :func:`check_parameters`; ``python -m shortcut_nb`` is :mod:`.cli`.
"""
from .outputs import output_dir, record, save_figure
from .parameters import ParameterError, applied_parameters, check_parameters

__all__ = ["output_dir", "record", "save_figure", "ParameterError", "applied_parameters", "check_parameters"]
