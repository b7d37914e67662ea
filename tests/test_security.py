"""Security properties Payoff promises: no pickle anywhere, verified model files, formula-safe
exports, upload names that never become paths, and XSRF protection left on."""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import tomllib
from pathlib import Path

import pytest

from core.settings import REPO_ROOT, load_settings
from tests.fixtures import FEATURES, csv_bytes, make_tabular_frame

SCANNED = ("core", "models", "pages", "app.py")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# ---- no pickle -----------------------------------------------------------------------------

# Modules whose only purpose is (un)pickling arbitrary objects.
PICKLING_MODULES = {"pickle", "_pickle", "cPickle", "joblib", "dill", "cloudpickle", "shelve"}
# Calls that unpickle (or write pickles that must later be unpickled), by resolved dotted name.
PICKLING_CALLS = {
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "joblib.load",
    "torch.load",
    "pandas.read_pickle",
    "numpy.load",  # only with allow_pickle (see _pickle_risks)
}
PICKLING_METHODS = {"to_pickle", "read_pickle"}
# shap's Explainer.save / .load and masker save/load pickle the model.
SHAP_OBJECT_HINTS = ("explainer", "masker")


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted origin, from every import in the module."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _canonical(name: str, aliases: dict[str, str]) -> str:
    head, _, rest = name.partition(".")
    resolved = aliases.get(head, head)
    resolved = {"np": "numpy", "pd": "pandas"}.get(resolved, resolved)
    return f"{resolved}.{rest}" if rest else resolved


def _allows_pickle(call: ast.Call) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "allow_pickle":
            return not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False)
    return False


def _pickle_risks(source: str, filename: str = "<source>") -> list[str]:
    """Every pickling import or call in ``source``, as 'file:line what'."""
    tree = ast.parse(source, filename)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            )
            for module in modules:
                if module and module.split(".")[0] in PICKLING_MODULES:
                    found.append(f"{filename}:{node.lineno} imports {module}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        full = _canonical(name, aliases)
        last = name.rsplit(".", 1)[-1]
        if full == "numpy.load":
            if _allows_pickle(node):
                found.append(f"{filename}:{node.lineno} numpy.load(allow_pickle=...)")
        elif full in PICKLING_CALLS:
            found.append(f"{filename}:{node.lineno} {full}")
        elif last in PICKLING_METHODS:
            found.append(f"{filename}:{node.lineno} .{last}()")
        elif last in ("save", "load") and (
            full.startswith("shap.") or any(h in name.lower() for h in SHAP_OBJECT_HINTS)
        ):
            found.append(f"{filename}:{node.lineno} shap {name}()")
    return found


def _python_files() -> list[Path]:
    files = []
    for entry in SCANNED:
        path = REPO_ROOT / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def test_no_pickle_in_the_application() -> None:
    files = _python_files()
    assert len(files) > 20, files  # the walk found the code
    risks = [
        risk
        for path in files
        for risk in _pickle_risks(path.read_text(), str(path.relative_to(REPO_ROOT)))
    ]
    assert not risks, risks


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle\npickle.loads(b'')",
        "from pickle import load as l\nl(f)",
        "import joblib\njoblib.load('m.joblib')",
        "import torch\ntorch.load('w.pt')",
        "from torch import load\nload('w.pt')",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
        "import numpy\nnumpy.load('a.npy', allow_pickle=flag)",
        "import pandas as pd\npd.read_pickle('f.pkl')",
        "frame.to_pickle('f.pkl')",
        "import shap\nshap.Explainer.load(f)",
        "explainer.save(handle)",
        "import cloudpickle",
    ],
)
def test_the_pickle_scan_catches(snippet: str) -> None:
    assert _pickle_risks(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "import numpy as np\nnp.load('a.npy')",
        "import numpy as np\nnp.load('a.npy', allow_pickle=False)",
        "from safetensors.torch import load\nload(data)",
        "import json\njson.load(handle)",
        "model.save(folder)",
    ],
)
def test_the_pickle_scan_allows(snippet: str) -> None:
    assert _pickle_risks(snippet) == []


# ---- verified model files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """A tiny FT-Transformer, LightGBM and logistic regression on the generated data."""
    home = tmp_path_factory.mktemp("security_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAYOFF_HOME", str(home))
        from core.datasets import register_dataset
        from core.db import dispose_all
        from core.startup import start
        from core.training import create_run, execute_run

        start()
        info = register_dataset(csv_bytes(make_tabular_frame(160)), "train.csv")
        runs = {}
        for model in ("ft-transformer", "lightgbm", "logreg"):
            run = execute_run(
                create_run(
                    info.id,
                    model,
                    size="tiny" if model == "ft-transformer" else None,
                    time_budget_s=3,
                )
            )
            assert run.status == "succeeded", run.error
            runs[model] = run.id
        dispose_all()
    return home, runs


@pytest.fixture
def trained_home(trained_runs, monkeypatch) -> dict[str, int]:
    home, runs = trained_runs
    monkeypatch.setenv("PAYOFF_HOME", str(home))
    return runs


def _flip_last_byte(path: Path) -> bytes:
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 0x01]))
    return original


@pytest.mark.parametrize(
    ("model", "file"),
    [
        ("ft-transformer", "weights.safetensors"),
        ("ft-transformer", "preprocessing.json"),
        ("lightgbm", "lightgbm.txt"),
        ("logreg", "linear.json"),
    ],
)
def test_a_tampered_model_file_is_refused(model: str, file: str, trained_home) -> None:
    from core.runs import get_run
    from core.training import load_run_model

    run_id = trained_home[model]
    target = get_run(run_id).artifact_path / file
    assert target.is_file(), sorted(p.name for p in target.parent.iterdir())
    load_run_model(run_id)  # untouched: loads
    original = _flip_last_byte(target)
    try:
        with pytest.raises(ValueError, match=rf"{file} does not match its recorded sha256"):
            load_run_model(run_id)
    finally:
        target.write_bytes(original)
    load_run_model(run_id)  # restored: loads again


def test_a_missing_model_file_is_refused(trained_home) -> None:
    from core.runs import get_run
    from core.training import load_run_model

    run_id = trained_home["ft-transformer"]
    weights = get_run(run_id).artifact_path / "weights.safetensors"
    moved = weights.with_name("moved-away")
    weights.rename(moved)
    try:
        with pytest.raises(ValueError, match="weights.safetensors is missing"):
            load_run_model(run_id)
    finally:
        moved.rename(weights)


# ---- formula-safe exports ------------------------------------------------------------------

RISKY_VALUES = (
    '=HYPERLINK("http://evil.example","click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
)


def _quoted_csv(frame) -> bytes:
    """The frame as CSV written by Python's csv module, which quotes any line break in a cell
    (pandas' writer leaves a bare carriage return unquoted)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(frame.columns)
    writer.writerows(frame.astype(str).itertuples(index=False))
    return buffer.getvalue().encode()


def _export_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _risky(rows: list[list[str]]) -> list[tuple[int, int, str]]:
    return [
        (r, c, cell)
        for r, row in enumerate(rows)
        for c, cell in enumerate(row)
        if cell.startswith(FORMULA_STARTS) and not _is_number(cell)
    ]


def test_exported_scores_neutralise_formula_cells(trained_home, tmp_path) -> None:
    from core.scoring import score_source

    frame = make_tabular_frame(40, seed=11)[list(FEATURES)]
    frame["region"] = frame["region"].astype(object)
    for i, value in enumerate(RISKY_VALUES):
        frame.loc[i, "region"] = value
    frame["note"] = ["-5", "plain", *RISKY_VALUES, *["ok"] * (len(frame) - len(RISKY_VALUES) - 2)]
    out = tmp_path / "scores.csv"
    score_source(trained_home["logreg"], _quoted_csv(frame), out_path=out, reasons_for_rows=10)
    rows = _export_rows(out)
    header, body = rows[0], rows[1:]
    assert len(body) == len(frame)
    assert not _risky(body)
    region = [row[header.index("region")] for row in body]
    assert region[0] == "'" + RISKY_VALUES[0]
    assert all(row[header.index("reasons")] for row in body[:10])
    # Plain numbers stay numbers, in numeric and text columns alike.
    assert body[0][header.index("note")] == "-5"
    assert all(_is_number(row[header.index("probability")]) for row in body)


def test_exported_scores_keep_line_breaks_inside_cells(trained_home, tmp_path) -> None:
    from core.scoring import score_source

    frame = make_tabular_frame(20, seed=14)[list(FEATURES)]
    frame["note"] = ["note\r=1+1", "\r=2+2", *["ok"] * (len(frame) - 2)]
    out = tmp_path / "scores.csv"
    score_source(trained_home["logreg"], _quoted_csv(frame), out_path=out)
    body = _export_rows(out)[1:]
    assert len(body) == len(frame)
    assert not _risky(body)


def test_exported_header_is_formula_safe(trained_home, tmp_path) -> None:
    from core.scoring import score_source

    frame = make_tabular_frame(20, seed=12)[list(FEATURES)]
    frame['=HYPERLINK("http://evil.example","x")'] = "note"
    out = tmp_path / "scores.csv"
    score_source(trained_home["logreg"], _quoted_csv(frame), out_path=out)
    header = _export_rows(out)[0]
    assert not _risky([header]), header


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---- upload names are never paths ---------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../../x.csv",
        "/etc/passwd",
        "..\\..\\windows\\x.csv",
        "a/../../../b.csv",
        "x\x00.csv",
        "~/.bashrc",
    ],
)
def test_upload_names_never_become_paths(name: str, tmp_path) -> None:
    from core.datasets import register_dataset

    settings = load_settings()
    data = csv_bytes(make_tabular_frame(40, seed=13))
    sha = hashlib.sha256(data).hexdigest()
    info = register_dataset(data, name)
    stored = info.stored_path.resolve()
    assert stored.is_relative_to(settings.datasets_dir.resolve())
    assert stored.name == f"{sha}.csv"
    assert stored.read_bytes() == data
    written = [p for p in settings.home.rglob("*") if p.is_file() and p.suffix == ".csv"]
    assert written == [info.stored_path], written
    assert not (tmp_path / "x.csv").exists()


# ---- XSRF ----------------------------------------------------------------------------------


def test_streamlit_keeps_xsrf_protection_on() -> None:
    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    server = config.get("server", {})
    assert server.get("enableXsrfProtection") is True
    # Streamlit turns XSRF protection off when CORS protection is off.
    assert server.get("enableCORS", True) is True
