"""The package's layering, checked on its source: each import points down (or sideways within a layer).

foundation (vocab, paper numbers, config, artifacts, progress, the claims registry) → core by concept (pure
functions on tensors and arrays) → pipeline (training, caches, the notebook's context) → sections (one folder
per notebook; never importing each other) → report (claims report, runner, HTML, CLI). The core prints
nothing and draws nothing; a section's claims read recorded JSON only; package imports sit at module top.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import shortcut_nb

PACKAGE = Path(shortcut_nb.__file__).resolve().parent

LAYERS: dict[str, int] = {
    **dict.fromkeys(("vocab", "paper", "config", "artifacts", "locks", "progress", "intervals", "claims"), 0),
    **dict.fromkeys(("data", "models", "metrics", "sscore", "bands", "attention", "embeddings", "lastlayer", "masks", "counterfactuals"),
                    1),
    "pipeline": 2,
    **dict.fromkeys(("sections", "display", "figures", "api"), 3),
    "report": 4,
    **dict.fromkeys(("__init__", "__main__"), 5),
}
LAYER_NAMES = ("foundation", "core", "pipeline", "sections", "report", "package entry")
CORE, PIPELINE = 1, 2
# Drawing, tables, widgets and notebook display are for sections (views, widgets) and the report.
PRESENTATION = ("matplotlib", "seaborn", "pandas", "ipywidgets", "IPython")
# Reading and writing metadata.csv is the data layer's job; pandas is its CSV library.
PRESENTATION_ALLOWED = {"data": ("pandas",)}
CLAIMS_MAY_IMPORT = ("shortcut_nb.claims", "shortcut_nb.paper", "shortcut_nb.vocab")
MAX_LINES = 450


@dataclass(frozen=True)
class Import:
    target: str  # absolute dotted name
    line: int
    in_function: bool


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(source: str, module: str, *, is_package: bool) -> list[Import]:
    """Every import in ``source`` (of module ``module``), relative ones resolved, with where it stands."""
    tree = ast.parse(source)
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    prefix = ".".join(base + ([child.module] if child.module else []))
                else:
                    prefix = child.module or ""
                if child.module is None or child.level and not child.module:
                    # "from . import x": each name may be a submodule
                    found.extend(Import(f"{prefix}.{a.name}", child.lineno, in_function) for a in child.names)
                else:
                    found.append(Import(prefix, child.lineno, in_function))
            visit(child, inside)

    visit(tree, False)
    return found


def unit_of(module: str) -> str:
    """The layer unit of a package module: its first component below ``shortcut_nb``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def violations(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """What in ``source`` breaks the layering (empty when nothing does)."""
    unit = unit_of(module)
    if unit not in LAYERS:
        return [f"{module}: top-level unit {unit!r} has no layer; add it to LAYERS in tests/test_layering.py"]
    layer = LAYERS[unit]
    problems = []
    for imp in imports_of(source, module, is_package=is_package):
        where = f"{module}:{imp.line} imports {imp.target}"
        top = imp.target.split(".")[0]
        if top in PRESENTATION and layer <= PIPELINE and top not in PRESENTATION_ALLOWED.get(unit, ()):
            problems.append(f"{where}: the {LAYER_NAMES[layer]} layer draws and displays nothing")
        if top != "shortcut_nb":
            continue
        if imp.in_function:
            problems.append(f"{where} inside a function: package imports go at module top")
        target_unit = unit_of(imp.target)
        if target_unit not in LAYERS:
            problems.append(f"{where}: unknown unit {target_unit!r}")
            continue
        if LAYERS[target_unit] > layer:
            problems.append(f"{where}: {LAYER_NAMES[layer]} may not import from {LAYER_NAMES[LAYERS[target_unit]]}")
        mine, theirs = module.split("."), imp.target.split(".")
        if unit == "sections" and target_unit == "sections" and len(theirs) > 2 and mine[2] != theirs[2]:
            problems.append(f"{where}: sections never import each other")
        if unit == "sections" and mine[-1] == "claims":
            own_record = ".".join(mine[:3] + ["record"])
            if not (imp.target.startswith(CLAIMS_MAY_IMPORT) or imp.target == own_record):
                problems.append(f"{where}: a section's claims read recorded JSON only "
                                f"(may import {', '.join(CLAIMS_MAY_IMPORT)} and {own_record})")
    if layer == CORE:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                problems.append(f"{module}:{node.lineno}: the core prints nothing (return what to show)")
    return problems


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_respects_the_layering(path: Path) -> None:
    problems = violations(module_name(path), path.read_text(), is_package=path.name == "__init__.py")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_small(path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {n} lines: split it by role or concept"


# --------------------------------------------------------------------------- the checker itself


@pytest.mark.parametrize("module, source, expected", [
    ("shortcut_nb.metrics", "from .pipeline.runs import train_or_load\n", "core may not import from pipeline"),
    ("shortcut_nb.sscore.cams", "from ..sections.cnn_neurons import study\n", "core may not import from sections"),
    ("shortcut_nb.pipeline.runs", "from ..report import record\n", "pipeline may not import from report"),
    ("shortcut_nb.sections.entanglement.study", "from ..cnn_neurons.study import x\n", "never import each other"),
    ("shortcut_nb.sections.groups.claims", "from shortcut_nb.pipeline.runs import run_spec\n", "recorded JSON only"),
    ("shortcut_nb.bands", "import matplotlib.pyplot as plt\n", "draws and displays nothing"),
    ("shortcut_nb.sections.groups.study", "def f():\n    from shortcut_nb import metrics\n", "module top"),
    ("shortcut_nb.metrics", "def f():\n    print('x')\n", "prints nothing"),
])
def test_checker_flags_a_wrong_import(module: str, source: str, expected: str) -> None:
    problems = violations(module, source)
    assert any(expected in p for p in problems), problems


def test_checker_accepts_downward_and_own_record_imports() -> None:
    assert violations("shortcut_nb.sections.groups.study", "from ...pipeline.context import Context\n"
                      "from ...metrics import summarize\nimport matplotlib\n") == []
    assert violations("shortcut_nb.sections.groups.claims", "from ...claims import claim\n"
                      "from .record import KEYS\n") == []
    assert violations("shortcut_nb.data.folder", "import pandas as pd\n") == []
    assert violations("shortcut_nb.latent_space", "import numpy\n")  # an unknown unit needs a layer
