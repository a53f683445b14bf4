"""What the pinned SGLang build needs from the machine it is installed on.

Each fact is read from the package itself, and the source is named beside it.
The bootstrap's preflight checks these on the instance before the multi-GB
install; image choice and recommendations use them to offer only what can serve.
"""

from __future__ import annotations

#: SGLang, pinned.
SGLANG_VERSION = "0.5.23"
SGLANG_PINS = (f"sglang=={SGLANG_VERSION}",)

#: ``Requires-Python: >=3.11`` in the METADATA of every sglang-0.5.23 wheel
#: (https://pypi.org/simple/sglang/, sglang-0.5.23-cp312-cp312-manylinux_2_34_x86_64.whl).
MIN_PYTHON = (3, 11)
#: sglang 0.5.23 ships binary wheels only, for cp311, cp312 and cp313 (no sdist), so a
#: newer Python has nothing to install either (https://pypi.org/simple/sglang/).
WHEEL_PYTHONS = ((3, 11), (3, 12), (3, 13))
#: Its wheels are tagged ``manylinux_2_34_x86_64`` and ``manylinux_2_34_aarch64``:
#: glibc 2.34 or newer on x86_64 or arm64 (aarch64) hosts.
MIN_GLIBC = (2, 34)
ARCHITECTURES = ("x86_64", "arm64")
#: The platform tag of sglang's own wheel for each architecture. A resolver dry run of the pins must
#: pass every tag the target glibc accepts, not just this one: pip takes ``--platform`` literally, and
#: torch's and NVIDIA's wheels are tagged manylinux_2_28 and older (see soong.testing.rehearsal_resolve).
PIP_PLATFORMS = {"x86_64": "manylinux_2_34_x86_64", "arm64": "manylinux_2_34_aarch64"}

#: sglang 0.5.23 ``Requires-Dist: torch==2.14.1``; torch-2.14.1 (manylinux_2_28_x86_64, PyPI)
#: ``Requires-Dist: cuda-toolkit[...]==13.0.3``: the CUDA 13.0 runtime.
TORCH_PIN = "torch==2.14.1"
CUDA_RUNTIME = "13.0"
#: CUDA 13.0's minimum Linux driver, from NVIDIA's CUDA Toolkit release notes
#: (https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/, "CUDA Toolkit and
#: Corresponding Driver Versions": CUDA 13.0 GA >= 580.65.06). Minor-version
#: compatibility lets any 580+ driver run 13.0.x.
MIN_NVIDIA_DRIVER = (580, 65, 6)


def version_text(version: tuple[int, ...]) -> str:
    """``(580, 65, 6)`` as ``580.65.06``-style text (``3.11`` for a Python version)."""
    if len(version) == 3:
        return f"{version[0]}.{version[1]}.{version[2]:02d}"
    return ".".join(str(part) for part in version)


def python_supported(version: tuple[int, int]) -> bool:
    """Whether SGLang's pinned wheels install on CPython ``version`` (major, minor)."""
    return tuple(version[:2]) in WHEEL_PYTHONS


def serving_requirements():
    """These facts as core's :class:`~soong.core.images.ServingRequirements` for the ``sglang`` engine.

    Both architectures hold for the whole pinned set, not only the sglang wheel: a resolver
    dry run (``pip install --dry-run --only-binary=:all: --python-version 3.12
    --platform manylinux_2_{34..17}_<arch>`` for ``x86_64`` and ``aarch64``; pip 23.2 needs
    every glibc level listed, one ``--platform`` each) resolves sglang==0.5.23 to 207
    binary packages on each, torch 2.14.1 as ``manylinux_2_28_<arch>`` wheels.
    """
    from soong.core.images import ServingRequirements

    return ServingRequirements(engine="sglang", label=f"SGLang {SGLANG_VERSION}", pythons=WHEEL_PYTHONS,
                               architectures=ARCHITECTURES,
                               source="wheel tags and Requires-Python of sglang on https://pypi.org/simple/sglang/")
