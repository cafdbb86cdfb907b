"""End-to-end script for the Python client generated from openapi.yaml by openapi-python-client.

Runs against the server at BASE_URL (tests/clients/python/run.sh starts one): sign up, sign in,
whoami, create news, list them with a filter and a cursor, update one, delete it, and check that a
401 and a 422 come back as typed `Problem` values. Prints one line per step and, last,
`clients-python: N passed, M failed`.
"""

from __future__ import annotations

import os
import secrets
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The generated package lives under target/ (built from the spec on every run, never committed).
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "target" / "clients" / "python"))

from newsapi_client import AuthenticatedClient, Client  # noqa: E402
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
RUN = secrets.token_hex(4)
EMAIL = f"python-client-{RUN}@example.com"
PASSWORD = f"generated python client {RUN}"

state: dict[str, Any] = {}


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
    assert isinstance(counted, NewsCount) and counted.count == 3, counted


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
