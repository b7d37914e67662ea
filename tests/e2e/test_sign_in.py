"""Sign-in through a real OpenID Connect provider, in a real browser.

The test starts its own OIDC provider (tests/e2e/oidc_provider.py: discovery, JWKS, PKCE,
RS256 ID tokens) and a ``streamlit run app.py`` whose secrets file configures ``[auth]`` for
it, then drives Debian's chromium: unauthenticated visitors see only the sign-in page and no
data; a viewer signs in, sees results but cannot upload; an admin sees the audit trail with
the sign-ins. A broken ``[auth]`` section stops the app with one line. The server log never
holds the client secret, the cookie secret or a session cookie.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, _stop, _wait_healthy, free_port, log_tail
from tests.e2e.oidc_provider import OIDCProvider
from tests.fixtures import make_tabular_frame, write_csv

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
TIMEOUT_MS = 60_000
SECRET_DATASET = "Confidential customers QX7"
VIEWER = "vera@partner.test"
ADMIN = "ada@example.org"


@dataclass(frozen=True)
class SignInServer:
    url: str
    home: Path
    log: Path
    provider: OIDCProvider
    cookie_secret: str


def _secrets_toml(provider: OIDCProvider, port: int, cookie_secret: str, *, drop: str = "") -> str:
    auth = {
        "redirect_uri": f"http://127.0.0.1:{port}/oauth2callback",
        "cookie_secret": cookie_secret,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "server_metadata_url": provider.metadata_url,
    }
    auth.pop(drop, None)
    lines = [
        # Root keys first (TOML): Streamlit exports them as environment variables for core.
        f'PAYOFF_ADMINS = "{ADMIN}"',
        'PAYOFF_ANALYSTS = "@example.org"',
        f'PAYOFF_VIEWERS = "{VIEWER}"',
        'PAYOFF_UNKNOWN_USERS = "refuse"',
        "",
        "[auth]",
        *(f'{key} = "{value}"' for key, value in auth.items()),
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _serve(home: Path, secrets_file: Path, port: int) -> Iterator[Path]:
    log = home / "streamlit.log"
    env = {**os.environ, "PAYOFF_HOME": str(home), "PAYOFF_THREADS": "1"}
    env.pop("PAYOFF_DB_URL", None)
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port),
        "--server.headless", "true",
        "--secrets.files", str(secrets_file),
        # The most verbose level Streamlit has: whatever it logs, the test greps.
        "--logger.level", "debug",
    ]  # fmt: skip
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", process, log)
        yield log
    finally:
        _stop(process)


def _seed(home: Path, tmp: Path) -> None:
    """A dataset whose name must not show before sign-in, registered through the CLI."""
    csv = write_csv(tmp / "customers.csv", make_tabular_frame(60, seed=5))
    env = {**os.environ, "PAYOFF_HOME": str(home), "PAYOFF_USER": "seeder"}
    env.pop("PAYOFF_DB_URL", None)
    subprocess.run(
        [sys.executable, "-m", "core.cli", "datasets", "add", str(csv), "--name", SECRET_DATASET],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def sign_in_server(tmp_path_factory) -> Iterator[SignInServer]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (CI installs Debian's chromium package)")
    home = tmp_path_factory.mktemp("signin_home")
    _seed(home, tmp_path_factory.mktemp("signin_files"))
    port = free_port()
    cookie_secret = secrets.token_urlsafe(32)
    provider = OIDCProvider(redirect_uris=(f"http://127.0.0.1:{port}/oauth2callback",))
    secrets_file = home / "secrets.toml"
    secrets_file.write_text(_secrets_toml(provider, port, cookie_secret))
    with provider, _serve(home, secrets_file, port) as log:
        yield SignInServer(f"http://127.0.0.1:{port}", home, log, provider, cookie_secret)


@pytest.fixture(scope="module")
def browser(sign_in_server) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@contextlib.contextmanager
def _page(browser, server: SignInServer, name: str):
    """A fresh browser context (no cookies); a failure saves a screenshot and the log tail."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    except Exception as exc:
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"signin-{name}.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot), full_page=True)
        raise AssertionError(
            f"{name} failed ({exc}); screenshot {shot}\nserver log:\n{log_tail(server.log)}"
        ) from exc
    finally:
        _COOKIES.extend(c["value"] for c in context.cookies())
        context.close()


_COOKIES: list[str] = []


def _settle(page) -> None:
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")


def _sign_in(page, server: SignInServer, email: str) -> None:
    server.provider.user = email
    page.goto(server.url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(server.url)))
    page.get_by_text(email).first.wait_for()
    _settle(page)


def test_unauthenticated_visitors_see_only_the_sign_in_page(sign_in_server, browser) -> None:
    with _page(browser, sign_in_server, "unauthenticated") as page:
        for path in ("/", "/data", "/audit"):
            page.goto(sign_in_server.url + path)
            page.get_by_role("button", name="Sign in").wait_for()
            _settle(page)
            text = page.locator("body").inner_text()
            assert "Sign in to continue" in text
            assert SECRET_DATASET not in text
            assert "Credit scoring" not in text  # not even the samples
            assert page.locator('[data-testid="stSidebarNav"]').count() == 0
            assert page.locator('[data-testid="stDataFrame"]').count() == 0


def test_a_viewer_signs_in_reads_results_and_cannot_upload(sign_in_server, browser) -> None:
    with _page(browser, sign_in_server, "viewer") as page:
        _sign_in(page, sign_in_server, VIEWER)
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert f"{VIEWER} · viewer" in sidebar.inner_text()
        nav = page.locator('[data-testid="stSidebarNav"]')
        assert nav.get_by_role("link", name="Audit", exact=True).count() == 0
        nav.get_by_role("link", name="Data", exact=True).click()
        page.get_by_role("heading", name="Data").first.wait_for()
        _settle(page)
        assert page.get_by_text("Upload a new CSV", exact=True).count() == 0
        assert page.get_by_text("Delete this dataset").count() == 0
        assert page.get_by_role("button", name="Save roles and use case").count() == 0
        assert SECRET_DATASET in page.get_by_role("combobox", name="Dataset").input_value()
        nav.get_by_role("link", name="Train", exact=True).click()
        page.get_by_text("train needs the analyst role").wait_for()
        assert page.get_by_role("button", name="Start training").is_disabled()


def test_an_admin_sees_the_audit_trail_with_the_sign_ins(sign_in_server, browser) -> None:
    with _page(browser, sign_in_server, "admin") as page:
        _sign_in(page, sign_in_server, ADMIN)
        assert f"{ADMIN} · admin" in page.locator('[data-testid="stSidebar"]').inner_text()
        nav = page.locator('[data-testid="stSidebarNav"]')
        nav.get_by_role("link", name="Audit", exact=True).click()
        page.get_by_role("heading", name="Audit").first.wait_for()
        _settle(page)
        page.get_by_text(re.compile(r"\d+ event\(s\), newest first")).wait_for()
        cells = page.locator('[data-testid="stDataFrame"] [role="gridcell"]')
        cells.filter(has_text=VIEWER).first.wait_for(state="attached")
        cells.filter(has_text="sign_in").first.wait_for(state="attached")
        cells.filter(has_text="seeder").first.wait_for(state="attached")  # the CLI upload


def test_an_unknown_user_is_refused_when_the_operator_says_so(sign_in_server, browser) -> None:
    with _page(browser, sign_in_server, "unknown") as page:
        sign_in_server.provider.user = "mallory@elsewhere.test"
        page.goto(sign_in_server.url)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("is not allowed to use Payoff").wait_for()
        _settle(page)
        assert SECRET_DATASET not in page.locator("body").inner_text()


def test_the_server_log_holds_no_secrets_or_cookies(sign_in_server, browser) -> None:
    # Signs in itself: pytest may give this test its own server (its parametrisation differs
    # from the browser tests'), and the log must have seen a real sign-in.
    with _page(browser, sign_in_server, "log") as page:
        _sign_in(page, sign_in_server, VIEWER)
    assert "/token" in sign_in_server.provider.requests
    log = sign_in_server.log.read_text(errors="replace")
    assert log, "the server wrote no log at all"
    assert sign_in_server.provider.client_secret not in log
    assert sign_in_server.cookie_secret not in log
    assert _COOKIES, "the browser got no cookies: sign-in did not happen"
    for value in _COOKIES:
        assert len(value) < 8 or value not in log


@pytest.mark.parametrize("missing", ["cookie_secret", "client_id", "server_metadata_url"])
def test_a_broken_auth_section_stops_the_app_with_one_line(
    missing: str, browser, tmp_path: Path
) -> None:
    port = free_port()
    provider = OIDCProvider(redirect_uris=(f"http://127.0.0.1:{port}/oauth2callback",))
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(_secrets_toml(provider, port, "x" * 40, drop=missing))
    home = tmp_path / "home"
    home.mkdir()
    with provider, _serve(home, secrets_file, port) as log:
        page = browser.new_page()
        try:
            page.goto(f"http://127.0.0.1:{port}")
            page.get_by_text("Payoff refuses to start").wait_for(timeout=TIMEOUT_MS)
            text = page.locator("body").inner_text()
            assert f"missing the key '{missing}'" in text
            assert "Sign in" not in text and "Credit scoring" not in text
        finally:
            page.close()
        assert f"missing the key '{missing}'" in log.read_text(errors="replace")
    assert not (home / "payoff.db").exists()  # nothing ran past the gate


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


def test_the_app_listens_on_loopback_only_by_default(tmp_path: Path) -> None:
    """No --server.address: .streamlit/config.toml's 127.0.0.1 decides (Streamlit's own default
    would be every interface)."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp")
    port = free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "PAYOFF_HOME": str(tmp_path / "home")}
    env.pop("PAYOFF_DB_URL", None)
    env.pop("STREAMLIT_SERVER_ADDRESS", None)
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", process, log)
        addresses = _listening_addresses(port)
    finally:
        _stop(process)
    # 0100007F is 127.0.0.1 in /proc's byte order; 0.0.0.0 would be 00000000, :: all zeros.
    assert addresses == {"0100007F"}, f"listening on {addresses}:\n{log_tail(log)}"
