"""milr: maximal initial learning rates of deep ReLU networks.

A small library for measuring η* — the largest constant SGD learning rate at which a freshly
initialised network reaches a threshold validation accuracy within a few epochs — and the
sharpness λ1 at initialisation, as in Iyer, Hanin & Rolnick (ICML 2023).

Layers, bottom up (no module imports one above it): ``names``, ``settings``, ``io``,
``records`` -> ``data``, ``model``, ``journal``, ``search`` -> ``train`` -> ``batched`` ->
``prober`` -> ``measure``, ``sharpness`` -> ``tables``, ``laws`` -> ``fit``, ``evidence``,
``predict`` -> ``figures``, ``summary``, ``config``, ``plan`` -> ``cli``.
"""

__version__ = "0.1.0"


class MilrError(Exception):
    """A problem the user can fix (bad input, missing data); the CLI prints it as one line and
    exits with status 2."""


class MilrFailure(MilrError):
    """A failure while working (a download, a GPU that never came free); exit status 1."""
