"""Notebook widgets (moving into the section folders)."""
from ..display import show_in

__all__ = ["show_in"]
