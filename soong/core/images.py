"""Which machine image a launch boots, and which instance types it can serve on.

Three facts meet here, each from its owner:

- the instance type's host architecture (:attr:`soong.core.types.InstanceType.architecture`),
  from the provider plugin;
- the image family the provider launches with and what it holds (its Python version,
  the architectures it is built for): :class:`ImageFamily`, from the provider
  (:meth:`soong.core.interfaces.Provider.image_family`);
- what the serving engine's bootstrap can install (Pythons and architectures its
  pinned wheels exist for): :class:`ServingRequirements`, from the engine's plugin
  through the hook ``soong_serving_requirements``.

A :class:`Platform` holds the last two. Commands that offer instance types
(``models recommend``/``info``/``list``, ``start``) pass one to
:func:`soong.core.recommend.assess` (through ``recommend``, ``smallest_setup`` and
``choose_instance_type``), which calls :func:`architecture_problem`, so a type whose architecture the image family or the
engine cannot serve is never offered. Before a launch :func:`choose_image` picks
the exact image (family, architecture, region) from the provider's live list, and
refuses, before anything is launched, when there is none.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence

from soong.core.errors import ConfigError, NotFoundError
from soong.core.types import ARCHITECTURES, InstanceType, ModelSpec

PythonVersion = tuple[int, int]


def python_text(version: Sequence[int] | None) -> str:
    """``(3, 12)`` as ``3.12`` (``unknown`` for None)."""
    return ".".join(str(part) for part in version) if version else "unknown"


@dataclasses.dataclass(frozen=True)
class ServingRequirements:
    """What a serving engine's bootstrap needs from the image it is installed on.

    :param engine: the :attr:`~soong.core.types.ModelSpec.engine` it serves (``sglang``).
    :param label: how messages name it (``SGLang 0.5.23``).
    :param pythons: the CPython (major, minor) versions its pinned packages install on.
    :param architectures: the host architectures its pinned packages exist for.
    :param source: where these facts come from.
    """

    engine: str
    label: str
    pythons: tuple[PythonVersion, ...]
    architectures: tuple[str, ...]
    source: str = ""

    @property
    def min_python(self) -> PythonVersion:
        """The oldest supported Python."""
        return min(self.pythons)

    def pythons_text(self) -> str:
        """``3.11, 3.12 or 3.13``."""
        names = [python_text(v) for v in sorted(self.pythons)]
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


@dataclasses.dataclass(frozen=True)
class ImageFamily:
    """A provider's family of machine images (one per region and architecture), with what it holds.

    :param name: the family name the provider uses (``lambda-stack-24-04``).
    :param python: the system CPython (major, minor) of its images.
    :param architectures: the host architectures the family is built for.
    :param description: a few words (``Lambda Stack, Ubuntu 24.04``).
    :param source: where these facts come from.
    :param setting: the provider's config key that chooses the family (``lambda.image_family``), for messages.
    """

    name: str
    python: PythonVersion
    architectures: tuple[str, ...]
    description: str = ""
    source: str = ""
    setting: str = ""

    @property
    def how_to_change(self) -> str:
        """``set lambda.image_family`` (or the words for a provider that names no setting)."""
        return f"set {self.setting}" if self.setting else "choose another image family in the provider's settings"

    def describe(self) -> str:
        """``lambda-stack-24-04 (Lambda Stack, Ubuntu 24.04; Python 3.12; x86_64, arm64)``."""
        details = [d for d in (self.description, f"Python {python_text(self.python)}",
                               ", ".join(self.architectures)) if d]
        return f"{self.name} ({'; '.join(details)})"


@dataclasses.dataclass(frozen=True)
class MachineImage:
    """One image a provider offers: an id in a region, of a family, for an architecture."""

    id: str
    family: str
    architecture: str
    region: str
    name: str = ""
    version: str = ""


class ImageChoiceError(NotFoundError):
    """No image of the configured family exists for the type's architecture in the launch region (exit 8)."""


@dataclasses.dataclass(frozen=True)
class Platform:
    """What a launch would boot: the image family and the engines' requirements (either may be unknown)."""

    family: ImageFamily | None = None
    requirements: Mapping[str, ServingRequirements] = dataclasses.field(default_factory=dict)

    def requirements_for(self, engine: str) -> ServingRequirements | None:
        """The requirements of ``engine``, or None when no plugin declares them."""
        return self.requirements.get(engine)

    def family_problem(self, engine: str) -> str | None:
        """Why the image family cannot serve ``engine`` on any type (its Python), or None."""
        reqs = self.requirements_for(engine)
        if self.family is None or reqs is None or tuple(self.family.python) in reqs.pythons:
            return None
        return (f"image family {self.family.name} has Python {python_text(self.family.python)}, and {reqs.label} "
                f"installs only on Python {reqs.pythons_text()}")

    def type_problem(self, spec: ModelSpec, instance_type: InstanceType) -> str | None:
        """Why ``instance_type``'s architecture rules it out for ``spec`` on this platform, or None."""
        arch = instance_type.architecture
        reqs = self.requirements_for(spec.engine)
        if reqs is not None and arch not in reqs.architectures:
            return f"{instance_type.name} is an {arch} host and {reqs.label} has no {arch} build"
        if self.family is not None and arch not in self.family.architectures:
            return (f"{instance_type.name} is an {arch} host and image family {self.family.name} has no {arch} image "
                    f"(it has {', '.join(self.family.architectures)}; {self.family.how_to_change} to one with {arch})")
        return None


def architecture_problem(spec: ModelSpec, instance_type: InstanceType, platform: "Platform | None" = None) -> str | None:
    """Why ``instance_type`` cannot serve ``spec`` on ``platform`` (None: it can, or no platform is given).

    Without a platform nothing is known about the image, so nothing is ruled out
    here; the launch still picks its image by architecture (:func:`choose_image`)
    and refuses when there is none.
    """
    if instance_type.architecture not in ARCHITECTURES:
        return f"{instance_type.name} has an unknown host architecture {instance_type.architecture!r}"
    return platform.type_problem(spec, instance_type) if platform is not None else None


# -- building a platform ---------------------------------------------------------------------------


def collect_requirements(plugin_host: Any) -> dict[str, ServingRequirements]:
    """Every plugin's :class:`ServingRequirements` (hook ``soong_serving_requirements``), by engine."""
    found: dict[str, ServingRequirements] = {}
    for result in plugin_host.hook.soong_serving_requirements():
        for reqs in (result if isinstance(result, (list, tuple)) else [result]):
            if reqs is None:
                continue
            if not isinstance(reqs, ServingRequirements):
                raise ConfigError(f"a plugin returned {type(reqs).__name__} from soong_serving_requirements, "
                                  "not ServingRequirements")
            found.setdefault(reqs.engine, reqs)
    return found


def platform_for(context: Any, provider: Any = None) -> Platform:
    """The platform of ``provider`` (its configured image family) and the plugins' requirements.

    ``provider`` None: the image family is unknown (only the engines' needs apply).
    Raises :class:`~soong.core.errors.ConfigError` when the provider cannot describe
    its configured family.
    """
    family = provider.image_family() if provider is not None else None
    return Platform(family=family, requirements=collect_requirements(context.plugins))


def check_family(platform: Platform, engine: str) -> None:
    """Refuse (ConfigError, exit 3) an image family whose Python the engine cannot install on."""
    problem = platform.family_problem(engine)
    if problem:
        assert platform.family is not None
        raise ConfigError(problem, hint=f"{platform.family.how_to_change} to a family with a supported Python")


def choose_image(images: Iterable[MachineImage], family: str, architecture: str, region: str) -> MachineImage:
    """The image of ``family`` for ``architecture`` in ``region`` (the newest version when several).

    Raises :class:`ImageChoiceError` (exit 8) naming what exists instead: that
    family's images for the architecture in other regions, and the families for
    the architecture in the region.
    """
    images = list(images)
    matching = [i for i in images if i.family == family and i.architecture == architecture and i.region == region]
    if matching:
        return max(matching, key=lambda i: (_version_key(i.version), i.id))
    elsewhere = sorted({i.region for i in images if i.family == family and i.architecture == architecture})
    here = sorted({i.family for i in images if i.architecture == architecture and i.region == region})
    known = []
    if elsewhere:
        known.append(f"{family} for {architecture} is in {', '.join(elsewhere)}")
    known.append(f"{region} has {', '.join(here)} for {architecture}" if here
                 else f"{region} has no {architecture} image")
    raise ImageChoiceError(f"no {family} image for {architecture} in {region}; nothing was launched ({'; '.join(known)})")


def _version_key(version: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for chunk in version.replace("-", ".").split("."):
        parts.append((0, int(chunk), "") if chunk.isdigit() else (1, 0, chunk))
    return tuple(parts)
