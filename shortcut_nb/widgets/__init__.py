"""Notebook widgets: thin ipywidgets views over module-level functions that tests call directly."""
