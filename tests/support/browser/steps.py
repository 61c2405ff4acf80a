"""The declarative entries of a browser check: steps that move a control, expectations on what it renders,
and :class:`NotebookCheck`, one notebook's entry."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, Union

ERROR_TEXT = (
    r"Traceback \(most recent call last\)",
    r"could not draw",
    r"not precomputed",
    r"Error displaying widget",
    r"Failed to load model class",
    r"Model not found",
)


@dataclass(frozen=True)
class TextMatches:
    """After the step, the rendered text (controls' own text left out) matches ``pattern`` (``re.search``).

    ``scope="widget"``: the output area of the cell holding the control; ``"notebook"``: all cell outputs.
    """

    pattern: str
    scope: Literal["widget", "notebook"] = "widget"


@dataclass(frozen=True)
class TextChanged:
    """After the step, the rendered text (controls' own text left out) differs from before it."""

    scope: Literal["widget", "notebook"] = "widget"


@dataclass(frozen=True)
class ImageChanged:
    """After the step, the images (``img``/``canvas``) in scope differ from before it in their pixels.

    Args:
        min_fraction: at least this fraction of one image's pixels must differ (or the number or size
            of the images changed).
    """

    min_fraction: float = 0.002
    scope: Literal["widget", "notebook"] = "widget"


@dataclass(frozen=True)
class Shows:
    """After the step, the moved control itself displays ``value`` (its readout, selected option or state)."""

    value: str


Expectation = Union[TextMatches, TextChanged, ImageChanged, Shows]


@dataclass(frozen=True)
class Set:
    """Give the control labelled ``description`` the value ``value`` the way a user does.

    Sliders: type into the editable readout and press Enter; dropdowns/selects: pick the option whose
    label is ``str(value)``; toggle and radio buttons: click the button/label ``str(value)``; text
    and number fields: type and press Enter; checkboxes: tick or untick (``bool(value)``).
    ``nth`` picks one when several controls share the description (0-based, in page order).
    """

    description: str
    value: object
    expect: tuple[Expectation, ...] = ()
    nth: int | None = None
    timeout: float = 90.0


@dataclass(frozen=True)
class Nudge:
    """Move the slider labelled ``description`` by ``steps`` with the arrow keys (negative: to the left)."""

    description: str
    steps: int
    expect: tuple[Expectation, ...] = ()
    nth: int | None = None
    timeout: float = 90.0


@dataclass(frozen=True)
class Press:
    """Click the button whose text is ``description``."""

    description: str
    expect: tuple[Expectation, ...] = ()
    nth: int | None = None
    timeout: float = 90.0


Step = Union[Set, Nudge, Press]


@dataclass(frozen=True)
class NotebookCheck:
    """What the browser test does with one notebook.

    Args:
        steps: widget interactions, in order (each with its expectations).
        no_widgets: for a notebook without widgets, why (then ``steps`` must be empty).
        output_text: regexes that the cells' outputs must contain after "run all" (e.g. a printed line).
        parameters: papermill parameters beyond ``PROFILE`` and ``OUTPUT_DIR``.
        record: the notebook must write ``OUTPUT_DIR/<name>.json`` with ``"profile": "smoke"``.
        error_text: regexes that must not appear in any output (default :data:`ERROR_TEXT`).
        run_timeout: seconds allowed for "run all cells".
    """

    steps: tuple[Step, ...] = ()
    no_widgets: str = ""
    output_text: tuple[str, ...] = ()
    parameters: Mapping[str, object] = field(default_factory=dict)
    record: bool = True
    error_text: tuple[str, ...] = ERROR_TEXT
    run_timeout: float = 240.0

    def __post_init__(self) -> None:
        if bool(self.steps) == bool(self.no_widgets):
            raise ValueError("a NotebookCheck needs either steps or a no_widgets reason (not both, not neither)")
