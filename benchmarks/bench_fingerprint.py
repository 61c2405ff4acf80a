"""What a dataset folder's fingerprint costs (issue 28), against decoding the same files once.

Writes a folder of ``--files`` files (default 10,000: ``--files / 2`` JPEG images of a real Waterbirds image's size,
about 450 × 350, and as many PNG masks), then times, with the files in the page cache (a cold disk adds reading
every byte to the content hash; ``stat`` reads inodes only):

* ``stat only``: size and mtime_ns of every named file (what an mtime key would cost);
* ``sha256 (first)``: :func:`~shortcut_nb.data.fingerprint.folder_fingerprint` in a fresh process state (every
  file read and hashed);
* ``sha256 (again)``: the same call again in the same process (one ``stat`` per file; hashes remembered);
* ``decode``: :meth:`~shortcut_nb.data.folder.ShortcutDataset.decode` of ``--decode`` images with their masks
  (224 px), scaled to the folder's images: the one-off cost of a decoded cache or of ``check-data``.

    python benchmarks/bench_fingerprint.py                  # 10,000 files
    python benchmarks/bench_fingerprint.py --files 2000 --decode 200
"""
from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from shortcut_nb.data import load_dataset
from shortcut_nb.data import fingerprint as fingerprint_module


def write_folder(root: Path, n_images: int, *, seed: int = 0) -> None:
    """``n_images`` distinct JPEGs (about 450 × 350) and their PNG masks, with a metadata.csv over three splits."""
    rng = np.random.default_rng(seed)
    bases = []
    for _ in range(16):  # a few encoded images, each file then made distinct by its own comment bytes
        pixels = (rng.random((350, 450, 3)) * 60 + np.linspace(0, 180, 450)[None, :, None]).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        bases.append(buffer.getvalue())
    mask = io.BytesIO()
    Image.fromarray((rng.random((350, 450)) > 0.5).astype(np.uint8) * 255).save(mask, format="PNG")
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(n_images):
        data = bases[i % len(bases)]
        comment = f"image {i}".encode()
        data = data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]  # COM segment
        (root / "images" / f"{i:05d}.jpg").write_bytes(data)
        (root / "images" / f"{i:05d}_mask.png").write_bytes(mask.getvalue())
        rows.append({"img_filename": f"images/{i:05d}.jpg", "y": i % 2, "place": (i // 2) % 2,
                     "split": (0, 0, 0, 1, 2)[i % 5], "mask_filename": f"images/{i:05d}_mask.png"})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)


def timed(fn) -> tuple[float, object]:
    tic = time.perf_counter()
    out = fn()
    return time.perf_counter() - tic, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000, help="image and mask files in all (half each)")
    parser.add_argument("--decode", type=int, default=300, help="images decoded to estimate the folder's decoding")
    args = parser.parse_args(argv)
    n_images = args.files // 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "folder"
        write_folder(root, n_images)
        files = fingerprint_module.named_files(root)
        size_mb = sum(os.path.getsize(root / f) for f in files) / 1e6
        t_stat, _ = timed(lambda: [(s.st_size, s.st_mtime_ns) for s in (os.stat(root / f) for f in files)])
        fingerprint_module._hashes.clear()
        t_first, first = timed(lambda: fingerprint_module.folder_fingerprint(root))
        t_again, again = timed(lambda: fingerprint_module.folder_fingerprint(root))
        assert first == again
        train = load_dataset(root, split="train", image_size=224)
        n = min(args.decode, len(train))
        t_decode, _ = timed(lambda: [train.decode(i) for i in range(n)])
        t_decode_all = t_decode / n * n_images
    print(f"{len(files)} files ({n_images} JPEG images ~450x350 + {n_images} PNG masks), {size_mb:.0f} MB, page cache "
          "warm")
    print(f"{'step':<34}{'seconds':>9}{'x stat':>9}")
    for name, t in (("stat only (size, mtime_ns)", t_stat), ("sha256 of every file (first)", t_first),
                    ("sha256 again (memo: one stat each)", t_again),
                    (f"decode images + masks (from {n})", t_decode_all)):
        print(f"{name:<34}{t:>9.2f}{t / t_stat:>9.1f}")
    print(f"content hash / decode: {t_first / t_decode_all:.1%}")


if __name__ == "__main__":
    main()
