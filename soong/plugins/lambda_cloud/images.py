"""Lambda's machine image families: what each holds, and the pick of one image before a launch.

Lambda's ``GET /images`` lists every image by region with its ``family``,
``version`` and ``architecture`` (``x86_64`` or ``arm64``), but not what is
inside. :data:`FAMILIES` records, for the families soong can judge, the system
Python and the architectures they are built for; a family missing here is
refused before launching, since soong cannot tell whether its Python can
install the serving engine.

Sources:

- the families and their architectures: Lambda's ``GET /images`` sample
  (``tests/data/lambda-cloud-api/images.sample.json``, images updated 2025-11): e.g.
  ``lambda-stack-24-04`` exists for ``x86_64`` in 16 regions (all but us-east-3) and for ``arm64``
  in us-east-3; ``gpu-base-*`` and ``lambda-stack-legacy-22-04`` only for ``x86_64``.
- Python of Ubuntu 24.04 (noble): package ``python3`` 3.12.3-0ubuntu1 (noble) and
  3.12.3-0ubuntu2.1 (noble-updates), ``Depends: python3.12``
  (http://archive.ubuntu.com/ubuntu/dists/noble/main/binary-amd64/Packages.xz;
  source ``python3-defaults`` 3.12.3-0ubuntu1 is built for every architecture,
  ``Architecture: any all`` in dists/noble/main/source/Sources.xz).
- Python of Ubuntu 22.04 (jammy): ``python3`` 3.10.4-0ubuntu2 (jammy) and
  3.10.6-1~22.04.1 (jammy-updates), ``Depends: python3.10``
  (http://archive.ubuntu.com/ubuntu/dists/jammy/main/binary-amd64/Packages.xz).
- Lambda Stack installs its frameworks into that system Python; the image
  names and descriptions say which Ubuntu release each family is
  ("Lambda Stack 24.04", "GPU Base 22.04", "Lambda Stack (Legacy) on Ubuntu 22.04.5 LTS").
"""

from __future__ import annotations

from typing import Any

from soong.core.errors import ConfigError
from soong.core.images import ImageFamily, MachineImage

#: The default ``lambda.image_family``: Ubuntu 24.04 with Lambda Stack, for x86_64 and arm64.
DEFAULT_FAMILY = "lambda-stack-24-04"

_SAMPLE = "Lambda GET /images (tests/data/lambda-cloud-api/images.sample.json)"
_NOBLE = "Ubuntu noble python3 3.12.3 (archive.ubuntu.com dists/noble/main Packages)"
_JAMMY = "Ubuntu jammy python3 3.10.6 (archive.ubuntu.com dists/jammy-updates/main Packages)"

#: Families soong knows, by name (see the module docstring for the sources).
FAMILIES: dict[str, ImageFamily] = {
    family.name: family for family in (
        ImageFamily("lambda-stack-24-04", (3, 12), ("x86_64", "arm64"), "Lambda Stack, Ubuntu 24.04",
                    f"{_SAMPLE}; {_NOBLE}"),
        ImageFamily("lambda-stack-22-04", (3, 10), ("x86_64", "arm64"), "Lambda Stack, Ubuntu 22.04",
                    f"{_SAMPLE}; {_JAMMY}"),
        ImageFamily("lambda-stack-legacy-22-04", (3, 10), ("x86_64",), "Lambda Stack (Legacy), Ubuntu 22.04",
                    f"{_SAMPLE}; {_JAMMY}"),
        ImageFamily("gpu-base-24-04", (3, 12), ("x86_64",), "GPU Base (CUDA, Docker), Ubuntu 24.04",
                    f"{_SAMPLE}; {_NOBLE}"),
        ImageFamily("gpu-base-22-04", (3, 10), ("x86_64",), "GPU Base (CUDA, Docker), Ubuntu 22.04",
                    f"{_SAMPLE}; {_JAMMY}"),
    )
}


def family_facts(name: str) -> ImageFamily:
    """The facts of family ``name``; ConfigError (exit 3) for one soong does not know."""
    family = FAMILIES.get(name)
    if family is None:
        raise ConfigError(f"soong does not know what image family '{name}' holds (lambda.image_family), so it cannot "
                          f"tell whether it can serve a model; known families: {', '.join(FAMILIES)}",
                          hint=f"the default is {DEFAULT_FAMILY}")
    return family


def machine_image(image: Any) -> MachineImage:
    """Core's :class:`~soong.core.images.MachineImage` of a parsed Lambda image."""
    return MachineImage(id=image.id, family=image.family, architecture=image.architecture, region=image.region,
                        name=image.name, version=image.version)
