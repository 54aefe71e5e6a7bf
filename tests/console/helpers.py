"""Driving the console through HTTP as a browser would: cookies, forms, CSRF tokens."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.testclient import TestClient

from callcenter.users.models import UserRole
from tests.conftest import Users

PASSWORD = "correct horse battery"  # what tests.conftest.Users gives every user
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def sign_in(client: TestClient, users: Users, username: str, role: UserRole) -> httpx.Response:
    users.make(username, role)
    form = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return response


def post_form(
    client: TestClient, page: str, action: str, data: dict[str, Any] | None = None
) -> httpx.Response:
    """Post a form of `page` (fetched first, for its CSRF token) to `action`."""
    token = csrf_of(client.get(page).text)
    return client.post(action, data={"csrf_token": token, **(data or {})}, follow_redirects=False)
