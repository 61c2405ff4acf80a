"""Notebook 06 (paper §6, Figs. 8-9): ViT neurons next to the CNN's, and where the ViT's attention heads look."""
