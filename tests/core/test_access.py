"""Roles, the acting user and the [auth] check: plain functions of the environment."""

from __future__ import annotations

import pandas as pd
import pytest

from core.access import (
    AccessDenied,
    Actor,
    actor_for_login,
    auth_problem,
    local_actor,
    mask_pii,
    require,
    role_for,
)

GOOD_AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "s" * 40,
    "client_id": "payoff",
    "client_secret": "c" * 20,
    "server_metadata_url": "https://id.example.org/.well-known/openid-configuration",
}


@pytest.fixture
def roles(monkeypatch):
    monkeypatch.setenv("PAYOFF_ADMINS", "boss@corp.example")
    monkeypatch.setenv("PAYOFF_ANALYSTS", "@corp.example, ann@partner.test")
    monkeypatch.setenv("PAYOFF_VIEWERS", "vic@partner.test")
    monkeypatch.delenv("PAYOFF_UNKNOWN_USERS", raising=False)


def test_roles_map_from_addresses_and_domains(roles) -> None:
    assert role_for("boss@corp.example") == "admin"  # the highest list wins over the domain
    assert role_for("Someone@Corp.Example") == "analyst"  # case does not matter
    assert role_for("ann@partner.test") == "analyst"
    assert role_for("vic@partner.test") == "viewer"
    assert role_for("x@corp.example.evil.test") == "viewer"  # a suffix is not the domain


def test_unknown_users_are_viewers_at_most_or_refused(roles, monkeypatch) -> None:
    assert actor_for_login("stranger@elsewhere.test").role == "viewer"
    monkeypatch.setenv("PAYOFF_UNKNOWN_USERS", "refuse")
    with pytest.raises(AccessDenied, match="not allowed"):
        actor_for_login("stranger@elsewhere.test")
    monkeypatch.setenv("PAYOFF_UNKNOWN_USERS", "admin")
    with pytest.raises(ValueError, match="PAYOFF_UNKNOWN_USERS"):
        role_for("stranger@elsewhere.test")
    with pytest.raises(AccessDenied, match="e-mail"):
        actor_for_login(None)
    with pytest.raises(AccessDenied, match="not verified"):
        actor_for_login("boss@corp.example", verified=False)
    assert actor_for_login("boss@corp.example", verified=True).role == "admin"


def test_the_local_user_is_admin_only_without_sign_in(monkeypatch, roles) -> None:
    monkeypatch.setenv("PAYOFF_USER", "vic@partner.test")
    assert local_actor() == Actor("vic@partner.test", "viewer", "vic@partner.test")
    for name in ("PAYOFF_ADMINS", "PAYOFF_ANALYSTS", "PAYOFF_VIEWERS"):
        monkeypatch.delenv(name)
    monkeypatch.delenv("PAYOFF_SIGN_IN", raising=False)
    assert local_actor().role == "admin"
    monkeypatch.setenv("PAYOFF_SIGN_IN", "1")  # the app under sign-in: a missing actor fails closed
    assert local_actor().role == "viewer"
    monkeypatch.delenv("PAYOFF_USER")
    monkeypatch.delenv("PAYOFF_SIGN_IN")
    assert local_actor().name  # the OS user


def test_require_names_the_role_that_is_needed() -> None:
    viewer, analyst, admin = (Actor("u", r) for r in ("viewer", "analyst", "admin"))
    assert require(viewer, "read") is viewer
    with pytest.raises(AccessDenied, match="'upload' needs the analyst role"):
        require(viewer, "upload")
    assert require(analyst, "export") is analyst
    with pytest.raises(AccessDenied, match="'delete' needs the admin role"):
        require(analyst, "delete")
    assert require(admin, "audit") is admin
    with pytest.raises(ValueError, match="Unknown action"):
        require(admin, "launch_missiles")
    with pytest.raises(ValueError, match="Unknown role"):
        Actor("u", "superuser")


def test_pii_is_masked_for_roles_that_may_not_see_it(monkeypatch) -> None:
    frame = pd.DataFrame({"email": ["a@b.example", None], "x": [1, 2]})
    masked = mask_pii(frame, ["email", "not_there"], Actor("a", "analyst"))
    assert masked["email"].tolist()[0] == "***" and pd.isna(masked["email"].tolist()[1])
    assert masked["x"].tolist() == [1, 2]
    assert mask_pii(frame, ["email"], Actor("b", "admin")) is frame
    monkeypatch.setenv("PAYOFF_PII_ROLES", "admin,analyst")
    assert mask_pii(frame, ["email"], Actor("a", "analyst")) is frame


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("redirect_uri", "missing the key 'redirect_uri'"),
        ("cookie_secret", "missing the key 'cookie_secret'"),
        ("client_id", "missing the key 'client_id'"),
        ("client_secret", "missing the key 'client_secret'"),
        ("server_metadata_url", "missing the key 'server_metadata_url'"),
    ],
)
def test_a_broken_auth_section_is_one_line_naming_the_key(drop: str, expected: str) -> None:
    auth = {k: v for k, v in GOOD_AUTH.items() if k != drop}
    problem = auth_problem(auth)
    assert problem is not None and expected in problem and "\n" not in problem


def test_auth_sections_that_are_usable() -> None:
    assert auth_problem(None) is None  # no [auth]: local use
    assert auth_problem(GOOD_AUTH) is None
    named = {
        "redirect_uri": GOOD_AUTH["redirect_uri"],
        "cookie_secret": "s" * 40,
        "corp": {k: GOOD_AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")},
    }
    assert auth_problem(named) is None
    del named["corp"]["client_secret"]
    assert "[auth.corp]" in auth_problem(named) and "client_secret" in auth_problem(named)
    assert "oauth2callback" in auth_problem({**GOOD_AUTH, "redirect_uri": "http://x/cb"})
