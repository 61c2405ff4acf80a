"""Last-layer methods on penultimate features: DFR, group-balanced refits, zeroing neurons, Prune_h, the head metric."""
