"""A function that lives outside ``functions/``, registered the way a separate package would register one.

``WAKESERVE_FUNCTIONS="tiny=tests.support.tinyfunction:Tiny"`` makes ``wakeserve serve tiny`` serve it.
"""

from tests.support.tinyfunction.function import Tiny

__all__ = ["Tiny"]
