"""The runner's ``index.html``: executed notebooks as HTML, their figures, numbers and the claims report."""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from ..artifacts import atomic_write_bytes, read_json
from ..figures import FOREST_CAPTION
from .claims import FOREST_NAME, effect_cells, margin_text, verdict_text
from .publish import LAST_GOOD, earlier_records, outputs_of, recorded_time


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


def provenance_html(rec: dict) -> str:
    """What produced a notebook's numbers, in one paragraph: its data (synthetic said first), model, seeds,
    parameters, package, commit, threads, device."""
    inputs, prov = rec.get("inputs") or {}, rec.get("provenance") or {}
    sources = inputs.get("datasets") or {}
    synthetic = [name for name, d in sources.items() if d.get("synthetic")]
    folders = [f"{name}: {d['path']} (fingerprint {d.get('fingerprint', '?')})" for name, d in sources.items()
               if not d.get("synthetic")]
    data = ([f"<b>synthetic benchmark</b> ({html.escape(', '.join(synthetic))}): these numbers are not from real "
             "data"] if synthetic else []) + [html.escape(folder) for folder in folders]
    params = ", ".join(f"{k}={v!r}" for k, v in (prov.get("parameters") or {}).items())
    lines = [f"data: {'; '.join(data) or 'not recorded'}",
             f"models: {html.escape(str(inputs.get('model') or inputs.get('models') or 'not recorded'))}; seeds "
             f"{html.escape(str(inputs.get('seeds', 'not recorded')))}",
             f"parameters: {html.escape(params or 'not recorded')}",
             f"shortcut_nb {html.escape(str(prov.get('package_version', '?')))}, commit "
             f"{html.escape(str(prov.get('git_commit', '?')))}, {prov.get('torch_threads', '?')} torch threads, "
             f"{html.escape(str(prov.get('device', '?')))}, recorded {html.escape(str(prov.get('recorded_at', '?')))}"]
    return "<p class='provenance'>" + "<br>".join(lines) + "</p>"


def last_good_html(out: Path, name: str) -> str:
    """Links to a failed notebook's last good outputs (``last_good/``), when there are some."""
    kept = outputs_of(out / LAST_GOOD, name)
    if not kept:
        return ""
    when = recorded_time(out / LAST_GOOD / f"{name}.json") if (out / LAST_GOOD / f"{name}.json").is_file() else "?"
    return (f" The last good outputs (recorded {html.escape(when)}) are kept beside it: " + ", ".join(
        f"<a href='{LAST_GOOD}/{rel.as_posix()}'>{html.escape(rel.as_posix())}</a>" for rel in kept) + ".")


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
        if (out / f"{name}.json").is_file():
            parts.append(provenance_html(read_json(out / f"{name}.json")))
        if not r["ok"]:
            parts.append(f"<p>Its claims show as not run: no number of this failed run is reported.{last_good_html(out, name)}"
                         f"</p><pre>{html.escape(r.get('error', ''))}</pre>")
        prefix = name.split("_")[0]
        for fig in figures:
            if fig.name.startswith(prefix):
                parts.append(f"<a href='figures/{fig.name}'><img src='figures/{fig.name}' alt='{fig.stem}'></a>")
    earlier = earlier_records(out, [r["name"] for r in results])
    if earlier:
        parts.append("<h2>From an earlier run</h2><p>Recorded by an earlier runner call into this folder, not by this "
                     "one; their claims are marked so.</p><ul>" + "".join(
                         f"<li><a href='{stem}.json'>{html.escape(stem)}</a>, recorded {html.escape(when)}</li>"
                         for stem, when in earlier.items()) + "</ul>")
    parts.append("</body></html>")
    return atomic_write_bytes(out / "index.html", "\n".join(parts).encode())
