"""Registration of functions: built-in ones, ``WAKESERVE_FUNCTIONS`` and the ``wakeserve.functions`` entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from functions import catalog
from functions.catalog import ENV_VAR, Registration, RegistrationError
from tests.support.tinyfunction import Tiny

TINY = "tiny=tests.support.tinyfunction:Tiny"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", {}),
        (" , ,", {}),
        (TINY, {"tiny": "tests.support.tinyfunction:Tiny"}),
        (" tiny = tests.support.tinyfunction:Tiny ,", {"tiny": "tests.support.tinyfunction:Tiny"}),
        ("a=m:A,b-2=pkg.mod:B", {"a": "m:A", "b-2": "pkg.mod:B"}),
    ],
    ids=["empty", "only-separators", "one", "spaces-and-trailing-comma", "two"],
)
def test_good_specs_parse(spec: str, expected: dict[str, str]) -> None:
    found = catalog.parse(spec)
    assert {name: r.target for name, r in found.items()} == expected
    assert all(r.source == ENV_VAR for r in found.values())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tiny", "'tiny' is not NAME=module:Class"),
        ("=m:A", "'=m:A' is not NAME=module:Class"),
        ("tiny=", "'tiny=' is not NAME=module:Class"),
        ("Tiny=m:A", "'Tiny' is not a function name"),
        ("tiny_fn=m:A", "'tiny_fn' is not a function name"),
        ("-tiny=m:A", "'-tiny' is not a function name"),
        ("tiny=m.A", "tiny='m.A' does not name a class as module:Class"),
        ("tiny=m:A:B", "tiny='m:A:B' does not name a class as module:Class"),
        ("tiny=m.:A", "tiny='m.:A' does not name a class as module:Class"),
        ("echo=m:Echo", "'echo' is a built-in function and cannot be registered again"),
        ("a=m:A,a=n:B", f"'a' is registered twice ({ENV_VAR} and {ENV_VAR})"),
    ],
    ids=[
        "no-target",
        "no-name",
        "empty-target",
        "uppercase",
        "underscore",
        "leading-dash",
        "no-colon",
        "two-colons",
        "empty-module-part",
        "shadows-built-in",
        "duplicate",
    ],
)
def test_bad_specs_fail_in_one_line_naming_the_variable(spec: str, message: str) -> None:
    with pytest.raises(RegistrationError) as caught:
        catalog.parse(spec)
    text = str(caught.value)
    assert text.startswith(f"{ENV_VAR}: ") and message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.support.no_such_module:Tiny", "cannot import 'tests.support.no_such_module'"),
        ("tests.support.tinyfunction:Missing", "'Missing' in 'tests.support.tinyfunction' is not a Function subclass"),
        ("tests.support.tinyfunction.function:np", "'np' in 'tests.support.tinyfunction.function' is not a Function"),
        ("functions.echo.function:Echo", "the class is named 'echo', so it must be registered as that"),
    ],
    ids=["missing-module", "missing-class", "not-a-function", "name-mismatch"],
)
def test_bad_targets_fail_on_lookup_in_one_line(target: str, message: str) -> None:
    registration = Registration("tiny", target, ENV_VAR)
    with pytest.raises(RegistrationError) as caught:
        registration.create()
    text = str(caught.value)
    assert text.startswith(f"{ENV_VAR}: tiny={target}: ") and message in text
    assert "\n" not in text


def test_built_ins_need_no_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert {"embedder", "classifier", "echo"} <= set(catalog.FUNCTIONS)
    assert "tiny" not in catalog.FUNCTIONS
    assert catalog.create("echo").name == "echo"
    assert catalog.package("echo") == "functions.echo"
    assert catalog.package_dir("echo") == REPO / "functions" / "echo"
    with pytest.raises(ValueError, match=r"unknown function 'tiny'; known: .*echo"):
        catalog.create("tiny")


def test_the_variable_registers_a_function_read_at_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, TINY)
    assert "tiny" in catalog.FUNCTIONS and "tiny" in sorted(catalog.FUNCTIONS)
    function = catalog.create("tiny")
    assert isinstance(function, Tiny) and function is not catalog.create("tiny")
    assert catalog.package("tiny") == "tests.support.tinyfunction"
    assert catalog.package_dir("tiny") == REPO / "tests" / "support" / "tinyfunction"
    monkeypatch.delenv(ENV_VAR)
    assert "tiny" not in catalog.FUNCTIONS


def test_a_function_in_a_plain_module_is_found_by_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "tiny=tests.support.tinyfunction.function:Tiny")
    assert catalog.package("tiny") == "tests.support.tinyfunction"


def test_a_bad_variable_fails_every_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "tiny")
    with pytest.raises(RegistrationError, match=f"^{ENV_VAR}: 'tiny' is not NAME=module:Class$"):
        catalog.create("echo")


def _install_entry_point(root: Path, name: str, value: str) -> None:
    """A distribution's metadata on sys.path, as ``pip install`` of a package declaring the entry point leaves."""
    info = root / "tinyfunctions-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyfunctions\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{catalog.ENTRY_POINT_GROUP}]\n{name} = {value}\n")


def test_an_entry_point_registers_a_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    _install_entry_point(tmp_path, "tiny", "tests.support.tinyfunction:Tiny")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    found = catalog.registrations()
    assert found["tiny"].source == f"entry point {catalog.ENTRY_POINT_GROUP} of tinyfunctions"
    assert isinstance(catalog.create("tiny"), Tiny)


def test_the_variable_cannot_register_a_name_an_entry_point_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_entry_point(tmp_path, "tiny", "tests.support.tinyfunction:Tiny")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    with pytest.raises(
        RegistrationError, match=r"'tiny' is registered twice \(entry point .* and WAKESERVE_FUNCTIONS\)"
    ):
        catalog.registrations({ENV_VAR: TINY})


def test_a_bad_entry_point_names_its_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_entry_point(tmp_path, "Tiny", "tests.support.tinyfunction:Tiny")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    with pytest.raises(RegistrationError, match=r"^entry point wakeserve\.functions of tinyfunctions: 'Tiny' is not"):
        catalog.registrations({})
