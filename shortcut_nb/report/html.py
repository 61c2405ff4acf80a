"""The runner's ``index.html``: executed notebooks as HTML, their figures, numbers and the claims report."""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from ..artifacts import atomic_write_bytes
from ..figures import FOREST_CAPTION
from .claims import FOREST_NAME, effect_cells, margin_text, verdict_text


def notebook_to_html(ipynb: Path) -> Path | None:
    """Render an executed notebook to HTML beside it (None when nbconvert cannot)."""
    try:
        import nbformat
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nbformat.read(ipynb, as_version=4))
    except Exception as err:  # a broken notebook still gets an index entry
        print(f"[shortcut_nb] could not render {ipynb.name} to HTML: {err}")
        return None
    return atomic_write_bytes(ipynb.with_suffix(".html"), body.encode())


def write_index(out: str | os.PathLike, *, results: list[dict], profile: str) -> Path:
    out = Path(out)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>shortcut_nb report ({profile})</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}img{max-width:520px;margin:4px}</style>",
             f"</head><body><h1>shortcut_nb — run report</h1><p>Profile <b>{html.escape(profile)}</b>. "
             "Each section links the executed notebook, its recorded numbers and its figures.</p>"]
    claims_path = out / "claims.json"
    if claims_path.is_file():
        rows = json.loads(claims_path.read_text())["claims"]
        parts.append("<h2>Claims report</h2>")
        forest = out / "figures" / f"{FOREST_NAME}.png"
        if forest.is_file():
            parts.append(f"<figure><a href='figures/{forest.name}'><img src='figures/{forest.name}' "
                         f"alt='claims forest plot' style='max-width:100%'></a><figcaption>"
                         f"{html.escape(FOREST_CAPTION)}</figcaption></figure>")
        parts.append("<table><tr><th>claim</th><th>paper</th><th>ours</th><th>effect</th><th>95 % interval</th>"
                     "<th>paper's value</th><th>holds</th><th>margin</th><th>seeds</th></tr>")
        for r in rows:
            cells = "".join(f"<td>{html.escape(c)}</td>" for c in effect_cells(r))
            parts.append(f"<tr><td>{html.escape(r['claim'])}</td><td>{html.escape(r['paper'])}</td>"
                         f"<td>{html.escape(str(r['ours']))}</td>{cells}<td>{html.escape(verdict_text(r))}</td>"
                         f"<td>{margin_text(r)}</td><td>{r.get('seeds', '')}</td></tr>")
        parts.append("</table><p><a href='claims.md'>claims.md</a> · <a href='claims.json'>claims.json</a></p>")
    figures = sorted((out / "figures").glob("*.png")) if (out / "figures").is_dir() else []
    for r in results:
        name = r["name"]
        status = "ok" if r["ok"] else "FAILED"
        parts.append(f"<h2>{html.escape(name)}</h2><p>{status} in {r['seconds']:.0f} s. ")
        ipynb = out / f"{name}.ipynb"
        if ipynb.is_file():
            rendered = notebook_to_html(ipynb)
            if rendered is not None:
                parts.append(f"<a href='{rendered.name}'>notebook (HTML)</a> · ")
            parts.append(f"<a href='{ipynb.name}'>notebook (.ipynb)</a> · ")
        if (out / f"{name}.json").is_file():
            parts.append(f"<a href='{name}.json'>recorded numbers</a>")
        parts.append("</p>")
        if not r["ok"]:
            parts.append(f"<pre>{html.escape(r.get('error', '')[-2000:])}</pre>")
        prefix = name.split("_")[0]
        for fig in figures:
            if fig.name.startswith(prefix):
                parts.append(f"<a href='figures/{fig.name}'><img src='figures/{fig.name}' alt='{fig.stem}'></a>")
    parts.append("</body></html>")
    return atomic_write_bytes(out / "index.html", "\n".join(parts).encode())
