"""Built-in strategies, registered through the same hook third-party plugins implement.

Each module is named after the strategy it holds (`relaxed` holds the relaxed-acceptance family:
lantern, gsd, entropy_sd); `drafting` and `rows` are what several of them share.
"""

from ..core.plugins import hookimpl

#: former names that keep working, by the strategy's name
FORMER_NAMES = {"sjd_above": ("sjd-above",)}


@hookimpl
def pardecode_register_strategies(register):
    from .ar import AR
    from .jacobi import Jacobi
    from .pjd import PJD
    from .relaxed import GSD, EntropySD, Lantern
    from .sjd import SJD
    from .sjd2 import SJD2
    from .sjd_above import SJDAbove
    from .sjd_pac import SJDPAC
    from .sjd_pac_tree import SJDPACTree
    from .sjd_reuse import SJDReuse
    from .zipar import ZipAR

    for cls in (AR, Jacobi, SJD, SJD2, SJDAbove, SJDPAC, SJDPACTree, SJDReuse, Lantern, GSD, EntropySD, ZipAR, PJD):
        register(cls.name, cls, cls.__doc__, aliases=FORMER_NAMES.get(cls.name, ()))
