"""pyproject.toml and the package's imports agree: every runtime dependency is imported somewhere in shortcut_nb,
and every third-party module shortcut_nb imports comes from a declared dependency.

Distribution names map to import names through the installed metadata
(``importlib.metadata.packages_distributions``: grad-cam → pytorch_grad_cam, pillow → PIL, scikit-learn → sklearn,
umap-learn → umap, pyyaml → yaml, ...), so the check runs in the environment ``bash ci/setup_env.sh`` installs.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import pytest

import shortcut_nb

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

PACKAGE = Path(shortcut_nb.__file__).resolve().parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"

#: Declared dependencies the package's code never imports, because a tool it starts uses them.
USED_AT_RUN_TIME: dict[str, str] = {
    "ipykernel": "the python3 kernel papermill starts for every notebook (report/runner.py)",
}
#: Optional packages imported without being declared: only inside a function, behind a check that says how to
#: install them.
OPTIONAL_IMPORTS: dict[str, str] = {
    "openTSNE": "tsne_backend='opentsne' in embeddings.py (find_spec first; the error says `pip install openTSNE`)",
}


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies(pyproject: Path = PYPROJECT) -> set[str]:
    """The canonical names of ``[project] dependencies`` (the runtime dependencies, not the extras)."""
    with pyproject.open("rb") as f:
        requirements = tomllib.load(f)["project"]["dependencies"]
    return {canonical(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r).group()) for r in requirements}


def _installed() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``({module: {distribution}}, {distribution: {module}})`` of the installed distributions."""
    dists_of: dict[str, set[str]] = defaultdict(set)
    modules_of: dict[str, set[str]] = defaultdict(set)
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            dists_of[module].add(canonical(dist))
            modules_of[canonical(dist)].add(module)
    return dists_of, modules_of


DISTS_OF, MODULES_OF = _installed()


def third_party_imports(source: str) -> dict[str, bool]:
    """``{top-level module: imported at module level}`` of the absolute imports in ``source`` outside the standard
    library and shortcut_nb (``False``: only inside functions)."""
    found: dict[str, bool] = {}

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "shortcut_nb":
                    found[top] = found.get(top, False) or not inside
            visit(child, inside)

    visit(ast.parse(source), False)
    return found


def package_sources(root: Path = PACKAGE) -> dict[str, str]:
    """``{path relative to the repository: source}`` of every .py file of the package."""
    return {str(p.relative_to(root.parent)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))}


def undeclared_imports(sources: Mapping[str, str], declared: set[str]) -> dict[str, list[str]]:
    """``{module: [files]}`` of the third-party imports no declared distribution provides (an
    :data:`OPTIONAL_IMPORTS` module is allowed inside functions only)."""
    problems: dict[str, list[str]] = defaultdict(list)
    for path, source in sources.items():
        for module, at_module_level in third_party_imports(source).items():
            if module in OPTIONAL_IMPORTS and not at_module_level:
                continue
            if not DISTS_OF.get(module, set()) & declared:
                problems[module].append(path)
    return dict(problems)


def unused_dependencies(sources: Mapping[str, str], declared: set[str]) -> list[str]:
    """The declared distributions none of whose modules ``sources`` import (less :data:`USED_AT_RUN_TIME`)."""
    imported = {module for source in sources.values() for module in third_party_imports(source)}
    return sorted(d for d in declared - set(USED_AT_RUN_TIME) if not MODULES_OF.get(d, set()) & imported)


def test_every_third_party_import_of_the_package_is_declared():
    undeclared = undeclared_imports(package_sources(), declared_dependencies())
    assert not undeclared, (f"imported but not in pyproject.toml's dependencies (or not installed: "
                            f"bash ci/setup_env.sh): {undeclared}")


def test_every_declared_dependency_is_imported_by_the_package():
    unused = unused_dependencies(package_sources(), declared_dependencies())
    assert not unused, (f"declared in pyproject.toml but imported nowhere in shortcut_nb (or not installed: "
                        f"bash ci/setup_env.sh): {unused}; a tool's run-time need goes in USED_AT_RUN_TIME")


def test_the_allow_lists_stay_honest():
    declared = declared_dependencies()
    imported = {m for source in package_sources().values() for m in third_party_imports(source)}
    for dist in USED_AT_RUN_TIME:
        assert dist in declared, f"{dist} is allowed as a run-time dependency but not declared"
        assert not MODULES_OF.get(dist, set()) & imported, f"{dist} is imported now: drop it from USED_AT_RUN_TIME"
    for module in OPTIONAL_IMPORTS:
        assert module in imported, f"{module} is imported nowhere now: drop it from OPTIONAL_IMPORTS"
        assert not DISTS_OF.get(module, set()) & declared, f"{module} is declared now: drop it from OPTIONAL_IMPORTS"


def test_the_check_flags_an_undeclared_import_and_an_unused_dependency():
    source = ("from __future__ import annotations\nimport os.path\nimport numpy as np\nfrom yaml import safe_load\n"
              "from . import figures\nfrom shortcut_nb import vocab\n\n\ndef tsne():\n    import openTSNE\n")
    declared = {"numpy", "pandas"}
    assert third_party_imports(source) == {"numpy": True, "yaml": True, "openTSNE": False}
    assert undeclared_imports({"fake.py": source}, declared) == {"yaml": ["fake.py"]}
    assert undeclared_imports({"top.py": "import openTSNE\n"}, declared) == {"openTSNE": ["top.py"]}  # not lazy
    assert unused_dependencies({"fake.py": source}, declared) == ["pandas"]
    assert unused_dependencies({"fake.py": source}, {"pillow", "scikit-learn"}) == ["pillow", "scikit-learn"]
    assert unused_dependencies({"fake.py": "from PIL import Image\nimport sklearn.linear_model\n"},
                               {"pillow", "scikit-learn"}) == []
