"""Notebook 04 (paper §5.2, §6.1, Tables 5–6, Fig. 5): what Deep Feature Reweighting changes in the last layer."""
