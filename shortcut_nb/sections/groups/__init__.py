"""Notebook 01 (paper §4.1, Tables 2–3): per-group accuracy, AVG, WGA and GAP, and the minority-ratio sweep."""
