"""Failed logins back off per address: the sixth try in a row waits, and is refused without a
password being checked; the login form and admin's alike; a success starts afresh."""

from __future__ import annotations

import pytest
from django.contrib.auth.signals import user_login_failed

from tuner_site import login_throttle

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-password-1"


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(login_throttle.time, "monotonic", lambda: now[0])
    return now


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_superuser("teammate", "t@x.lan", PASSWORD)


def _login(client, password: str, url: str = "/accounts/login/", addr: str = "10.0.0.7"):
    return client.post(
        url, {"username": "teammate", "password": password}, REMOTE_ADDR=addr, follow=False
    )


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_failed_logins_back_off_per_address_without_checking_a_password(client, user, clock, url):
    checked: list[str] = []

    def count(**kwargs) -> None:
        checked.append("tried")

    user_login_failed.connect(count)
    try:
        for _ in range(login_throttle.FREE_FAILURES):
            assert _login(client, "wrong", url).status_code == 200  # the form, with its error
        assert len(checked) == login_throttle.FREE_FAILURES
        refused = _login(client, PASSWORD, url)  # even the right one, while it waits
        assert refused.status_code == 429 and refused["Retry-After"] == "1"
        assert "Too many failed logins" in refused.content.decode()
        assert len(checked) == login_throttle.FREE_FAILURES  # refused before any password check
        assert _login(client, PASSWORD, url, addr="10.0.0.8").status_code == 302  # others not
        client.logout()

        clock[0] += 1.0
        assert _login(client, "wrong", url).status_code == 200
        refused = _login(client, "wrong", url)
        assert refused.status_code == 429 and refused["Retry-After"] == "2"  # twice as long
        clock[0] += 2.0
        assert _login(client, PASSWORD, url).status_code == 302
        client.logout()
        # A success starts afresh: five more typos are free.
        for _ in range(login_throttle.FREE_FAILURES):
            assert _login(client, "wrong", url).status_code == 200
    finally:
        user_login_failed.disconnect(count)


def test_the_wait_doubles_up_to_five_minutes_and_is_forgotten_after_a_quarter_hour(
    client, user, clock
):
    assert [login_throttle.wait_after(n) for n in range(4, 9)] == [0, 1, 2, 4, 8]
    assert login_throttle.wait_after(40) == login_throttle.MAX_WAIT_S == 300
    for _ in range(13):
        assert _login(client, "wrong").status_code == 200  # each after its wait
        clock[0] += login_throttle.MAX_WAIT_S
    assert _login(client, "wrong").status_code == 200
    refused = _login(client, "wrong")
    assert refused.status_code == 429 and refused["Retry-After"] == "300"
    clock[0] += login_throttle.FORGET_AFTER_S
    assert _login(client, PASSWORD).status_code == 302
