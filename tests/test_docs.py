"""docs/architecture.md names only modules, objects and files that exist."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "docs" / "architecture.md"
TEXT = ARCH.read_text(encoding="utf-8")

#: Every dotted ``calab...`` name in backticks, e.g. `calab.solve.solve_block`.
PY_NAMES = sorted(set(re.findall(r"`(calab(?:\.[A-Za-z_]\w*)+)", TEXT)))
#: Rust files and functions named as `batch.rs` or `batch.rs::solve_batch`.
RS_NAMES = sorted(set(re.findall(r"`(\w+)\.rs(?:::(\w+))?`", TEXT)))
#: Repository paths named in backticks, e.g. `js/src/ui.ts`.
PATHS = sorted(set(re.findall(r"`((?:js|rust|src|tests|docs)/[\w./-]+)`", TEXT)))


def resolve(dotted: str) -> Any:
    """Import the longest module prefix of ``dotted``, then get the rest as attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            obj: Any = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not exc.name.startswith("calab"):
                pytest.skip(f"{dotted} needs the optional dependency {exc.name}")
            if exc.name is None or not name.startswith(exc.name):
                raise  # a module that exists failed to import something else
            continue  # not a module: an attribute of a shorter prefix
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)  # pragma: no cover - "calab" itself always imports


def test_the_doc_names_enough_to_check() -> None:
    assert len(PY_NAMES) >= 40
    assert len(RS_NAMES) >= 8
    assert "calab.solve.solve_block" in PY_NAMES


@pytest.mark.parametrize("dotted", PY_NAMES)
def test_every_calab_name_exists(dotted: str) -> None:
    resolve(dotted)


@pytest.mark.parametrize(("stem", "func"), RS_NAMES)
def test_every_rust_file_and_function_exists(stem: str, func: str) -> None:
    src = ROOT / "rust" / "src" / f"{stem}.rs"
    assert src.is_file(), f"docs/architecture.md names {stem}.rs, which rust/src does not have"
    if func:
        assert re.search(rf"\bfn {func}\b", src.read_text(encoding="utf-8")), (
            f"{stem}.rs has no function {func}"
        )


@pytest.mark.parametrize("path", PATHS)
def test_every_path_exists(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"


def test_the_module_map_names_every_module() -> None:
    src = ROOT / "src"
    modules = {
        ".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        for p in (src / "calab").rglob("*.py")
    }
    missing = sorted(m for m in modules if f"`{m}`" not in TEXT)
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_readme_links_the_architecture() -> None:
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")
