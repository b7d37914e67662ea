"""Dataset registry: content-addressed files, one row each, roles checked, nothing half-written."""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import datasets as datasets_module
from core.datasets import (
    SAMPLES,
    DatasetInUseError,
    Roles,
    delete_dataset,
    ensure_samples,
    get_dataset,
    list_datasets,
    load_frame,
    register_dataset,
    set_roles,
)
from core.db import session_factory
from core.ingest import IngestError
from core.records import DatasetRecord, DatasetSplitRecord, TrainingRunRecord
from core.runs import list_runs
from core.settings import load_settings
from core.training import create_run, execute_run
from tests.fixtures import POSITIVE, TARGET, csv_bytes, make_tabular_frame

DATA = csv_bytes(make_tabular_frame(120, seed=3))
ROLES = Roles(target=TARGET, positive_class=POSITIVE, money_column="amount")

# Every test here runs on a SQLite file and on a real PostgreSQL database.
pytestmark = pytest.mark.usefixtures("ledger")


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _count(record_type: type) -> int:
    with session_factory().begin() as session:
        return session.scalar(select(func.count()).select_from(record_type))


def test_same_bytes_give_the_same_dataset() -> None:
    first = register_dataset(DATA, "loans.csv", roles=ROLES)
    again = register_dataset(DATA, "renamed copy.csv")
    assert again.id == first.id
    assert again.name == "loans.csv"
    assert len(list_datasets()) == 1
    other = register_dataset(csv_bytes(make_tabular_frame(120, seed=4)), "other.csv")
    assert other.id != first.id


def test_file_is_stored_content_addressed_under_home() -> None:
    info = register_dataset(DATA, "loans.csv", roles=ROLES)
    sha = hashlib.sha256(DATA).hexdigest()
    assert info.sha256 == sha
    assert info.stored_path == load_settings().datasets_dir / sha[:2] / f"{sha}.csv"
    assert info.stored_path.read_bytes() == DATA
    assert _files_under(load_settings().datasets_dir) == [info.stored_path]
    assert (info.n_rows, info.n_columns) == (120, 5)
    frame = load_frame(info.id)
    assert list(frame.columns) == ["age", "income", "amount", "region", TARGET]
    assert len(frame) == 120


def test_a_changed_stored_file_is_refused() -> None:
    info = register_dataset(DATA, "loans.csv", roles=ROLES)
    info.stored_path.write_bytes(DATA.replace(b"north", b"NORTH"))
    with pytest.raises(ValueError, match="changed on disk"):
        load_frame(info.id)


def test_roles_default_to_usable_columns_without_pii() -> None:
    frame = make_tabular_frame(120, seed=3)
    frame.insert(0, "contact", [f"person{i}@example.com" for i in range(len(frame))])
    frame.insert(1, "customer_id", range(1000, 1000 + len(frame)))
    info = register_dataset(csv_bytes(frame), "people.csv", roles=Roles(money_column="amount"))
    assert info.schema.column("contact").pii is not None
    assert info.roles.target == info.schema.suggested_target == TARGET
    assert "contact" not in info.roles.features
    assert "customer_id" not in info.roles.features
    assert set(info.roles.features) == {"age", "income", "region"}  # money column left out too


def test_explicit_features_are_kept_as_given() -> None:
    info = register_dataset(DATA, "loans.csv", roles=Roles(target=TARGET, features=("age",)))
    assert info.roles.features == ("age",)
    assert get_dataset(info.id).roles == info.roles


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        (Roles(target=TARGET, features=("age", "nope")), "nope"),
        (Roles(target="missing_target", features=("age",)), "missing_target"),
        (Roles(target=TARGET, features=("age", TARGET)), "cannot also be a feature"),
        (Roles(target=TARGET, features=("age",), money_column="region"), "must be numeric"),
        (Roles(target=TARGET, features=("age",), id_column="ghost"), "ghost"),
    ],
)
def test_set_roles_refuses_bad_choices(roles: Roles, message: str) -> None:
    info = register_dataset(DATA, "loans.csv", roles=ROLES)
    with pytest.raises(ValueError, match=message):
        set_roles(info.id, roles)
    assert get_dataset(info.id).roles == info.roles  # nothing changed


def test_set_roles_stores_roles_and_use_case() -> None:
    info = register_dataset(DATA, "loans.csv", roles=ROLES)
    new = Roles(target="region", features=("age", "income"), money_column="amount")
    updated = set_roles(info.id, new, use_case="fraud")
    assert updated.roles == new
    assert get_dataset(info.id).roles == new
    assert get_dataset(info.id).use_case == "fraud"
    with pytest.raises(ValueError, match="999"):
        set_roles(999, new)


@pytest.fixture
def dataset_with_runs():
    """A dataset with one trained run (artifact on disk, split stored) and one queued run."""
    info = register_dataset(DATA, "loans.csv", roles=ROLES)
    run = execute_run(create_run(info.id, "logreg"))
    create_run(info.id, "lightgbm")
    assert run.status == "succeeded" and run.artifact_path.is_dir()
    return info, run


def test_delete_refuses_while_runs_exist(dataset_with_runs) -> None:
    info, run = dataset_with_runs
    with pytest.raises(DatasetInUseError, match="2 training run"):
        delete_dataset(info.id)
    assert info.stored_path.is_file() and run.artifact_path.is_dir()
    assert len(list_runs(info.id)) == 2 and _count(DatasetSplitRecord) == 1


def test_forced_delete_removes_runs_and_files(dataset_with_runs) -> None:
    info, run = dataset_with_runs
    delete_dataset(info.id, force=True)
    assert list_datasets() == [] and list_runs() == []
    assert _count(DatasetSplitRecord) == 0  # the split goes with the dataset (ON DELETE CASCADE)
    assert not info.stored_path.exists()
    assert not run.artifact_path.exists()
    with pytest.raises(ValueError, match=str(info.id)):
        get_dataset(info.id)


def test_delete_without_runs_removes_row_and_file() -> None:
    info = register_dataset(DATA, "loans.csv", roles=ROLES)
    delete_dataset(info.id)
    assert _count(DatasetRecord) == 0
    assert _files_under(load_settings().datasets_dir) == []
    again = register_dataset(DATA, "loans.csv", roles=ROLES)  # the same bytes can come back
    assert again.stored_path.read_bytes() == DATA


@pytest.mark.parametrize(
    ("data", "roles"),
    [
        (b"", None),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, None),
        (b"a,b\n1,2\n3,4,5,6\n", None),
        (b"a,a\n1,2\n", None),
        (DATA, Roles(target="no_such_column")),
    ],
    ids=["empty", "png", "ragged", "duplicate-header", "bad-target"],
)
def test_failing_ingest_writes_nothing(data: bytes, roles: Roles | None) -> None:
    with pytest.raises(IngestError):
        register_dataset(data, "bad.csv", roles=roles)
    assert _count(DatasetRecord) == 0
    assert _files_under(load_settings().datasets_dir) == []


def test_failing_insert_removes_the_new_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is written before the row; if the row cannot be written the file goes too."""

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(datasets_module, "_to_info", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        register_dataset(DATA, "loans.csv", roles=ROLES)
    monkeypatch.undo()
    assert _count(DatasetRecord) == 0
    assert _files_under(load_settings().datasets_dir) == []


def test_ensure_samples_registers_both_samples_once() -> None:
    first = ensure_samples()
    second = ensure_samples()
    assert [d.id for d in first] == [d.id for d in second]
    listed = list_datasets()
    assert len(listed) == len(SAMPLES) == 2
    for info, spec in zip(listed, SAMPLES, strict=True):
        assert info.is_sample and info.name == spec.name and info.use_case == spec.use_case
        assert info.roles.target == spec.roles.target
        assert info.roles.positive_class == spec.roles.positive_class
        assert info.roles.target not in info.roles.features
    credit = listed[0]
    assert credit.n_rows == 4454 and credit.roles.money_column == "Amount"
    assert "Amount" not in credit.roles.features


def test_uploaded_names_never_become_paths(tmp_path: Path) -> None:
    name = "../../etc/passwd.csv"
    info = register_dataset(DATA, name, roles=ROLES)
    assert info.name == name  # kept, but only as a display name
    datasets_dir = load_settings().datasets_dir
    assert info.stored_path.parent.parent == datasets_dir
    assert info.stored_path.name == f"{info.sha256}.csv"
    assert ".." not in info.stored_path.parts
    assert not (tmp_path / "etc").exists() and not (tmp_path.parent / "etc").exists()
    with session_factory().begin() as session:
        record = session.get(DatasetRecord, info.id)
        assert "passwd" not in record.stored_path
        assert record.roles_json["target"] == TARGET


def test_display_names_are_single_line_and_bounded() -> None:
    info = register_dataset(DATA, "a\nb\t" + "x" * 500, roles=ROLES)
    assert "\n" not in info.name and "\t" not in info.name
    assert len(info.name) == 200
    assert _count(TrainingRunRecord) == 0


def test_concurrent_uploads_of_the_same_bytes_give_one_dataset(monkeypatch) -> None:
    """Upload B passes the 'already registered?' check while upload A is still parsing."""
    real_read = datasets_module.read_csv_bytes
    a_parsing, b_checked, a_done = threading.Event(), threading.Event(), threading.Event()

    def read_in_step(*args, **kwargs):
        if not a_parsing.is_set():  # upload A: wait until B has looked for the same sha
            a_parsing.set()
            b_checked.wait(30)
        else:  # upload B: let A finish registering first
            b_checked.set()
            a_done.wait(30)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(datasets_module, "read_csv_bytes", read_in_step)
    first: list = []

    def upload_a() -> None:
        try:
            first.append(register_dataset(DATA, "tab one.csv", roles=ROLES))
        finally:
            a_done.set()

    thread = threading.Thread(target=upload_a)
    thread.start()
    assert a_parsing.wait(30)
    try:
        second = register_dataset(DATA, "tab two.csv", roles=ROLES)
    finally:
        b_checked.set()
        thread.join(60)
    assert first and second.id == first[0].id
    assert len(list_datasets()) == 1
    assert len(load_frame(second.id)) == 120


# ---- a target a model can learn from ----------------------------------------------------------


def _with_target(values: list) -> bytes:
    frame = make_tabular_frame(120, seed=3)
    frame[TARGET] = (values * len(frame))[: len(frame)]
    return csv_bytes(frame)


@pytest.mark.parametrize(
    ("values", "message"),
    [(["good"], "has only one class ('good'"), ([""], "has no values (every row is missing)")],
    ids=["one-class", "all-missing"],
)
def test_an_unlearnable_target_is_refused_at_save_naming_it(values: list, message: str) -> None:
    data = _with_target(values)
    with pytest.raises(IngestError, match=rf"target column '{TARGET}' {re.escape(message)}"):
        register_dataset(data, "flat.csv", roles=Roles(target=TARGET))
    assert _count(DatasetRecord) == 0
    assert _files_under(load_settings().datasets_dir) == []
    # Known bytes with another usable target: choosing the flat column is refused as well.
    info = register_dataset(data, "flat.csv", roles=Roles(target="region"))
    with pytest.raises(IngestError, match=TARGET):
        register_dataset(data, "flat.csv", roles=Roles(target=TARGET))
    with pytest.raises(ValueError, match=re.escape(message)):
        set_roles(info.id, Roles(target=TARGET, features=("age",)))
    assert get_dataset(info.id).roles.target == "region"  # nothing changed
    # Training a run on it is refused before anything is queued.
    with pytest.raises(ValueError, match=TARGET):
        create_run(info.id, "logreg", target=TARGET)
    assert list_runs(info.id) == []


def test_a_flat_target_like_column_is_named_not_replaced() -> None:
    """The file's 'outcome' column has one class: nothing else is suggested in its place."""
    info = register_dataset(_with_target(["good"]), "flat.csv", roles=Roles(target="region"))
    assert info.schema.suggested_target is None
    assert f"'{TARGET}' looks like the target but has one class only" in (
        info.schema.suggested_target_reason
    )


def test_a_page_save_without_a_target_keeps_none() -> None:
    """The Data page saves the analyst's roles as chosen: no target means no target, never
    the suggested column put in behind their back."""
    roles = Roles(target=None, features=("age", "income", TARGET))
    info = register_dataset(DATA, "loans.csv", roles=roles, suggest_target=False)
    assert info.roles.target is None and TARGET in info.roles.features
