"""Sign-in gate, roles and the Audit page through app.py with AppTest.

The OIDC round trip itself runs in a real browser against a real provider
(tests/e2e/test_sign_in.py); here the gate's other branches run in-process: a broken [auth]
section, the sign-in page before login, the local user's role, the admin's Audit page and the
Data page's erasure control.
"""

from __future__ import annotations

import pytest

from core.audit import list_events
from core.datasets import list_datasets
from core.runs import list_runs
from tests.pages.conftest import (
    CREDIT_SAMPLE_NAME,
    assert_no_failure,
    new_app,
    open_page,
    texts,
    timed_run,
)

AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "c" * 40,
    "client_id": "payoff",
    "client_secret": "s" * 24,
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}


@pytest.fixture(autouse=True)
def _no_sign_in_leak(monkeypatch):
    # gate() sets PAYOFF_SIGN_IN for the server process; setenv makes monkeypatch remove it
    # again after each test ("" reads as off).
    monkeypatch.setenv("PAYOFF_SIGN_IN", "")
    for name in ("PAYOFF_ADMINS", "PAYOFF_ANALYSTS", "PAYOFF_VIEWERS", "PAYOFF_USER"):
        monkeypatch.delenv(name, raising=False)


def _with_auth(auth: dict):
    at = new_app()
    at.secrets["auth"] = auth
    return timed_run(at, "home (auth)")


def test_with_auth_configured_only_the_sign_in_page_renders(_isolated_home) -> None:
    at = _with_auth(AUTH)
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.dataframe and not at.selectbox
    assert not (_isolated_home / "payoff.db").exists()  # the ledger is not even opened


@pytest.mark.parametrize("missing", ["cookie_secret", "client_secret", "redirect_uri"])
def test_a_broken_auth_section_stops_the_app(missing: str, _isolated_home) -> None:
    at = _with_auth({k: v for k, v in AUTH.items() if k != missing})
    errors = texts(at.error)
    assert len(errors) == 1 and f"missing the key '{missing}'" in errors[0]
    assert not at.button and not at.dataframe
    assert not (_isolated_home / "payoff.db").exists()


def test_the_local_user_is_admin_and_sees_the_audit_page(monkeypatch) -> None:
    monkeypatch.setenv("PAYOFF_USER", "local-ann")
    at = new_app()
    timed_run(at, "home (start)")
    assert_no_failure(at)
    assert any("local-ann" in t and "admin" in t for t in texts(at.sidebar.markdown))
    open_page(at, "audit")
    assert_no_failure(at)
    table = at.dataframe[0].value
    assert {"time", "user", "action", "object_type", "object_id", "outcome"} <= set(table.columns)
    assert "payoff (system)" in set(table["user"])  # the samples registered at start


def test_a_viewer_gets_no_write_controls_and_no_audit_page(monkeypatch) -> None:
    monkeypatch.setenv("PAYOFF_VIEWERS", "vic@partner.test")
    monkeypatch.setenv("PAYOFF_USER", "vic@partner.test")
    at = new_app()
    timed_run(at, "home (start)")
    assert any("vic@partner.test" in t and "viewer" in t for t in texts(at.sidebar.markdown))
    open_page(at, "data")
    assert_no_failure(at)
    assert at.radio(key="data_source").options == ["A dataset in Payoff (samples included)"]
    assert "Save roles and use case" not in [b.label for b in at.button]
    open_page(at, "train")
    assert any("train needs the analyst role" in t for t in texts(at.info))
    assert [b for b in at.button if b.label == "Start training"][0].disabled
    with pytest.raises(ValueError, match="Could not find a navigation page.*audit"):
        open_page(at, "audit")  # not among a viewer's pages


def test_an_admin_erases_a_dataset_with_its_runs_from_the_data_page(trained_ledger) -> None:
    at = new_app()
    timed_run(at, "home (start)")
    open_page(at, "data")
    assert at.selectbox(key="data_dataset").value == trained_ledger.dataset_id
    cascade = [c for c in at.checkbox if c.label.startswith("Also erase its")][0]
    cascade.check()
    timed_run(at, "data (cascade)")
    [b for b in at.button if b.label == "Delete"][0].click()
    timed_run(at, "data (delete)")
    assert_no_failure(at)
    assert CREDIT_SAMPLE_NAME not in [d.name for d in list_datasets()]
    assert list_runs() == []
    deleted = [e for e in list_events() if e.action == "delete"]
    assert [(e.object_id, e.outcome) for e in deleted] == [(str(trained_ledger.dataset_id), "ok")]
