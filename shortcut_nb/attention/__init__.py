"""Attention maths for ViTs: token layout, attention maps per layer and head, shares on spurious patches."""
from .maps import *  # noqa: F401,F403  (split by concept in the restructure)
from .maps import __all__  # noqa: F401
