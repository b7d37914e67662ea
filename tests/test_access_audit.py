"""Security of the ledger: roles enforced in core, an audit event for every write and download,
and erasure that leaves none of a dataset's bytes under PAYOFF_HOME.

Everything runs for real: a SQLite file, trained models, the CLI's ``main`` (the sign-in itself
is driven through a real OIDC provider in tests/e2e/test_sign_in.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from core import audit
from core.access import AccessDenied, Actor
from core.cli import main
from core.datasets import Roles, delete_dataset, list_datasets, register_dataset, set_roles
from core.db import session_factory
from core.explanations import explain_frame
from core.jobs import request_cancel
from core.records import AuditEventRecord, DatasetRecord, ScenarioRecord, TrainingRunRecord
from core.runs import delete_run
from core.scenarios import delete_scenario, save_scenario
from core.scoring import score_source
from core.settings import load_settings
from core.training import create_run, execute_run
from tests.fixtures import FEATURES, TARGET, csv_bytes, make_tabular_frame

ADMIN = Actor("ada@corp.example", "admin", "ada@corp.example")
ANALYST = Actor("ann@corp.example", "analyst", "ann@corp.example")
VIEWER = Actor("vic@partner.test", "viewer", "vic@partner.test")
MARKER = "QZX-ERASE-ME-7731"
ROLES = Roles(target=TARGET, positive_class="bad", features=FEATURES)


def _events(**where) -> list[AuditEventRecord]:
    with session_factory().begin() as session:
        query = select(AuditEventRecord).order_by(AuditEventRecord.id)
        for key, value in where.items():
            query = query.where(getattr(AuditEventRecord, key) == value)
        rows = session.scalars(query).all()
        session.expunge_all()
        return list(rows)


def _count(table) -> int:
    with session_factory().begin() as session:
        return session.scalar(select(func.count()).select_from(table))


def _one(action: str, object_type: str, object_id, user: str, outcome: str = "ok") -> None:
    found = _events(action=action, object_type=object_type, object_id=str(object_id))
    assert [(e.user, e.outcome) for e in found] == [(user, outcome)], (action, found)
    assert found[0].time is not None


def _marked_frame(n_rows: int = 160) -> pd.DataFrame:
    frame = make_tabular_frame(n_rows, seed=7)
    frame.loc[frame.index % 3 == 0, "region"] = MARKER  # a category: models keep it too
    return frame


def _run_cli(argv: list[str], capsys) -> tuple[int, dict | None, str]:
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else None), captured.err


# ---- every write path leaves one event, in the same transaction -----------------------------


def test_every_write_and_download_is_audited(tmp_path) -> None:
    data = csv_bytes(make_tabular_frame(150, seed=1))
    info = register_dataset(data, "loans.csv", roles=ROLES, actor=ANALYST)
    _one("upload", "dataset", info.id, ANALYST.name)
    set_roles(info.id, ROLES, "credit_scoring", actor=ANALYST)
    _one("edit", "dataset", info.id, ANALYST.name)

    run_id = create_run(info.id, "logreg", actor=ANALYST)
    _one("train", "run", run_id, ANALYST.name)
    run = execute_run(run_id)
    assert run.status == "succeeded"
    queued = create_run(info.id, "lightgbm", actor=ANALYST)
    request_cancel(queued, actor=ANALYST)
    cancels = [e for e in _events(action="train", object_id=str(queued)) if e.detail == "cancel"]
    assert len(cancels) == 1

    out = load_settings().exports_dir / f"score-run{run_id}-test.csv"
    report = score_source(run_id, data, out_path=out, actor=ANALYST)
    _one("score", "score_batch", report.batch_id, ANALYST.name)
    explanation = explain_frame(
        run_id, make_tabular_frame(20, seed=2), n_rows=3, fidelity_rows=0, actor=ANALYST
    )
    _one("explain", "explanation", explanation.explanation_id, ANALYST.name)
    audit.record_download(ANALYST, "score_batch", report.batch_id, "CSV")
    _one("export", "score_batch", report.batch_id, ANALYST.name)

    scenario = save_scenario("base", run_id, "credit_scoring", {}, {}, actor=ANALYST)
    _one("scenario_save", "scenario", scenario, ANALYST.name)
    delete_scenario(scenario, actor=ADMIN)
    _one("delete", "scenario", scenario, ADMIN.name)
    execute_run(queued)  # cancelled before it started
    delete_run(queued, actor=ADMIN)
    _one("delete", "run", queued, ADMIN.name)

    audit.sign_in(Actor("ann@corp.example", "analyst"))
    audit.sign_in(Actor("ann@corp.example", "admin"))  # promoted in secrets since last time
    change = _events(action="role_change")
    assert [(e.user, e.detail) for e in change] == [("ann@corp.example", "analyst -> admin")]

    deleted = delete_dataset(info.id, cascade=True, actor=ADMIN)
    _one("delete", "dataset", info.id, ADMIN.name)
    assert deleted["runs"] == [run_id] and deleted["pages_overwritten"] is True
    every = _events()
    assert {e.action for e in every} >= {
        "upload", "edit", "train", "score", "explain", "export", "scenario_save", "delete",
        "sign_in", "role_change",
    }  # fmt: skip
    assert all(e.outcome == "ok" and e.user and e.time for e in every)


def test_the_event_commits_or_rolls_back_with_its_change(monkeypatch) -> None:
    info = register_dataset(csv_bytes(make_tabular_frame(60)), "d.csv", roles=ROLES)

    def broken(session, *args, **kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError):
        create_run(info.id, "logreg", actor=ANALYST)
    assert _count(TrainingRunRecord) == 0  # no change without its event
    with pytest.raises(RuntimeError):
        save_scenario("s", None, "credit_scoring", {}, {}, actor=ANALYST)
    assert _count(ScenarioRecord) == 0


def test_failed_writes_are_recorded_without_their_data() -> None:
    secret_cell = "sensitive-cell-value"
    with pytest.raises(ValueError):
        register_dataset(f"a,a\n{secret_cell},2\n".encode(), "bad.csv", actor=ANALYST)
    failed = _events(outcome="failed")
    assert [(e.action, e.user) for e in failed] == [("upload", ANALYST.name)]
    assert secret_cell not in (failed[0].detail or "")
    assert _count(DatasetRecord) == 0


# ---- role refusal in core --------------------------------------------------------------------


def test_a_viewer_calling_a_write_is_refused_in_core_and_recorded() -> None:
    info = register_dataset(csv_bytes(make_tabular_frame(120)), "d.csv", roles=ROLES)
    run_id = create_run(info.id, "logreg")
    execute_run(run_id)
    data = csv_bytes(make_tabular_frame(30, seed=4))
    attempts = {
        "upload": lambda: register_dataset(data, "x.csv", actor=VIEWER),
        "edit": lambda: set_roles(info.id, ROLES, actor=VIEWER),
        "train": lambda: create_run(info.id, "logreg", actor=VIEWER),
        "score": lambda: score_source(run_id, data, actor=VIEWER),
        "explain": lambda: explain_frame(run_id, make_tabular_frame(20), actor=VIEWER),
        "export": lambda: audit.record_download(VIEWER, "score_batch", 1, "CSV"),
        "scenario_save": lambda: save_scenario("s", run_id, "credit_scoring", {}, {}, actor=VIEWER),
        "delete": lambda: delete_dataset(info.id, cascade=True, actor=VIEWER),
        "audit": lambda: audit.list_events(actor=VIEWER),
    }
    for action, attempt in attempts.items():
        with pytest.raises(AccessDenied, match=rf"vic@partner.test is a viewer; '{action}' needs"):
            attempt()
    refused = _events(outcome="refused")
    assert sorted(e.action for e in refused) == sorted(attempts)
    assert all(e.user == VIEWER.name and e.role == "viewer" for e in refused)
    # Nothing was written: one dataset, one run, no scores or scenarios.
    assert [d.id for d in list_datasets()] == [info.id]
    assert _count(TrainingRunRecord) == 1 and _count(ScenarioRecord) == 0
    with pytest.raises(AccessDenied, match="'delete' needs the admin role"):
        delete_dataset(info.id, cascade=True, actor=ANALYST)
    assert _count(DatasetRecord) == 1


def test_the_cli_acts_as_payoff_user(monkeypatch, capsys, tmp_path) -> None:
    csv = tmp_path / "loans.csv"
    csv.write_bytes(csv_bytes(make_tabular_frame(80)))
    monkeypatch.setenv("PAYOFF_ADMINS", "ada@corp.example")
    monkeypatch.setenv("PAYOFF_VIEWERS", "vic@partner.test")
    monkeypatch.setenv("PAYOFF_USER", "vic@partner.test")
    code, payload, err = _run_cli(["datasets", "add", str(csv)], capsys)
    assert code == 1 and payload is None
    assert err.count("\n") == 1 and "vic@partner.test is a viewer; 'upload' needs" in err
    monkeypatch.setenv("PAYOFF_USER", "ada@corp.example")
    code, payload, err = _run_cli(["datasets", "add", str(csv)], capsys)
    assert code == 0, err
    code, payload, err = _run_cli(["audit", "list", "--user", "vic@partner.test"], capsys)
    assert code == 0, err
    assert [(e["action"], e["outcome"]) for e in payload["events"]] == [("upload", "refused")]
    assert set(payload["events"][0]) >= {
        "time", "user", "action", "object_type", "object_id", "outcome",
    }  # fmt: skip
    code, payload, _ = _run_cli(["audit", "list", "--since", "2999-01-01"], capsys)
    assert code == 0 and payload == {"events": []}
    code, _, err = _run_cli(["audit", "list", "--since", "yesterday"], capsys)
    assert code == 1 and "--since" in err
    monkeypatch.delenv("PAYOFF_USER")
    monkeypatch.delenv("PAYOFF_ADMINS")
    monkeypatch.delenv("PAYOFF_VIEWERS")  # local use: the OS user is admin
    code, payload, err = _run_cli(["audit", "list"], capsys)
    assert code == 0, err
    assert [e["user"] for e in payload["events"]] == ["vic@partner.test", "ada@corp.example"]


# ---- personal data ---------------------------------------------------------------------------


def test_pii_columns_stay_out_of_features_and_are_masked_in_exports() -> None:
    frame = make_tabular_frame(120, seed=3)
    frame["email"] = [f"person{i}@mail.example" for i in range(len(frame))]
    info = register_dataset(csv_bytes(frame), "people.csv", roles=ROLES, actor=ANALYST)
    assert "email" not in info.roles.features  # flagged at ingest, left out by default
    features = [*info.roles.features, "email"]
    with pytest.raises(ValueError, match="email.*personal data"):
        create_run(info.id, "logreg", features=features, actor=ANALYST)
    run_id = create_run(info.id, "logreg", actor=ANALYST)
    assert execute_run(run_id).status == "succeeded"
    opted = create_run(info.id, "logreg", features=features, allow_pii=True, actor=ANALYST)
    assert opted > run_id
    exports = load_settings().exports_dir
    score_source(run_id, csv_bytes(frame), out_path=exports / "a.csv", actor=ANALYST)
    score_source(run_id, csv_bytes(frame), out_path=exports / "b.csv", actor=ADMIN)
    analyst_view = pd.read_csv(exports / "a.csv")
    admin_view = pd.read_csv(exports / "b.csv")
    assert set(analyst_view["email"]) == {"***"}
    assert admin_view["email"].tolist() == frame["email"].tolist()
    assert "person1@mail.example" not in (exports / "a.csv").read_text()


# ---- erasure ---------------------------------------------------------------------------------


def _files_with(root: Path, needle: bytes) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    )


def test_erasure_leaves_no_byte_of_the_dataset_under_payoff_home(capsys, tmp_path) -> None:
    home = load_settings().home
    upload = tmp_path / "marked.csv"
    upload.write_bytes(csv_bytes(_marked_frame()))
    code, added, err = _run_cli(["datasets", "add", str(upload), "--target", TARGET], capsys)
    assert code == 0, err
    dataset_id = added["dataset_id"]
    train = ["train", "--csv", str(upload), "--target", TARGET, "--positive", "bad"]
    code, trained, err = _run_cli([*train, "--model", "logreg"], capsys)
    assert code == 0, err
    code, second, err = _run_cli([*train, "--model", "lightgbm"], capsys)
    assert code == 0, err
    run = str(trained["run_id"])
    stored_export = load_settings().exports_dir / f"score-run{run}-cli.csv"
    score = ["score", "--run", run, "--csv", str(upload), "--reasons", "20"]
    code, _, err = _run_cli([*score, "--out", str(stored_export)], capsys)
    assert code == 0, err
    code, _, err = _run_cli(
        ["explain", "--run", run, "--csv", str(upload), "--rows", "5", "--out",
         str(tmp_path / "shap.csv")],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    save_scenario("what-if", trained["run_id"], "credit_scoring", {"note": 1}, {}, actor=ADMIN)
    needle = MARKER.encode()
    before = _files_with(home, needle)
    # The marker really is spread around: the stored upload, the export, the models, the db.
    assert any(p.startswith("datasets/") for p in before), before
    assert any(p.startswith("artifacts/") for p in before), before
    assert any(p.startswith("exports/") for p in before), before
    assert any(p.startswith("payoff.db") for p in before), before

    code, _, err = _run_cli(["datasets", "delete", str(dataset_id)], capsys)
    assert code == 1 and "2 training run(s)" in err and "--cascade" in err
    assert _files_with(home, needle) == before  # refused: nothing touched
    code, payload, err = _run_cli(["datasets", "delete", str(dataset_id), "--cascade"], capsys)
    assert code == 0, err
    deleted = payload["deleted"]
    assert sorted(deleted["runs"]) == sorted([trained["run_id"], second["run_id"]])
    assert len(deleted["score_batches"]) == 1 and len(deleted["explanations"]) == 1
    assert len(deleted["scenarios"]) == 1 and deleted["pages_overwritten"] is True

    assert _files_with(home, needle) == []  # payoff.db, its -wal and -shm included
    code, listed, _ = _run_cli(["datasets", "list"], capsys)
    assert dataset_id not in [d["dataset_id"] for d in listed["datasets"]]
    code, events, _ = _run_cli(["audit", "list"], capsys)
    erasure = [e for e in events["events"] if e["action"] == "delete"]
    assert [(e["object_type"], e["object_id"], e["outcome"]) for e in erasure] == [
        ("dataset", str(dataset_id), "failed"),  # the refusal without --cascade
        ("dataset", str(dataset_id), "ok"),
    ]
    assert MARKER not in json.dumps(events)
    # The upload, training and scoring that came before are still on record (ids only).
    assert {"upload", "train", "score", "explain", "export"} <= {
        e["action"] for e in events["events"]
    }


def test_erasure_of_one_dataset_keeps_the_others(capsys) -> None:
    keep = register_dataset(csv_bytes(make_tabular_frame(80, seed=9)), "keep.csv", roles=ROLES)
    kept_run = create_run(keep.id, "logreg")
    execute_run(kept_run)
    gone = register_dataset(csv_bytes(_marked_frame(90)), "gone.csv", roles=ROLES)
    execute_run(create_run(gone.id, "logreg"))
    # The Score page's export names: the gone rows scored by the kept model, and kept rows.
    exports = load_settings().exports_dir
    cross = exports / f"score-run{kept_run}-{gone.sha256[:12]}.csv"
    own = exports / f"score-run{kept_run}-{keep.sha256[:12]}.csv"
    score_source(kept_run, gone.stored_path, out_path=cross)
    score_source(kept_run, keep.stored_path, out_path=own)
    delete_dataset(gone.id, cascade=True)
    assert [d.id for d in list_datasets()] == [keep.id]
    assert keep.stored_path.exists() and own.exists()
    assert not cross.exists()
    with session_factory().begin() as session:
        survivor = session.get(TrainingRunRecord, kept_run)
        assert survivor is not None and Path(survivor.artifact_path).is_dir()
    assert np.isfinite(_count(AuditEventRecord))


# ---- one action, one transaction ---------------------------------------------------------------


def test_a_job_cancelled_from_its_panel_is_checked_and_audited() -> None:
    from core.jobs import cancel_job, get_job, submit_training
    from core.runs import get_run

    info = register_dataset(csv_bytes(make_tabular_frame(60)), "d.csv", roles=ROLES)
    run_id = create_run(info.id, "logreg", actor=ANALYST)
    [job_id] = submit_training([run_id])
    with pytest.raises(AccessDenied, match="'train' needs"):
        cancel_job(job_id, actor=VIEWER)
    assert get_job(job_id).status == "queued" and get_run(run_id).status == "queued"
    assert cancel_job(job_id, actor=ANALYST).status == "cancelled"
    assert get_run(run_id).status == "cancelled"
    events = _events(object_type="job", object_id=str(job_id))
    assert [(e.user, e.action, e.outcome) for e in events] == [
        (VIEWER.name, "train", "refused"),
        (ANALYST.name, "train", "ok"),
    ]
    assert events[1].detail == "cancel"


def test_cancelling_a_run_flags_it_and_its_job_in_one_transaction(monkeypatch) -> None:
    """request_cancel writes the run's flag, its job's cancellation and the event together:
    when the job part fails, nothing of it is left (it used to commit the run first)."""
    from core import jobs
    from core.runs import get_run

    info = register_dataset(csv_bytes(make_tabular_frame(60)), "d.csv", roles=ROLES)
    run_id = create_run(info.id, "logreg", actor=ANALYST)
    [job_id] = jobs.submit_training([run_id])

    def broken(session, record):
        raise RuntimeError("lost the connection")

    with monkeypatch.context() as patched, pytest.raises(RuntimeError):
        patched.setattr(jobs, "_cancel", broken)
        request_cancel(run_id, actor=ANALYST)
    with session_factory().begin() as session:
        assert session.get(TrainingRunRecord, run_id).cancel_requested is False
    assert not [e for e in _events(action="train") if e.detail == "cancel"]
    request_cancel(run_id, actor=ANALYST)
    assert get_run(run_id).status == "cancelled"
    assert jobs.get_job(job_id).status == "cancelled"
