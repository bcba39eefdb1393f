"""Makes ESPnet's own entry points know S3Net, without editing ESPnet's files.

The installed package puts ``espnet_s3net_plugin.pth`` into ``site-packages``; Python runs
its one line (:func:`install`) at start-up. That adds a finder to ``sys.meta_path`` which
does nothing until ``espnet2.tasks.asr`` is imported (it imports nothing itself: no torch,
no ESPnet). Right after ESPnet's module has run, :func:`espnet_s3net.tasks.asr` is
imported, which registers the ``s3net`` frontend and ``passthrough`` encoder, and
``espnet2.tasks.asr.ASRTask`` becomes :class:`espnet_s3net.tasks.asr.S3NetASRTask`
(ESPnet's task plus the ``lang`` data input, ``--batch_type lang_numel`` and the
mask-aware trainer, which behave as ESPnet does for configs that use none of them). So
``python -m espnet2.bin.asr_train``, ``espnet2.bin.asr_inference``, ``espnet2.bin.pack``
and ``Speech2Text`` work with ``frontend: s3net`` configs.

Switch it off for one command with ``ESPNET_S3NET_PLUGIN=0``; remove the ``.pth`` file
(``python -m espnet_s3net.plugin --where`` prints its path) to switch it off for good.
"""

import importlib
import importlib.abc
import importlib.machinery
import os
import sys

ENV_SWITCH = "ESPNET_S3NET_PLUGIN"
TARGET = "espnet2.tasks.asr"


def enabled() -> bool:
    """Whether ESPnet's ASR task is to be extended (``ESPNET_S3NET_PLUGIN`` is not ``0``)."""
    return os.environ.get(ENV_SWITCH, "1") != "0"


def _extend_espnet_asr(module) -> None:
    # espnet_s3net.tasks.asr registers our classes and, at its end, makes its task
    # ESPnet's ASRTask (it may be mid-import itself: it imports espnet2.tasks.asr)
    importlib.import_module("espnet_s3net.tasks.asr")


class _ExtendingLoader(importlib.abc.Loader):
    """Runs the real loader, then extends the module."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _extend_espnet_asr(module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class ESPnetASRFinder(importlib.abc.MetaPathFinder):
    """Finds ``espnet2.tasks.asr`` as the other finders do and wraps its loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _ExtendingLoader(spec.loader)
        return spec


def install() -> None:
    """Add the finder (once); a no-op with ``ESPNET_S3NET_PLUGIN=0``."""
    if not enabled():
        return
    if any(isinstance(f, ESPnetASRFinder) for f in sys.meta_path):
        return
    if TARGET in sys.modules:
        _extend_espnet_asr(sys.modules[TARGET])
        return
    sys.meta_path.insert(0, ESPnetASRFinder())


#: written into site-packages by setup.py (its line: ``import espnet_s3net.plugin; espnet_s3net.plugin.install()``)
PTH_NAME = "espnet_s3net_plugin.pth"

if __name__ == "__main__":
    import site

    if sys.argv[1:] == ["--where"]:
        print(os.path.join(site.getsitepackages()[0], PTH_NAME))
    else:
        sys.exit("usage: python -m espnet_s3net.plugin --where")
