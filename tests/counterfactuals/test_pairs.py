"""Counterfactual pairs change only what they flip: rendered (synthetic) and composited (any folder with masks)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from shortcut_nb.counterfactuals import composite_region, pairs
from shortcut_nb.data import ISICLikeSettings, generate_isic_like, load_dataset


def _outside_and_inside(p):
    diff = (p.images - p.counterfactuals).abs().amax(1)  # (n, H, W)
    region = p.flipped.region
    return diff[~region], diff[region]


@pytest.mark.parametrize("folder", ["waterbirds_folder", "isic_folder"])
@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("flip", ["attribute", "core"])
def test_rendered_counterfactual_changes_nothing_outside_the_flipped_region(request, folder, split, flip):
    ds = load_dataset(request.getfixturevalue(folder), split=split, image_size=32)
    p = pairs(ds, 12, seed=1, flip=flip)
    outside, inside = _outside_and_inside(p)
    assert outside.max() == 0  # exactly: the same pixels, normalised the same way
    assert inside.mean() > 0.1 and p.flipped.region.any((1, 2)).all()
    f = p.flipped
    assert f.method == "render" and f.flip == flip
    assert torch.equal(p.images, torch.stack([ds[int(i)]["image"] for i in p.indices]))
    if flip == "attribute":
        assert torch.equal(f.a_cf, 1 - f.a) and torch.equal(f.y_cf, f.y)
    else:
        assert torch.equal(f.y_cf, 1 - f.y) and torch.equal(f.a_cf, f.a)


def test_waterbirds_attribute_flip_swaps_exactly_the_background(waterbirds_folder):
    ds = load_dataset(waterbirds_folder, split="train", image_size=32)
    p = pairs(ds, 10, seed=0, flip="attribute")
    masks = torch.stack([ds[int(i)]["mask"] for i in p.indices])
    assert torch.equal(p.flipped.region, masks)  # the region flipped is the spurious mask: the background


def test_isic_attribute_flip_adds_or_removes_the_patch_including_inserted_rows(isic_folder):
    ds = load_dataset(isic_folder, split="test", image_size=32)
    inserted = [i for i in range(len(ds)) if str(ds.meta["img_filename"].iloc[i]).startswith("inserted/")]
    p = pairs(ds, len(ds), seed=0, flip="attribute")
    masks = torch.stack([ds[int(i)]["mask"] for i in p.indices])
    had_patch = p.flipped.a == 1
    assert torch.equal(p.flipped.region[had_patch], masks[had_patch])  # removed: exactly the patch's region
    assert not masks[~had_patch].any() and p.flipped.region[~had_patch].any((1, 2)).all()  # added
    assert inserted and set(inserted) <= set(p.indices.tolist())


def test_both_flips_of_one_seed_are_of_the_same_images(isic_folder):
    ds = load_dataset(isic_folder, split="test", image_size=32)
    a, c = pairs(ds, 20, seed=3, flip="attribute"), pairs(ds, 20, seed=3, flip="core")
    assert torch.equal(a.indices, c.indices) and torch.equal(a.images, c.images)
    again = pairs(ds, 20, seed=3, flip="core")
    assert torch.equal(again.counterfactuals, c.counterfactuals)


@pytest.mark.parametrize("folder", ["waterbirds_folder", "isic_folder"])
@pytest.mark.parametrize("method", ["render", "composite"])
def test_pairs_are_drawn_evenly_over_the_groups(request, folder, method):
    ds = load_dataset(request.getfixturevalue(folder), split="train", image_size=32)  # train: groups of unequal size
    counts = torch.bincount(ds.g, minlength=ds.n_groups)
    assert counts.min() < counts.max() // 2  # a random draw of a few rows would mostly miss the small groups
    present = int((counts > 0).sum())
    for n in (present, 2 * present + 1):
        for seed in range(5):
            p = pairs(ds, n, seed=seed, flip="attribute", method=method)
            drawn = torch.bincount(ds.g[p.indices], minlength=ds.n_groups)[counts > 0]
            size = counts[counts > 0]
            assert len(set(p.indices.tolist())) == n and (drawn >= 1).all()  # every group
            assert (drawn >= torch.clamp(size, max=n // present)).all()  # evenly, but for groups that ran out
            assert (drawn[drawn < size] >= drawn.max() - 1).all()
    assert not torch.equal(pairs(ds, present, seed=0, method=method).indices, pairs(ds, present, seed=1, method=method).indices)


def test_jpeg_and_jittered_folders_render(tmp_path):
    settings = ISICLikeSettings(image_size=32, n_train=8, n_val=8, n_test=8, seed=2, file_format="jpeg")
    ds = load_dataset(generate_isic_like(tmp_path / "jpeg", settings), split="train", image_size=32)
    p = pairs(ds, 6, seed=0, flip="core")
    outside, _ = _outside_and_inside(p)
    assert outside.max() == 0  # composed on the decoded file's own pixels
    jittered = ISICLikeSettings(image_size=32, n_train=8, n_val=8, n_test=8, seed=2, size_jitter=0.3)
    ds = load_dataset(generate_isic_like(tmp_path / "jitter", jittered), split="train", image_size=32)
    p = pairs(ds, 6, seed=0, flip="attribute")
    assert p.counterfactuals.shape == (6, 3, 32, 32) and p.flipped.region.any()


def _as_real_folder(src, dst):
    """A copy that is no longer the synthetic benchmark (a researcher's folder with masks)."""
    shutil.copytree(src, dst)
    (dst / "generator.json").unlink()
    return dst


@pytest.mark.parametrize("folder", ["waterbirds_folder", "isic_folder"])
def test_composite_changes_only_the_region_inside_the_two_masks(request, tmp_path, folder):
    root = _as_real_folder(request.getfixturevalue(folder), tmp_path / "real")
    ds = load_dataset(root, split="test", image_size=32)
    p = pairs(ds, 12, seed=0)
    f = p.flipped
    assert f.method == "composite" and f.flip == "attribute"
    outside, inside = _outside_and_inside(p)
    assert outside.max() == 0 and inside.mean() > 0
    assert (f.a_cf != f.a).all() and torch.equal(f.y_cf, f.y)
    for k, i in enumerate(p.indices.tolist()):
        mine, theirs = ds[i], ds[int(f.partner[k])]
        assert torch.equal(f.region[k], composite_region(mine["mask"], theirs["mask"]))
        assert not (f.region[k] & ~(mine["mask"] | theirs["mask"])).any()
        assert torch.equal(p.counterfactuals[k][:, f.region[k]], theirs["image"][:, f.region[k]])
    assert ((f.coverage > 0) & (f.coverage <= 1)).all()


def test_composite_region_rules():
    m = torch.zeros(4, 4, dtype=torch.bool)
    a, b = m.clone(), m.clone()
    a[:2] = True
    b[1:] = True
    assert torch.equal(composite_region(a, b), a & b)  # both have a spurious region (backgrounds): swap the overlap
    assert torch.equal(composite_region(a, m), a)  # the partner has none: remove mine (a patch)
    assert torch.equal(composite_region(m, b), b)  # I have none: add the partner's


def test_core_flip_of_a_real_folder_is_refused(tmp_path, waterbirds_folder):
    ds = load_dataset(_as_real_folder(waterbirds_folder, tmp_path / "real"), split="train", image_size=32)
    with pytest.raises(ValueError, match="flip='core' needs a renderer"):
        pairs(ds, 4, seed=0, flip="core")
    synthetic = load_dataset(waterbirds_folder, split="train", image_size=32)
    with pytest.raises(ValueError, match="flip='core' needs a renderer"):
        pairs(synthetic, 4, seed=0, flip="core", method="composite")
    with pytest.raises(ValueError, match="method='render' needs the synthetic benchmark"):
        pairs(ds, 4, seed=0, method="render")


def test_arguments_are_checked(waterbirds_folder, tmp_path):
    ds = load_dataset(waterbirds_folder, split="val", image_size=32)
    with pytest.raises(ValueError, match="flip must be one of"):
        pairs(ds, 4, seed=0, flip="background")
    with pytest.raises(ValueError, match="n=999 exceeds"):
        pairs(ds, 999, seed=0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        pairs(ds, 0, seed=0)
    with pytest.raises(TypeError, match="ShortcutDataset"):
        pairs([ds[0]], 1, seed=0)
    root = _as_real_folder(waterbirds_folder, tmp_path / "nomask")
    meta = (root / "metadata.csv").read_text().splitlines()
    header = meta[0].split(",")
    col = header.index("mask_filename")
    rows = [",".join(v for k, v in enumerate(line.split(",")) if k != col) for line in meta]
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="compositing needs spurious masks"):
        pairs(load_dataset(root, split="val", image_size=32), 4, seed=0)


def test_an_edited_synthetic_folder_is_refused(tmp_path, isic_folder):
    root = tmp_path / "edited"
    shutil.copytree(isic_folder, root)
    items = json.loads((root / "render_items.json").read_text())
    first = next(k for k, v in items.items() if "state" in v and k.startswith("images/0/"))
    items[first]["state"]["state"]["state"] += 1
    (root / "render_items.json").write_text(json.dumps(items))
    ds = load_dataset(root, split="train", image_size=32)
    with pytest.raises(ValueError, match="differs from its re-render"):
        pairs(ds, len(ds), seed=0)
