"""End-to-end script for the Python client generated from openapi.yaml by openapi-python-client.

Runs against the server at BASE_URL (tests/clients/python/run.sh starts one): sign up, sign in,
whoami, create news, list them with a filter and a cursor, update one, delete it, and check that a
401 and a 422 come back as typed `Problem` values. Then the account, with the mails a real SMTP
server received (MAIL_SINK_DIR, one JSON file per mail): verify the email with the link mailed at
sign-up, set and clear the name, change the password, reset a forgotten one by mail (and reuse the
token: 400 invalid-token), change the email by mail, and delete the account. Prints one line per
step and, last, `clients-python: N passed, M failed`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The generated package lives under target/ (built from the spec on every run, never committed).
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "target" / "clients" / "python"))

from newsapi_client import AuthenticatedClient, Client  # noqa: E402
from newsapi_client.api.account import (  # noqa: E402
    change_email,
    change_password,
    delete_account,
    forgot_password,
    reset_password,
    update_account,
    verify_email,
)
from newsapi_client.api.auth import signin, signup, whoami  # noqa: E402
from newsapi_client.api.news import (  # noqa: E402
    count_news,
    create_news,
    delete_news,
    get_news,
    list_news,
    update_news,
)
from newsapi_client.models import (  # noqa: E402
    AccountPatch,
    ChangeEmailRequest,
    ChangePasswordRequest,
    DeleteAccountRequest,
    EmailTokenRequest,
    ForgotPasswordRequest,
    ResetPasswordRequest,
    News,
    NewsCount,
    NewsInput,
    NewsOrder,
    NewsPage,
    NewsPatch,
    Problem,
    SigninRequest,
    SignupRequest,
    TokenResponse,
    TokenType,
    User,
)

BASE_URL = os.environ["BASE_URL"]
MAIL_SINK_DIR = Path(os.environ["MAIL_SINK_DIR"])
RUN = secrets.token_hex(4)
EMAIL = f"python-client-{RUN}@example.com"
NEW_EMAIL = f"python-client-{RUN}-new@example.com"
PASSWORD = f"generated python client {RUN}"
CHANGED_PASSWORD = f"changed python client {RUN}"
RESET_PASSWORD = f"reset python client {RUN}"

state: dict[str, Any] = {"mails_read": set()}


def mailed_token(to: str, path: str, within: float = 10.0) -> str:
    """The token of the first mail to `to` not read yet whose body links to BASE_URL + path
    (the server runs with PUBLIC_BASE_URL = BASE_URL), waiting up to `within` seconds."""
    link = re.compile(re.escape(f"{BASE_URL}{path}?token=") + r"([A-Za-z0-9_~.%-]+)")
    deadline = time.monotonic() + within
    while True:
        for file in sorted(MAIL_SINK_DIR.glob("*.json")):
            if file.name in state["mails_read"]:
                continue
            mail = json.loads(file.read_text(encoding="utf-8"))
            if to.lower() not in [rcpt.lower() for rcpt in mail["rcpt_tos"]]:
                continue
            found = link.search(mail["body"])
            if found:
                state["mails_read"].add(file.name)
                return found.group(1)
        if time.monotonic() > deadline:
            raise AssertionError(f"no mail to {to} linking to {path} within {within} s")
        time.sleep(0.1)


def mails_to(to: str) -> int:
    count = 0
    for file in MAIL_SINK_DIR.glob("*.json"):
        mail = json.loads(file.read_text(encoding="utf-8"))
        count += to.lower() in [rcpt.lower() for rcpt in mail["rcpt_tos"]]
    return count


def sign_in(email: str, password: str) -> AuthenticatedClient:
    client = Client(base_url=BASE_URL, raise_on_unexpected_status=True)
    body = SigninRequest(email=email, password=password)
    response = signin.sync_detailed(client=client, body=body)
    assert response.status_code == 200, response
    tokens = response.parsed
    assert isinstance(tokens, TokenResponse), tokens
    return AuthenticatedClient(
        base_url=BASE_URL, token=tokens.access_token, raise_on_unexpected_status=True
    )


def sign_in_refused(email: str, password: str) -> None:
    client = Client(base_url=BASE_URL, raise_on_unexpected_status=True)
    body = SigninRequest(email=email, password=password)
    response = signin.sync_detailed(client=client, body=body)
    assert response.status_code == 401, response
    assert isinstance(response.parsed, Problem), response.parsed


def me_via(client: AuthenticatedClient) -> User:
    me = whoami.sync(client=client)
    assert isinstance(me, User), me
    return me


def step_signup() -> None:
    client = Client(base_url=BASE_URL, raise_on_unexpected_status=True)
    response = signup.sync_detailed(
        client=client, body=SignupRequest(email=EMAIL, password=PASSWORD, name="Py Client")
    )
    assert response.status_code == 201, response
    user = response.parsed
    assert isinstance(user, User), user
    assert user.email == EMAIL and user.name == "Py Client", user
    state["user"] = user


def step_signin() -> None:
    client = Client(base_url=BASE_URL, raise_on_unexpected_status=True)
    tokens = signin.sync(client=client, body=SigninRequest(email=EMAIL.upper(), password=PASSWORD))
    assert isinstance(tokens, TokenResponse), tokens
    assert tokens.token_type is TokenType.BEARER and tokens.expires_in > 0, tokens
    state["client"] = AuthenticatedClient(
        base_url=BASE_URL, token=tokens.access_token, raise_on_unexpected_status=True
    )


def step_whoami() -> None:
    me = whoami.sync(client=state["client"])
    assert isinstance(me, User), me
    assert me.email == EMAIL and me.id == state["user"].id, me
    assert me.email_verified is False, me


def step_create() -> None:
    created = []
    for i in range(3):
        response = create_news.sync_detailed(
            client=state["client"],
            body=NewsInput(title=f"Python client news {i}", body=f"Written by run {RUN}, item {i}."),
        )
        assert response.status_code == 201, response
        news = response.parsed
        assert isinstance(news, News), news
        assert news.author_id == state["user"].id, news
        assert response.headers["location"].endswith(str(news.id)), response.headers
        created.append(news)
    state["created"] = created


def step_list_with_filter_and_cursor() -> None:
    client = state["client"]
    author = state["user"].id
    first = list_news.sync(
        client=client, author_id=author, limit=2, order=NewsOrder.DATE_CREATED_ASC
    )
    assert isinstance(first, NewsPage), first
    assert len(first.items) == 2 and isinstance(first.next_cursor, str), first
    second = list_news.sync(
        client=client,
        author_id=author,
        limit=2,
        order=NewsOrder.DATE_CREATED_ASC,
        cursor=first.next_cursor,
    )
    assert isinstance(second, NewsPage), second
    assert len(second.items) == 1 and second.next_cursor is None, second
    listed = [news.id for news in first.items + second.items]
    assert listed == [news.id for news in state["created"]], listed
    searched = list_news.sync(client=client, author_id=author, q=f'"item 1" {RUN}')
    assert isinstance(searched, NewsPage), searched
    assert [news.id for news in searched.items] == [state["created"][1].id], searched
    counted = count_news.sync(client=client, author_id=author)
    assert isinstance(counted, NewsCount) and counted.count == 3 and counted.exact, counted


def step_update() -> None:
    target = state["created"][0]
    response = update_news.sync_detailed(
        client=state["client"], id=target.id, body=NewsPatch(title="Python client, updated")
    )
    assert response.status_code == 200, response
    news = response.parsed
    assert isinstance(news, News), news
    assert news.title == "Python client, updated" and news.body == target.body, news
    assert news.date_updated >= target.date_updated, news


def step_delete() -> None:
    target = state["created"][0]
    response = delete_news.sync_detailed(client=state["client"], id=target.id)
    assert response.status_code == 204, response
    gone = get_news.sync_detailed(client=state["client"], id=target.id)
    assert gone.status_code == 404 and isinstance(gone.parsed, Problem), gone
    assert gone.parsed.status == 404, gone.parsed


def step_401_is_a_typed_problem() -> None:
    stranger = AuthenticatedClient(
        base_url=BASE_URL, token="not-a-token", raise_on_unexpected_status=True
    )
    response = whoami.sync_detailed(client=stranger)
    assert response.status_code == 401, response
    problem = response.parsed
    assert isinstance(problem, Problem), problem
    assert problem.status == 401 and problem.title == "Unauthorized", problem
    assert response.headers["www-authenticate"].lower().startswith("bearer"), response.headers


def step_422_is_a_typed_problem() -> None:
    response = create_news.sync_detailed(
        client=state["client"], body=NewsInput(title="   ", body="A blank title is refused.")
    )
    assert response.status_code == 422, response
    problem = response.parsed
    assert isinstance(problem, Problem), problem
    assert problem.status == 422 and problem.type_ == "/problems/validation", problem
    assert isinstance(problem.errors, list), problem
    assert [error.field for error in problem.errors] == ["title"], problem.errors


def step_verify_email() -> None:
    token = mailed_token(EMAIL, "/email/verify")
    client = Client(base_url=BASE_URL, raise_on_unexpected_status=True)
    response = verify_email.sync_detailed(client=client, body=EmailTokenRequest(token=token))
    assert response.status_code == 204, response
    assert me_via(state["client"]).email_verified is True


def step_update_account() -> None:
    named = update_account.sync_detailed(
        client=state["client"], body=AccountPatch(name="Py Client, renamed")
    )
    assert named.status_code == 200 and isinstance(named.parsed, User), named
    assert named.parsed.name == "Py Client, renamed", named.parsed
    untouched = update_account.sync(client=state["client"], body=AccountPatch())
    assert isinstance(untouched, User) and untouched.name == "Py Client, renamed", untouched
    # `name=None` is sent as `"name": null` (UNSET leaves the key out): it clears the name.
    cleared = update_account.sync_detailed(client=state["client"], body=AccountPatch(name=None))
    assert cleared.status_code == 200 and isinstance(cleared.parsed, User), cleared
    assert cleared.parsed.name is None, cleared.parsed
    assert me_via(state["client"]).name is None


def step_change_password() -> None:
    wrong = change_password.sync_detailed(
        client=state["client"],
        body=ChangePasswordRequest(current_password=f"not it {RUN}", new_password=CHANGED_PASSWORD),
    )
    assert wrong.status_code == 403 and isinstance(wrong.parsed, Problem), wrong
    other_session = sign_in(EMAIL, PASSWORD)
    response = change_password.sync_detailed(
        client=state["client"],
        body=ChangePasswordRequest(current_password=PASSWORD, new_password=CHANGED_PASSWORD),
    )
    assert response.status_code == 204, response
    sign_in_refused(EMAIL, PASSWORD)
    sign_in(EMAIL, CHANGED_PASSWORD)
    # The caller's session stays; every other one ends.
    assert me_via(state["client"]).email == EMAIL
    assert whoami.sync_detailed(client=other_session).status_code == 401


def step_reset_forgotten_password() -> None:
    client = Client(base_url=BASE_URL, raise_on_unexpected_status=True)
    response = forgot_password.sync_detailed(client=client, body=ForgotPasswordRequest(email=EMAIL))
    assert response.status_code == 202, response
    token = mailed_token(EMAIL, "/password/reset")
    reset = reset_password.sync_detailed(
        client=client, body=ResetPasswordRequest(token=token, new_password=RESET_PASSWORD)
    )
    assert reset.status_code == 204, reset
    state["reset_token"] = token
    sign_in_refused(EMAIL, CHANGED_PASSWORD)
    # A reset ends every session, the one used so far included.
    assert whoami.sync_detailed(client=state["client"]).status_code == 401
    state["client"] = sign_in(EMAIL, RESET_PASSWORD)


def step_reset_token_reuse_is_refused() -> None:
    client = Client(base_url=BASE_URL, raise_on_unexpected_status=True)
    response = reset_password.sync_detailed(
        client=client,
        body=ResetPasswordRequest(token=state["reset_token"], new_password=f"attacker {RUN}"),
    )
    assert response.status_code == 400, response
    problem = response.parsed
    assert isinstance(problem, Problem), problem
    assert problem.status == 400 and problem.type_ == "/problems/invalid-token", problem
    sign_in_refused(EMAIL, f"attacker {RUN}")
    sign_in(EMAIL, RESET_PASSWORD)


def step_change_email() -> None:
    response = change_email.sync_detailed(
        client=state["client"],
        body=ChangeEmailRequest(new_email=NEW_EMAIL, current_password=RESET_PASSWORD),
    )
    assert response.status_code == 202, response
    # Nothing changes until the new address confirms.
    assert me_via(state["client"]).email == EMAIL
    token = mailed_token(NEW_EMAIL, "/email/verify")
    told_before = mails_to(EMAIL)
    verified = verify_email.sync_detailed(
        client=Client(base_url=BASE_URL, raise_on_unexpected_status=True),
        body=EmailTokenRequest(token=token),
    )
    assert verified.status_code == 204, verified
    me = me_via(state["client"])
    assert me.email == NEW_EMAIL and me.email_verified is True, me
    sign_in_refused(EMAIL, RESET_PASSWORD)
    state["client"] = sign_in(NEW_EMAIL, RESET_PASSWORD)
    # The old address is told.
    deadline = time.monotonic() + 10
    while mails_to(EMAIL) <= told_before:
        assert time.monotonic() < deadline, f"no mail to the old address {EMAIL}"
        time.sleep(0.1)


def step_delete_account() -> None:
    wrong = delete_account.sync_detailed(
        client=state["client"], body=DeleteAccountRequest(current_password=f"not it {RUN}")
    )
    assert wrong.status_code == 403 and isinstance(wrong.parsed, Problem), wrong
    response = delete_account.sync_detailed(
        client=state["client"], body=DeleteAccountRequest(current_password=RESET_PASSWORD)
    )
    assert response.status_code == 204, response
    sign_in_refused(NEW_EMAIL, RESET_PASSWORD)
    assert whoami.sync_detailed(client=state["client"]).status_code == 401


STEPS: list[tuple[str, Callable[[], None]]] = [
    ("sign up", step_signup),
    ("sign in", step_signin),
    ("whoami", step_whoami),
    ("create news", step_create),
    ("list with a filter and a cursor", step_list_with_filter_and_cursor),
    ("update", step_update),
    ("delete", step_delete),
    ("a 401 is a typed Problem", step_401_is_a_typed_problem),
    ("a 422 is a typed Problem", step_422_is_a_typed_problem),
    ("verify the email with the link mailed at sign-up", step_verify_email),
    ("set the name, then clear it with null", step_update_account),
    ("change the password", step_change_password),
    ("reset a forgotten password with the mailed link", step_reset_forgotten_password),
    ("a used reset token is 400 invalid-token", step_reset_token_reuse_is_refused),
    ("change the email with the link mailed to the new address", step_change_email),
    ("delete the account", step_delete_account),
]


def main() -> int:
    passed = failed = 0
    for name, step in STEPS:
        try:
            step()
        except Exception:  # noqa: BLE001 - every failure is reported the same way
            failed += 1
            print(f"not ok - {name}")
            traceback.print_exc()
            break  # later steps build on earlier ones
        passed += 1
        print(f"ok - {name}")
    failed += len(STEPS) - passed - failed  # steps never reached
    print(f"clients-python: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
