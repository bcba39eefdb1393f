"""espnet_s3net: S3Net (sparse sharing sub-networks) as an ESPnet extension."""

import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

# espnet_s3net/plugin.py: the .pth line that makes ESPnet's entry points know S3Net
PLUGIN_PTH = ("espnet_s3net_plugin.pth", "import espnet_s3net.plugin; espnet_s3net.plugin.install()\n")


def _write_plugin_pth(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, PLUGIN_PTH[0]), "w", encoding="utf-8") as f:
        f.write(PLUGIN_PTH[1])


class BuildPyWithPlugin(build_py):
    """Puts the plugin's .pth at the top of the built tree (site-packages once installed)."""

    def run(self):
        super().run()
        _write_plugin_pth(self.build_lib)


class DevelopWithPlugin(develop):
    """Editable install: puts the plugin's .pth into site-packages."""

    def run(self):
        super().run()
        _write_plugin_pth(self.install_dir)

# The torch / torchaudio / espnet triple is pinned together: torchaudio must match
# torch's release, and espnet 202511 is the release these extension points target.
install_requires = [
    "torch==2.11.*",
    "torchaudio==2.11.*",
    "espnet==202511",
    # imported by espnet2 code paths we use but not declared by espnet itself
    "einops>=0.8",
    "hydra-core>=1.3",
    "sentencepiece==0.2.0",
    "kaldiio>=2.18",
    "jiwer>=3.0",
    "soundfile>=0.12",
    "lameenc>=1.7",
    "soxr>=0.3",
    "phonemizer>=3.3",
    "espeakng-loader>=0.2.4",
    "babel>=2.14",
    "numpy>=1.24",
    "scipy>=1.10",  # scipy.stats.binomtest (sign test of RESULTS.md); espnet requires it as well
    "PyYAML>=6.0",
    "matplotlib>=3.7",
    "tensorboard>=2.14",
]

setup(
    name="espnet_s3net",
    version="0.1.0",
    description=(
        "Language-adaptive cross-lingual speech representation learning with "
        "sparse sharing sub-networks (S3Net) for ESPnet"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["espnet_s3net", "espnet_s3net.*"]),
    package_data={"espnet_s3net.masks": ["mask_passes.c"]},  # built at run time, see mask_kernels
    python_requires=">=3.10",
    install_requires=install_requires,
    cmdclass={"build_py": BuildPyWithPlugin, "develop": DevelopWithPlugin},
    extras_require={
        "test": ["pytest>=7.4", "pytest-xdist>=3.5", "transformers>=4.40", "scipy>=1.10", "ruff>=0.6", "wandb>=0.31"],
    },
)
