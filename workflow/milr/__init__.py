"""milr: maximal initial learning rates of deep ReLU networks.

A small library for measuring η* — the largest constant SGD learning rate at which a freshly
initialised network reaches a threshold validation accuracy within a few epochs — and the
sharpness λ1 at initialisation, as in Iyer, Hanin & Rolnick (ICML 2023) — for the study's own
MLPs, and (:func:`find_eta_star`) for any PyTorch network a caller builds.

Layers, bottom up (no module imports one above it): ``names``, ``settings``, ``io``,
``records`` -> ``data``, ``model``, ``journal``, ``search`` -> ``train`` -> ``batched`` ->
``prober`` -> ``measure``, ``sharpness``, ``find`` -> ``tables``, ``laws`` -> ``fit``, ``evidence``,
``predict`` -> ``figures``, ``summary``, ``config``, ``plan`` -> ``cli``.
"""

__version__ = "0.1.0"


class MilrError(Exception):
    """A problem the user can fix (bad input, missing data); the CLI prints it as one line and
    exits with status 2."""


class MilrFailure(MilrError):
    """A failure while working (a download, a GPU that never came free); exit status 1."""


# The public face, imported on first use (PEP 562): `import milr` stays torch-free, so the
# Snakefile and the CLI's help start fast. name -> module that defines it.
_PUBLIC = {
    "find_eta_star": "milr.find",
    "EtaStar": "milr.find",
    "Trial": "milr.find",
    "train_at": "milr.find",
    "Verdict": "milr.find",
    "EtaStarFinder": "milr.lightning",  # the optional extra: pip install -e '.[lightning]'
    "FindSettings": "milr.settings",
    "measure_eta_star": "milr.measure",
    "measure_sharpness": "milr.sharpness",
    "SearchInputs": "milr.records",
    "SharpnessInputs": "milr.records",
}
__all__ = ["MilrError", "MilrFailure", "__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'milr' has no attribute {name!r}")
