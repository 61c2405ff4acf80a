"""Browser tests: every notebook in a real JupyterLab (headless Chromium), run in the smoke profile, widgets moved.

Run on their own with ``python -m pytest -m browser``. Each notebook is copied with ``PROFILE="smoke"``
injected (papermill ``--prepare-only``), opened in JupyterLab on 127.0.0.1, run with "Run All Cells",
checked for errors (cell outputs, the kernel's error messages, widget "could not draw" text), and then
its widgets are moved as its entry in :data:`CHECKS` says, with assertions on what they render.
Screenshots go to ``runs/browser/`` (or ``$SHORTCUT_NB_BROWSER_OUT``).

Needs Debian's ``chromium`` (``bash ci/install_browser.sh``) and the ``browser`` extra (JupyterLab,
Playwright's Python client; never ``playwright install``). Missing tools FAIL these tests, they do not skip.

A new notebook needs an entry in :data:`CHECKS`: the steps that move its widgets (found by their
``description``) and what must change. See ``tests/support/browser/steps.py`` for the step and expectation types.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from support.browser import (
    BrowserCheckError,
    ImageChanged,
    LabBrowser,
    LabServer,
    NotebookCheck,
    Nudge,
    Press,
    Set,
    Shows,
    TextChanged,
    TextMatches,
    browser_output_dir,
    check_notebook,
    missing_browser_tools,
    prepare_notebook,
)
from shortcut_nb.report.runner import notebooks_dir

pytestmark = pytest.mark.browser

NOTEBOOKS = sorted(p.stem for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))

# --------------------------------------------------------------------------- one entry per notebook
# Each entry says which widgets to move (by their description) and what must change. The notebooks run
# in this order in one JupyterLab, sharing one runs root, so 01 trains the models the others reuse.

CHECKS: dict[str, NotebookCheck] = {
    "01_groups": NotebookCheck(
        no_widgets="tables and one figure, no interactive widget",
        output_text=(r"recorded \[.*'wga'.*\] in ", r"WGA"),
    ),
    "02_latent_space": NotebookCheck(steps=(
        # recolouring the same projection: same points, other colours
        Set("colour by", "class", expect=(Shows("class"), ImageChanged(min_fraction=0.002),
                                          TextMatches(r"CNN · .* · colour: class — within-class attribute purity"))),
        # the other model: other features, another t-SNE picture, the caption names it
        Set("arch", "ViT", expect=(Shows("ViT"), ImageChanged(min_fraction=0.01),
                                   TextMatches(r"ViT · .* · colour: class — within-class attribute purity"))),
    )),
    "03_cnn_neurons": NotebookCheck(steps=(
        # the α slider (arrow keys): band counts recomputed at the new threshold, histogram and heatmaps redrawn
        Nudge("alpha", 2, expect=(Shows("0.60"), TextMatches(r"at α = 0\.60: low \d+ · mid \d+ · high \d+ neurons"),
                                  ImageChanged())),
        # the τ slider: the pruning line recomputed for the new cut
        Set("tau", 0.9, expect=(Shows("0.90"), TextMatches(r"pruning s > 0\.90 zeroes \d+ neurons"))),
        # the neuron picker (by index): the shown neuron's line and heatmaps follow
        Set("number", 0, expect=(TextMatches(r"neuron 0 \((low|mid|high) band, rank \d+ of \d+\): s = \d\.\d{3} "
                                             r"at α = 0\.60"),)),
        Set("number", 1, expect=(TextMatches(r"neuron 1 \((low|mid|high) band"), ImageChanged())),
        # the units of any block (issue 17): layer, CAM method and score variant pickers; line and histogram follow
        Set("layer", "layer2.0", expect=(Shows("layer2.0"),
                                         TextMatches(r"layer2\.0 \(\d+ units\), gradcam, hard at α = 0\.60: low \d+"),
                                         ImageChanged())),
        Set("method", "Grad-CAM++", expect=(Shows("Grad-CAM++"),
                                            TextMatches(r"layer2\.0 \(\d+ units\), gradcam\+\+, hard at"),
                                            ImageChanged())),
        Set("variant", "hard, mask dilated", expect=(Shows("hard, mask dilated"),
                                                     TextMatches(r"gradcam\+\+, hard \(mask \+ \d+ px\) at α = 0\.60"),
                                                     ImageChanged())),
    )),
    "04_entanglement": NotebookCheck(steps=(
        # another C of DFR's grid: the line of numbers names it, the kept-neuron histogram redraws
        Set("C", "C=0.1", expect=(Shows("C=0.1"), TextMatches(r"waterbirds/cnn · DFR C=0\.1: WGA \d\.\d\d"),
                                  ImageChanged())),
        # another model: the C choice is kept, numbers and histogram are the other model's
        Set("model", "isic · resnet_mini", expect=(Shows("isic · resnet_mini"),
                                                   TextMatches(r"isic/cnn · DFR C=0\.1: WGA \d\.\d\d"),
                                                   ImageChanged())),
    )),
    "05_subnetworks": NotebookCheck(steps=(
        # the mask trained without the other group: the caption names it and the figure redraws
        Set("mask trained", "without BwP",
            expect=(TextMatches(r"Mask trained without BwP, keeping \d+\.\d% of the weights"), ImageChanged())),
        # a sparser mask of the same group: the caption's keep fraction and the figure change
        Set("keeping", "60% of weights", expect=(Shows("60% of weights"), TextChanged(), ImageChanged())),
    )),
    "06_vit_heads": NotebookCheck(steps=(
        # neuron view: a lower s-score threshold lets more neurons through; caption and histogram follow
        Set("min s-score", 0.2, expect=(Shows("0.20"), TextMatches(r"neurons have s-score ≥ 0\.20"),
                                        ImageChanged())),
        # the attention explorer's layer / head / patch picker
        Set("head", "head 1", expect=(Shows("head 1"), TextMatches(r"· layer \d+ · head 1: "), ImageChanged())),
        Set("layer", 0, expect=(Shows("0"), TextMatches(r"· layer 0 · head 1: "), ImageChanged())),
        Set("patch row", 0, expect=(Shows("0"), TextMatches(r"target patch \(0, \d+\)"))),
        Set("patch col", 0, expect=(Shows("0"),
                                    TextMatches(r"target patch \(0, 0\) \[(core|spurious)\] · layer 0 · head 1"),
                                    ImageChanged())),
    )),
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def browser_tools():
    missing = missing_browser_tools()
    if missing:
        pytest.fail("browser tests need: " + "; ".join(missing), pytrace=False)


@pytest.fixture(scope="session")
def browser_out() -> Path:
    out = browser_output_dir()
    for stale in out.glob("*_FAILED.png"):
        stale.unlink()
    return out


@pytest.fixture(scope="session")
def browser_runs_root(request, tmp_path_factory) -> Path:
    """The runs root the notebooks' kernels use: ``$SHORTCUT_NB_BROWSER_RUNS`` (reused across sessions), else the
    smoke run's (models already trained) when conftest offers a ``smoke_runs_root`` fixture, else a fresh one."""
    if os.environ.get("SHORTCUT_NB_BROWSER_RUNS"):
        return Path(os.environ["SHORTCUT_NB_BROWSER_RUNS"]).resolve()
    try:
        return Path(request.getfixturevalue("smoke_runs_root"))
    except pytest.FixtureLookupError:
        return tmp_path_factory.mktemp("browser_runs")


@pytest.fixture(scope="session")
def lab(browser_tools, browser_out, browser_runs_root, tmp_path_factory):
    """One JupyterLab server and one headless Chromium page for the whole session."""
    work = tmp_path_factory.mktemp("browser_work")
    server = LabServer(work / "lab", env={"SHORTCUT_NB_RUNS": str(browser_runs_root)},
                       log_path=browser_out / "jupyterlab.log")
    try:
        browser = LabBrowser(server, profile_dir=work / "chromium-profile")
    except Exception:
        server.stop()
        raise
    yield browser
    blocked = list(browser.blocked)
    browser.close()
    server.stop()
    (browser_out / "blocked_requests.json").write_text(json.dumps(blocked, indent=1))


@pytest.fixture(scope="session")
def summaries(browser_out):
    """Per-notebook summaries, written to ``browser_report.json`` at the end of the session."""
    done: dict[str, dict] = {}
    yield done
    if done:
        path = browser_out / "browser_report.json"
        old = json.loads(path.read_text()) if path.is_file() else {}
        path.write_text(json.dumps({**old, **done}, indent=1))


# --------------------------------------------------------------------------- the notebooks


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_widgets_respond_in_jupyterlab(name, lab, browser_out, summaries, tmp_path):
    check = CHECKS.get(name)
    if check is None:
        pytest.fail(f"{name} has no browser check: add an entry to CHECKS in tests/test_browser.py that moves "
                    f"at least one of its widgets and asserts what changes", pytrace=False)
    failure = None
    try:
        summary = check_notebook(lab, notebooks_dir() / f"{name}.ipynb", check, out_dir=browser_out,
                                 record_dir=tmp_path / "out")
    except BrowserCheckError as err:
        failure = str(err)
    if failure:
        pytest.fail(f"{failure}\n(screenshot: {browser_out / (name + '_FAILED.png')}; "
                    f"server log: {browser_out / 'jupyterlab.log'})", pytrace=False)
    summaries[name] = summary
    assert len(summary["steps"]) == len(check.steps)
    page, *steps = (Path(p) for p in summary["screenshots"])
    assert page.stat().st_size > 20_000 and all(p.stat().st_size > 1_000 for p in steps), summary["screenshots"]
    assert not lab.blocked or all("127.0.0.1" not in u for u in lab.blocked)


def test_every_notebook_with_widgets_has_steps():
    """An entry without steps is only for a notebook that builds no widget; no entry names a missing notebook."""
    assert set(CHECKS) <= set(NOTEBOOKS), f"entries for no notebook: {sorted(set(CHECKS) - set(NOTEBOOKS))}"
    for name in NOTEBOOKS:
        check = CHECKS.get(name)
        assert check is not None, f"{name} has no entry in CHECKS"
        nb = nbformat.read(notebooks_dir() / f"{name}.ipynb", as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        # a section's widget module (``from shortcut_nb.sections.<name> import ..., widget``) or ipywidgets itself
        uses_widgets = bool(re.search(r"^from shortcut_nb\.sections\.\w+ import .*\bwidget\b|ipywidgets", code,
                                      flags=re.MULTILINE))
        assert uses_widgets == bool(check.steps), (
            f"{name}: {'uses widgets but its entry moves none' if uses_widgets else 'has no widget but steps'}")


# --------------------------------------------------------------------------- the machinery itself

_TOY = '''
import ipywidgets as w
import matplotlib.pyplot as plt
from IPython.display import display

shown, out = w.HTML("shown neuron 3"), w.Output()
neuron = w.IntSlider(value=3, min=0, max=10, description="neuron")
alpha = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.1, description="alpha")
colour = w.Dropdown(options=["viridis", "gray"], description="colour map")
note = w.Text(description="note")
go = w.Button(description="explode")

def redraw(change=None):
    if neuron.value == 9:
        raise ZeroDivisionError("neuron nine")
    shown.value = f"shown neuron {neuron.value}, alpha {alpha.value:.2f}, note {note.value}"
    with out:
        out.clear_output(wait=True)
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.imshow([[neuron.value, 0], [0, 10 - neuron.value]], cmap=colour.value, vmin=0, vmax=10)
        display(fig)
        plt.close(fig)

for c in (neuron, alpha, colour, note):
    c.observe(redraw, names="value")
go.on_click(lambda b: 1 / 0)
redraw()
w.VBox([w.HBox([neuron, alpha, colour, note, go]), shown, out])
'''


def test_machinery_moves_controls_and_catches_failures(lab, tmp_path, browser_out):
    """The steps move real controls, the expectations see the change, and failures are reported, not missed."""
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("PROFILE = 'cpu'\nOUTPUT_DIR = '.'", metadata={"tags": ["parameters"]}),
                             new_code_cell(_TOY), new_code_cell("print(f'profile is {PROFILE}')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "00_toy.ipynb"
    nbformat.write(nb, src)
    root = lab.server.root_dir
    copy = prepare_notebook(src, root / "toy", output_dir=tmp_path)
    session = lab.open(copy.relative_to(root).as_posix())
    try:
        session.run_all(60)
        assert session.errors() == []
        assert any("profile is smoke" in t for t in session.outputs_text()), "parameters were not injected"

        r = session.apply(Set("neuron", 7, expect=(Shows("7"), TextMatches(r"shown neuron 7\b"), ImageChanged())))
        assert len(r.checks) == 3
        session.apply(Nudge("alpha", 2, expect=(Shows("0.70"), TextMatches(r"alpha 0\.70"))))
        session.apply(Set("alpha", 0.2, expect=(Shows("0.20"), TextMatches(r"alpha 0\.20"))))
        session.apply(Set("colour map", "gray", expect=(Shows("gray"), ImageChanged(min_fraction=0.05))))
        session.apply(Set("note", "hello", expect=(TextMatches(r"note hello"),)))

        # An expectation that cannot hold fails (within its timeout), naming the pattern.
        with pytest.raises(BrowserCheckError, match="does not match 'shown neuron 99'"):
            session.apply(Set("neuron", 6, expect=(TextMatches(r"shown neuron 99"),), timeout=3))
        # Text that changes while the picture does not: ImageChanged fails.
        with pytest.raises(BrowserCheckError, match="image did not change"):
            session.apply(Set("note", "again", expect=(ImageChanged(),), timeout=3))
        # Unknown descriptions list what is there.
        with pytest.raises(BrowserCheckError, match=r"no control with description 'nope'.*'colour map'"):
            session.apply(Set("nope", 1))
        with pytest.raises(BrowserCheckError, match="has no option 'red'"):
            session.apply(Set("colour map", "red"))
        # Exceptions in callbacks never reach a cell's output; they are still caught.
        with pytest.raises(BrowserCheckError, match="ZeroDivisionError: neuron nine"):
            session.apply(Set("neuron", 9, expect=(TextChanged(),)))
        with pytest.raises(BrowserCheckError, match="ZeroDivisionError"):
            session.apply(Press("explode"))
        shots = session.screenshot(browser_out / "00_toy.png", around="neuron")
        shots += session.screenshot(browser_out / "00_toy_end.png")
        assert all(p.stat().st_size > 5_000 for p in shots)
    finally:
        session.close()
