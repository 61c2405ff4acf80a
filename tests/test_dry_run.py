"""The paper profile's own code path on a CPU: every notebook with real architectures at 224 px, sizes capped.

One runner call (``python -m shortcut_nb run --profile paper --dry-run``) over all six notebooks; the asserts read
what the notebooks recorded: Table 2's five paper models, ResNet-18's 7×7 last map, ViT-B/16's 14×14 token grid,
random weights said so, real-format JPEG data of varied sizes, no error output.
"""
from __future__ import annotations

import json

import nbformat
import pytest
from PIL import Image

from shortcut_nb.report.runner import DRY_RUN_TIMEOUT, run_all

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

PAPER_MODELS = ("resnet18", "resnet50", "resnext50_32x4d", "vit_base_patch16_224", "deit_base_patch16_224")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out, root = tmp_path_factory.mktemp("dry_out"), tmp_path_factory.mktemp("dry_runs")
    results = run_all(profile="paper", out=out, runs_root=str(root), dry_run=True, timeout=DRY_RUN_TIMEOUT)
    return out, root, {r.name: r for r in results}


def _recorded(dry_run, name: str) -> dict:
    out, _, results = dry_run
    assert results[name].ok, f"{name} failed in the dry run:\n{results[name].error}"
    nb = nbformat.read(out / f"{name}.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{name}: error output {errors[0].get('ename')}: {errors[0].get('evalue')}"
    rec = json.loads((out / f"{name}.json").read_text())
    assert rec["profile"] == "paper" and rec["weights"] == "random (dry run)"
    return rec


def test_table2_has_the_papers_five_models(dry_run):
    rec = _recorded(dry_run, "01_groups")
    for dataset in ("waterbirds", "isic"):
        models = sorted(r["model"] for k, r in rec["table2"].items() if k.startswith(dataset + "/"))
        assert models == sorted(PAPER_MODELS), models
    assert rec["runs"]["trained"] >= 10


def test_the_data_is_real_format(dry_run):
    _, root, _ = dry_run
    folders = sorted(p for p in (root / "data").glob("*_like-*") if p.is_dir())
    assert folders
    sizes = set()
    for folder in folders:
        meta = (folder / "metadata.csv").read_text().splitlines()[1:6]
        for line in meta:
            image = folder / line.split(",")[1] if folder.name.startswith("waterbirds") else folder / line.split(",")[0]
            assert image.suffix == ".jpg", image
            sizes.add(Image.open(image).size)
    assert len(sizes) > 3  # varied sizes, resized to 224 px by the loader


@pytest.mark.parametrize("name", ["02_latent_space", "04_entanglement", "05_subnetworks"])
def test_the_other_notebooks_ran_the_paper_models(dry_run, name):
    rec = _recorded(dry_run, name)
    assert rec["runs"]["trained"] + rec["runs"]["loaded"] >= 1


def test_vit_b16_has_a_14_by_14_token_grid(dry_run):
    rec = _recorded(dry_run, "06_vit_heads")
    for dataset, attention in rec["attention"].items():
        assert attention["model"] == "vit_base_patch16_224" and attention["grid"] == [14, 14], dataset
        assert (attention["layers"], attention["heads"]) == (12, 12)


def test_resnet18_has_a_7_by_7_last_map(dry_run):
    rec = _recorded(dry_run, "03_cnn_neurons")
    for dataset, entry in rec["datasets"].items():
        assert entry["model"] == "resnet18" and entry["target_map"] == [7, 7], dataset
