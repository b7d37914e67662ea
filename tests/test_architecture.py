"""Layering and safety rules, checked on the source with ``ast`` (nothing is imported).

- core/ never imports streamlit or pages; models/ never imports streamlit, sqlalchemy or core.
- ``st.cache_*`` lives only in pages/_shared/ (one place decides what is cached).
- Nothing unpickles: no pickle/joblib/dill loads, no ``torch.load``, no ``pandas.read_pickle``,
  no ``numpy.load(..., allow_pickle=True)``. Model files are safetensors and JSON.

Imports inside functions count too (the whole tree is walked), and aliases are resolved
(``import pickle as p; p.loads(...)`` is caught).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.settings import REPO_ROOT

CHECKED_DIRS = ("core", "models", "pages")
FORBIDDEN_IMPORTS = {
    "core": ("streamlit", "pages"),
    "models": ("streamlit", "sqlalchemy", "core"),
}
UNPICKLING_CALLS = frozenset(
    {
        "pickle.load",
        "pickle.loads",
        "pickle.Unpickler",
        "_pickle.load",
        "_pickle.loads",
        "cloudpickle.load",
        "cloudpickle.loads",
        "dill.load",
        "dill.loads",
        "joblib.load",
        "torch.load",
        "pandas.read_pickle",
    }
)
CACHE_HOME = ("pages", "_shared")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _source_files() -> list[Path]:
    files = [REPO_ROOT / "app.py"]
    for folder in CHECKED_DIRS:
        files += sorted((REPO_ROOT / folder).rglob("*.py"))
    return files


def _relative(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import; relative imports stay in their package."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted origin, e.g. {"np": "numpy", "load": "pickle.load"}."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                names[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The dotted name an expression refers to, with the import alias at its root resolved."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _is_true(node: ast.AST) -> bool:
    return not (isinstance(node, ast.Constant) and node.value in (False, None, 0))


def unpickling_calls(tree: ast.AST) -> list[tuple[int, str]]:
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        if name in UNPICKLING_CALLS:
            found.append((node.lineno, f"calls {name}"))
        elif name == "numpy.load" and any(
            k.arg == "allow_pickle" and _is_true(k.value) for k in node.keywords
        ):
            found.append((node.lineno, "calls numpy.load with allow_pickle"))
    return found


def streamlit_cache_uses(tree: ast.AST) -> list[tuple[int, str]]:
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "streamlit":
            found += [
                (node.lineno, f"imports streamlit.{alias.name}")
                for alias in node.names
                if alias.name.startswith("cache")
            ]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("cache"):
            name = _dotted(node, aliases)
            if name and name.startswith("streamlit."):
                found.append((node.lineno, f"uses {name}"))
    return found


def _parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _breaches_layering(path: Path, tree: ast.AST) -> list[Finding]:
    layer = _relative(path).split("/")[0]
    banned = FORBIDDEN_IMPORTS.get(layer, ())
    return [
        Finding(_relative(path), line, f"{layer}/ imports {module}")
        for line, module in _imported_modules(tree)
        if module.split(".")[0] in banned
    ]


def test_the_checked_tree_is_not_empty() -> None:
    files = {_relative(p) for p in _source_files()}
    assert {"app.py", "core/training.py", "models/tabular.py"} <= files
    assert any(f.startswith("pages/") for f in files)


def test_imports_go_one_way() -> None:
    findings = [f for p in _source_files() for f in _breaches_layering(p, _parse(p))]
    assert not findings, "\n".join(map(str, findings))


def test_streamlit_caching_lives_in_pages_shared() -> None:
    findings = []
    for path in _source_files():
        if path.relative_to(REPO_ROOT).parts[:2] == CACHE_HOME:
            continue
        findings += [
            Finding(_relative(path), ln, w) for ln, w in streamlit_cache_uses(_parse(path))
        ]
    assert not findings, "\n".join(map(str, findings))


def test_nothing_unpickles() -> None:
    findings = [
        Finding(_relative(p), line, what)
        for p in _source_files()
        for line, what in unpickling_calls(_parse(p))
    ]
    assert not findings, "\n".join(map(str, findings))


# ---- the checks themselves catch what they claim to ---------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "import pickle\npickle.load(f)",
        "import pickle as p\np.loads(b'')",
        "from pickle import loads\nloads(b'')",
        "from joblib import load as jl\njl('m')",
        "import torch\ntorch.load('w.pt', weights_only=True)",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
        "import pandas as pd\npd.read_pickle('f')",
        "def f():\n    import dill\n    return dill.loads(b'')",
    ],
)
def test_unpickling_detector_catches(source: str) -> None:
    assert unpickling_calls(ast.parse(source))


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nnp.load('a.npy')",
        "import numpy as np\nnp.load('a.npy', allow_pickle=False)",
        "import json\njson.loads('{}')",
        "from safetensors.torch import load\nload(b'')",
    ],
)
def test_unpickling_detector_allows(source: str) -> None:
    assert unpickling_calls(ast.parse(source)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import streamlit as st\n@st.cache_data\ndef f(): pass",
        "import streamlit\nstreamlit.cache_resource(f)",
        "from streamlit import cache_data",
    ],
)
def test_cache_detector_catches(source: str) -> None:
    assert streamlit_cache_uses(ast.parse(source))


def test_layering_detector_catches_lazy_imports() -> None:
    tree = ast.parse("def f():\n    import sqlalchemy.orm\n    from core.db import get_engine\n")
    findings = _breaches_layering(REPO_ROOT / "models" / "example.py", tree)
    assert [f.what for f in findings] == [
        "models/ imports sqlalchemy.orm",
        "models/ imports core.db",
    ]


# ---- one home per model kind; no import cycles ----------------------------------------------

KIND_NAMES = (
    "ft-transformer",
    "lightgbm",
    "logreg",
    "text-transformer",
    "tfidf-logreg",
    "ensemble",
)
MAX_FILES_PER_KIND_NAME = 2  # its own module in core/kinds/ (and at most one other)


def kind_name_files(files: list[Path], root: Path = REPO_ROOT) -> dict[str, list[str]]:
    """Per kind name, the files that hold it as a quoted literal (code, docstrings or
    comments alike: the text is scanned, as grep -E "[\"']name[\"']" would)."""
    found: dict[str, list[str]] = {name: [] for name in KIND_NAMES}
    for path in files:
        text = path.read_text()
        for name in KIND_NAMES:
            if f'"{name}"' in text or f"'{name}'" in text:
                found[name].append(path.relative_to(root).as_posix())
    return found


def test_each_kind_name_lives_in_at_most_two_files() -> None:
    found = kind_name_files(_source_files())
    spread = {n: f for n, f in found.items() if len(f) > MAX_FILES_PER_KIND_NAME}
    assert not spread, f"kind names spread beyond their module: {spread}"
    for name, files in found.items():
        own = f"core/kinds/{name.replace('-', '_')}.py"
        assert own in files, f"{name!r} is not declared in {own}"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(files: list[Path], root: Path = REPO_ROOT) -> dict[str, set[str]]:
    """Module -> the checked modules it imports, anywhere in the file (inside functions and
    under ``if TYPE_CHECKING:`` too). ``from a import b`` depends on ``a`` and, when ``a.b``
    is a module, on it as well (the rule of /work/shared/hooks/import_cycles.py)."""
    modules = {_module_name(p, root): p for p in files}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(_parse(path)):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    keep = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*keep, base]) if base else ".".join(keep)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    graph[module].add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def test_no_import_cycles() -> None:
    cycles = import_cycles(import_graph(_source_files()))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_cycle_detector_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg import b\n")  # function level
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from . import a\n"
    )
    (package / "c.py").write_text("from pkg.a import f\n")  # depends on a, no cycle
    graph = import_graph(sorted(package.glob("*.py")), root=tmp_path)
    assert graph["pkg.c"] == {"pkg.a"}
    assert import_cycles(graph) == [["pkg.a", "pkg.b"]]


def test_kind_name_scan_catches_a_stray_literal(tmp_path: Path) -> None:
    (tmp_path / "page.py").write_text("if run.model == 'lightgbm':\n    pass  # not logreg\n")
    found = kind_name_files([tmp_path / "page.py"], root=tmp_path)
    assert found["lightgbm"] == ["page.py"] and found["logreg"] == []


def _environment_writes_at_import(tree: ast.AST) -> list[int]:
    """Lines of module-level statements (outside functions and classes) that change
    os.environ: assignment to os.environ[...], or os.environ.setdefault / update / pop."""
    lines = []
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for sub in ast.walk(node):
            target = None
            if isinstance(sub, ast.Assign | ast.AugAssign):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                target = next((t for t in targets if isinstance(t, ast.Subscript)), None)
                target = target.value if target is not None else None
            elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute):
                if sub.func.attr in ("setdefault", "update", "pop", "putenv"):
                    target = sub.func.value
            if target is not None and ast.unparse(target) in ("os.environ", "os"):
                lines.append(sub.lineno)
    return lines


def test_no_module_changes_the_environment_at_import() -> None:
    """Importing app code must not change os.environ (tests/conftest.py may: it is setup)."""
    found = [
        f"{_relative(path)}:{line}"
        for path in _source_files()
        for line in _environment_writes_at_import(_parse(path))
    ]
    assert found == []


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("import os\nos.environ.setdefault('A', '1')", True),
        ("import os\nos.environ['A'] = '1'", True),
        ("import os\nif True:\n    os.environ.update(A='1')", True),
        ("import os\ndef f():\n    os.environ.setdefault('A', '1')", False),
        ("import os\nX = os.environ.get('A')", False),
    ],
)
def test_environment_write_detector(source: str, caught: bool) -> None:
    assert bool(_environment_writes_at_import(ast.parse(source))) is caught
