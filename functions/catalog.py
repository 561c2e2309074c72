"""The functions this build serves, by name: the built-in ones, and those registered from other packages.

A function whose code lives outside this repository is registered without editing this module, either by

- the ``WAKESERVE_FUNCTIONS`` variable, comma-separated ``NAME=module:Class`` entries, e.g.
  ``WAKESERVE_FUNCTIONS="tiny=tests.support.tinyfunction:Tiny"``, or
- an entry point in the ``wakeserve.functions`` group of an installed distribution, ``NAME = "module:Class"``.

``Class`` is a :class:`~functions.contract.Function` subclass, constructed without arguments, whose ``name``
is ``NAME``. Registrations are read whenever a function is looked up, never at import time, and a bad one
fails with a one-line :class:`RegistrationError` naming the variable or the entry point it came from.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from functions.contract import Function

ENV_VAR = "WAKESERVE_FUNCTIONS"
ENTRY_POINT_GROUP = "wakeserve.functions"
# A function's name is a Kubernetes object name (DNS-1035 label) and part of its Kafka topic and group.
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")

Factory = Callable[[Path | None], Function]


class RegistrationError(ValueError):
    """A function registration that cannot be used; the message is one line and says where it came from."""


def _embedder(encoder: Path | None) -> Function:
    from functions.embedder.function import Embedder

    return Embedder()


def _classifier(encoder: Path | None) -> Function:
    from functions.classifier.function import Classifier

    return Classifier(encoder_checkpoint=encoder)


def _echo(encoder: Path | None) -> Function:
    from functions.echo.function import Echo

    return Echo()


def _generator(encoder: Path | None) -> Function:
    from functions.generator.function import Generator

    return Generator()


# Functions in this repository: ``functions/<name>/`` with a factory that imports it only when asked for.
BUILTIN: dict[str, Factory] = {
    "embedder": _embedder,
    "classifier": _classifier,
    "echo": _echo,
    "generator": _generator,
}


@dataclass(frozen=True)
class Registration:
    """A function registered by ``module:Class``; ``source`` names where (the variable or the entry point)."""

    name: str
    target: str
    source: str

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    def load_class(self) -> type[Function]:
        """Import the class, checking that it is a Function named as registered."""
        module_name, _, attribute = self.target.partition(":")
        where = f"{self.source}: {self.name}={self.target}"
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise RegistrationError(f"{where}: cannot import {module_name!r} ({exc})") from exc
        cls = getattr(module, attribute, None)
        if not (isinstance(cls, type) and issubclass(cls, Function)):
            raise RegistrationError(f"{where}: {attribute!r} in {module_name!r} is not a Function subclass")
        declared = getattr(cls, "name", None)
        if declared != self.name:
            raise RegistrationError(f"{where}: the class is named {declared!r}, so it must be registered as that")
        return cls

    def create(self, encoder: Path | None = None) -> Function:
        """A fresh instance; registered functions take no encoder (they load their own weights)."""
        return self.load_class()()

    def package(self) -> str:
        """The package that holds the function's source: the module itself when it is a package."""
        self.load_class()
        module = importlib.import_module(self.module)
        if getattr(module, "__path__", None) is not None:
            return self.module
        if not module.__package__:
            raise RegistrationError(
                f"{self.source}: {self.name}={self.target}: a function lives in a package (a directory with"
                " __init__.py), which holds its golden.json and is what watch mode reloads"
            )
        return module.__package__


def parse(spec: str, source: str = ENV_VAR) -> dict[str, Registration]:
    """``NAME=module:Class[,NAME=module:Class...]`` to registrations by name; blanks between commas are ignored."""
    found: dict[str, Registration] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, target = (part.strip() for part in entry.partition("="))
        if not sep or not name or not target:
            raise RegistrationError(f"{source}: {entry!r} is not NAME=module:Class")
        found[name] = _registration(name, target, source, found)
    return found


def _registration(name: str, target: str, source: str, seen: Mapping[str, Registration]) -> Registration:
    if not _NAME.fullmatch(name):
        raise RegistrationError(
            f"{source}: {name!r} is not a function name (lowercase letters, digits and '-', starting with a letter,"
            " at most 63 characters)"
        )
    if not _TARGET.fullmatch(target):
        raise RegistrationError(f"{source}: {name}={target!r} does not name a class as module:Class")
    if name in BUILTIN:
        raise RegistrationError(f"{source}: {name!r} is a built-in function and cannot be registered again")
    if name in seen:
        raise RegistrationError(f"{source}: {name!r} is registered twice ({seen[name].source} and {source})")
    return Registration(name, target, source)


def _entry_point_registrations() -> dict[str, Registration]:
    found: dict[str, Registration] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        dist = point.dist.name if point.dist is not None else "unknown distribution"
        source = f"entry point {ENTRY_POINT_GROUP} of {dist}"
        found[point.name] = _registration(point.name, point.value.strip(), source, found)
    return found


def registrations(environ: Mapping[str, str] | None = None) -> dict[str, Registration]:
    """Every function registered from outside this repository: installed entry points, then the variable."""
    found = _entry_point_registrations()
    spec = (os.environ if environ is None else environ).get(ENV_VAR, "")
    for name, registration in parse(spec).items():
        found[name] = _registration(name, registration.target, registration.source, found)
    return found


class Catalog(Mapping[str, Factory]):
    """Built-in and registered functions by name, with registrations read afresh on every lookup."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def _all(self) -> dict[str, Factory]:
        return {**BUILTIN, **{name: r.create for name, r in registrations(self._environ).items()}}

    def __getitem__(self, name: str) -> Factory:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, name: object) -> bool:
        return name in self._all()


FUNCTIONS: Mapping[str, Factory] = Catalog()


def create(name: str, encoder: Path | None = None) -> Function:
    """A fresh, unloaded function; ``encoder`` is the resolved encoder checkpoint where one is used."""
    try:
        factory = FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}") from None
    return factory(encoder)


# Built-in functions that generate text (answered on the OpenAI routes); known without importing them, so the
# gateway can tell without loading torch.
GENERATIVE_BUILTIN = frozenset({"generator"})


def is_generative(name: str) -> bool:
    """Whether ``name`` generates text; a registered function's class is imported (not constructed) to tell."""
    if name in BUILTIN:
        return name in GENERATIVE_BUILTIN
    found = registrations()
    if name not in found:
        raise ValueError(f"unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}")
    from functions.contract import GenerativeFunction

    return issubclass(found[name].load_class(), GenerativeFunction)


def package(name: str) -> str:
    """The dotted package holding a function's source (``functions.echo``), where its golden.json lives."""
    if name in BUILTIN:
        return f"functions.{name}"
    found = registrations()
    if name not in found:
        raise ValueError(f"unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}")
    return found[name].package()


def package_dir(name: str) -> Path:
    """The directory of :func:`package`."""
    module = importlib.import_module(package(name))
    return Path(module.__file__ or "").resolve().parent
