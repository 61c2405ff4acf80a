"""One seed controls data, training and sampling: the same seed and torch thread count give the same numbers,
in separate processes writing separate runs roots (data generated anew, model trained anew)."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, torch
torch.set_num_threads(int(sys.argv[2]))
from shortcut_nb.artifacts import weights_hash
from shortcut_nb.pipeline.context import Context
ctx = Context.build("smoke", root=sys.argv[1], progress=False)
spec = ctx.run_spec("waterbirds", seed=3, epochs=1)
model, info = ctx.train_or_load(spec)
out = ctx.evaluate(model, spec, "test")
samples = ctx.masked_samples(spec, seed=0, n=4)
print(weights_hash(model), info["trained_now"], torch.get_num_threads(), out["pred"].tolist(),
      samples.indices.tolist(), [round(float(v), 8) for v in samples.images.flatten()[:50]])
"""


def _run(root, threads: int) -> str:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(root), str(threads)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_same_seed_and_thread_count_same_numbers(tmp_path):
    for threads in (1, 2):
        first, second = _run(tmp_path / f"a{threads}", threads), _run(tmp_path / f"b{threads}", threads)
        assert first.split()[1:3] == ["True", str(threads)]  # trained anew, at that thread count
        assert first == second
