"""Progress bars: a widget in JupyterLab, plain text under papermill/CI (no log flooding)."""
from __future__ import annotations

import os
from typing import Iterable, TypeVar

T = TypeVar("T")

PLAIN_ENV = "SHORTCUT_NB_PLAIN_PROGRESS"


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None, enabled: bool = True, leave: bool = True):
    """Wrap ``iterable`` in a tqdm bar suited to where the code runs.

    The runner sets ``SHORTCUT_NB_PLAIN_PROGRESS=1`` for headless runs: bars are
    then plain text, redrawn at most every 10 s, so executed notebooks stay small.
    """
    if not enabled:
        return iterable
    if os.environ.get(PLAIN_ENV):
        from tqdm.std import tqdm

        return tqdm(iterable, desc=desc, total=total, leave=leave, mininterval=10.0, ascii=True)
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=leave)


def progress_bar(*, total: int | None, desc: str = "", leave: bool = True):
    """A tqdm bar advanced by hand (``bar.update(1)``), with :func:`progress`'s rendering rules.

    Pass ``refresh=False`` to ``set_postfix``: a forced refresh on every step would defeat the
    10 s redraw interval of headless runs and write one line per step into the executed notebook.
    """
    if os.environ.get(PLAIN_ENV):
        from tqdm.std import tqdm

        return tqdm(total=total, desc=desc, leave=leave, mininterval=10.0, ascii=True)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=leave)
