"""Notebook 03 (paper §3.3 / §5.1, Figs. 2, 4, Table 4): a CNN's penultimate-neuron s-scores, pruning them."""
