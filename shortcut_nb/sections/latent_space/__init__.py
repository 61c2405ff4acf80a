"""Notebook 02, the latent space (paper §4.2, Fig. 3): projections and within-class kNN purity of features."""
