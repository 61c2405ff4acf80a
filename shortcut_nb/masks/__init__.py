"""Binary weight masks on frozen weights (Csordás et al.; paper §5.3): masks, training, group removal."""
from .weight_masks import *  # noqa: F401,F403  (split by concept in the restructure)
from .weight_masks import __all__  # noqa: F401
