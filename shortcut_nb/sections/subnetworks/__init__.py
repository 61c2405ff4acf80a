"""Notebook 05 (paper §5.3, Figs. 6–7): subnetworks of a frozen model found by binary weight masks."""
