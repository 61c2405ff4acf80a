"""The report layer: what notebooks write (numbers, figures), the claims report, the runner, the HTML index, the CLI.

Notebooks call :func:`record` and :func:`save_figure`; ``python -m shortcut_nb`` is :mod:`.cli`.
"""
from .outputs import output_dir, record, save_figure

__all__ = ["output_dir", "record", "save_figure"]
