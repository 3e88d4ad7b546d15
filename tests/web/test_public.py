"""The counterparty's pages, without a login: the public request page (validated, signed form,
rate limited, nothing stored on bad input), the request's status page, and the signed link that
accepts or disputes a result (GET shows, POST acts once)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tempo import links
from tempo.store.engine import read_session, write_session
from tempo.store.models import (
    Attachment,
    Counterparty,
    HistoryEvent,
    OutboxMessage,
    PendingRequest,
    Process,
    RateLimitHit,
    Task,
    TaskStatus,
)
from tempo.web.security import csrf_token
from tests.factories import make_process, make_task
from tests.fingerprint import store_fingerprint
from tests.web.conftest import auth

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
VALID = {
    "name": "Initech GmbH",
    "email": "help@initech.example",
    "subject": "Pump P-20 stopped",
    "description": "It stopped after two weeks.",
    "serial_number": "SN-123456",
    "purchase_date": "2026-11-02",
}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def store_counts() -> dict[str, int]:
    with read_session() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (
                Process,
                Counterparty,
                Attachment,
                OutboxMessage,
                RateLimitHit,
                Task,
                HistoryEvent,
                PendingRequest,
            )
        }


def stored() -> dict[str, int]:
    """What a request keeps apart from its rate-limit count (every request counts, refused ones too)."""
    counts = store_counts()
    counts.pop("tempo_rate_limit")
    return counts


def runs_of_customer_request() -> int:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session(scoped=False) as session:
        return session.scalar(
            select(func.count()).select_from(DagRun).where(DagRun.dag_id == "customer_request")
        )


@pytest.fixture
def form_token(web) -> str:
    page = web.get("/tempo/request/warranty_claim")
    assert page.status_code == 200
    return csrf_of(page.text)


def test_the_request_pages_need_no_login(web):
    index = web.get("/tempo/request")
    assert index.status_code == 200
    assert "Warranty claim" in index.text and "/tempo/request/delivery_problem" in index.text
    form = web.get("/tempo/request/warranty_claim")
    assert form.status_code == 200
    for field in ("name", "email", "subject", "description", "serial_number", "purchase_date", "attachments"):
        assert f'name="{field}"' in form.text
    assert 'enctype="multipart/form-data"' in form.text and "Inbox" not in form.text
    assert form.headers["content-security-policy"].startswith("default-src 'none'")
    assert web.get("/tempo/request/no_such_type").status_code == 404


@pytest.mark.parametrize(
    ("change", "files", "field", "message"),
    [
        ({"email": "not-an-address"}, None, "email", "Enter an email address"),
        ({"email": "a" * 140 + "@example.com"}, None, "email", "at most 150 characters"),
        ({"subject": ""}, None, "subject", "This field is required."),
        ({"serial_number": "123"}, None, "serial_number", "Use the form SN-123456."),
        ({"purchase_date": "last week"}, None, "purchase_date", "Enter a date as YYYY-MM-DD."),
        ({"is_admin": "1"}, None, "is_admin", "Unknown field."),
        (
            {},
            [("attachments", ("empty.txt", b"", "text/plain"))],
            "attachments",
            "empty.txt: The file is empty.",
        ),
        (
            {},
            [("attachments", (f"f{i}.txt", b"x", "text/plain")) for i in range(11)],
            "attachments",
            "Attach at most 10 files.",
        ),
    ],
    ids=["email", "long-email", "subject", "type-field", "date", "unknown", "empty-file", "too-many-files"],
)
# Validation happens before the store is touched: one backend shows it (the store-backed parts, the
# card and the rate limit, are tested on both in tests/test_counterparties.py and test_ratelimit.py).
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_bad_input_gets_field_messages_and_stores_nothing(web, form_token, change, files, field, message):
    before, runs = stored(), runs_of_customer_request()
    data = {**VALID, **change, "subject": change.get("subject", HOSTILE), "csrf": form_token}
    response = web.post("/tempo/request/warranty_claim", data=data, files=files)
    assert response.status_code == 422
    error = re.search(rf'id="error-{field}">([^<]*)<', response.text)
    assert error and message in error.group(1).replace("&#39;", "'")
    # What was typed comes back, escaped.
    assert "<script>alert" not in response.text
    assert stored() == before and runs_of_customer_request() == runs


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_public_form_shows_formats_first_and_asks_for_files_again_after_an_error(web, form_token):
    page = web.get("/tempo/request/warranty_claim").text
    assert 'id="format-serial_number">Use the form SN-123456.<' in page
    assert 'placeholder="SN-123456"' in page and 'id="attach-again"' not in page
    refused = web.post(
        "/tempo/request/warranty_claim",
        data={**VALID, "serial_number": "123", "csrf": form_token},
        files=[("attachments", ("photo.txt", b"pump", "text/plain"))],
    )
    assert refused.status_code == 422
    assert "attach them again" in refused.text.split('id="attach-again">', 1)[1].split("<", 1)[0]


def test_a_form_that_did_not_come_from_the_page_is_refused(web, form_token):
    before = stored()
    assert web.post("/tempo/request/warranty_claim", data=VALID).status_code == 403
    forged = {**VALID, "csrf": form_token + "x"}
    assert web.post("/tempo/request/warranty_claim", data=forged).status_code == 403
    # A token of another request type's form does not fit this one.
    other = csrf_of(web.get("/tempo/request/delivery_problem").text)
    assert web.post("/tempo/request/warranty_claim", data={**VALID, "csrf": other}).status_code == 403
    assert stored() == before


@pytest.fixture
def mailbox(smtp):
    """The mailbox of whoever the public page writes to: the real SMTP server's catch."""
    return smtp


def mails_to(mailbox, address: str) -> list:
    return [m for m in mailbox.messages if address in m.envelope_to]


CONFIRM_LINK = re.compile(r"http://tempo\.example\.test(/tempo/confirm/[^\s\"<]+)")
STATUS_LINK = re.compile(r"/tempo/requests/([^\s\"<]+)")


def confirmation_path(mailbox, address: str) -> str:
    [mail] = mails_to(mailbox, address)
    return CONFIRM_LINK.search(mail.body("plain")).group(1)


def pending_requests() -> int:
    with read_session() as session:
        return session.scalar(select(func.count()).select_from(PendingRequest))


def send(web, form_token, files=None, **change):
    return web.post(
        "/tempo/request/warranty_claim",
        data={**VALID, **change, "csrf": form_token},
        files=files,
        follow_redirects=False,
    )


def test_a_request_is_registered_only_once_its_mailbox_confirms_it(web, form_token, mailbox):
    before, runs = stored(), runs_of_customer_request()
    sent = send(
        web,
        form_token,
        files=[
            ("attachments", ("photo.jpg", b"\xff\xd8 photo", "image/jpeg")),
            ("attachments", ("../../invoice.pdf", b"%PDF invoice", "application/pdf")),
        ],
        subject=HOSTILE,
    )
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == "/tempo/request/warranty_claim/sent"
    page = web.get(sent.headers["location"])
    assert page.status_code == 200 and "Check your mailbox" in page.text
    assert not STATUS_LINK.search(sent.text + sent.headers["location"] + page.text)
    # Held, no more: no card, no process, no file, no run, until the mailbox answers.
    after = stored()
    assert after.pop("tempo_pending_request") == before.pop("tempo_pending_request") + 1
    assert after.pop("tempo_outbox") == before.pop("tempo_outbox") + 1  # the confirmation email
    assert after == before and runs_of_customer_request() == runs

    # The confirmation email: fixed text, none of what the visitor typed.
    [mail] = mails_to(mailbox, "help@initech.example")
    text, html = mail.body("plain"), mail.body("html")
    assert mail.subject == "[Tempo] Please confirm your request"
    for typed in (HOSTILE, "script", "Initech GmbH", "It stopped after two weeks.", "SN-123456", "photo.jpg"):
        assert typed not in mail.subject + text + html
    assert "Warranty claim" in text and not STATUS_LINK.search(text + html)
    url = confirmation_path(mailbox, "help@initech.example")

    # Opening the link shows what will be registered, escaped, and changes nothing.
    held = store_fingerprint()
    for _ in range(2):
        shown = web.get(url)
        assert shown.status_code == 200
        assert "Initech GmbH" in shown.text and "SN-123456" in shown.text and "photo.jpg" in shown.text
        assert "<script>alert" not in shown.text and "&lt;script&gt;" in shown.text
    assert store_fingerprint() == held and runs_of_customer_request() == runs
    assert web.post(url, data={}).status_code == 403  # not from the page: nothing either
    assert store_fingerprint() == held and runs_of_customer_request() == runs

    confirmed = web.post(url, data={"csrf": csrf_of(shown.text)}, follow_redirects=False)
    assert confirmed.status_code == 200 and "is registered" in confirmed.text
    assert not STATUS_LINK.search(confirmed.text) and "location" not in confirmed.headers
    assert runs_of_customer_request() == runs + 1

    # The status link reaches the mailbox, and only the mailbox.
    [follow] = [m for m in mails_to(mailbox, "help@initech.example") if "registered" in m.subject]
    token = STATUS_LINK.search(follow.body("plain")).group(1)
    with read_session() as session:
        process = session.get_one(Process, links.verify_request_status(token))
        files = session.scalars(select(Attachment).where(Attachment.process_id == process.id)).all()
    assert process.dag_id == "customer_request" and process.requester == "help@initech.example"
    assert process.data["request_params"] == {"serial_number": "SN-123456", "purchase_date": "2026-11-02"}
    assert process.data["counterparty_email"] == "help@initech.example"
    assert process.data["request_type"] == "warranty_claim"
    assert sorted(f.filename for f in files) == ["invoice.pdf", "photo.jpg"]
    assert {f.task_id for f in files} == {None} and {f.uploaded_by for f in files} == {"help@initech.example"}

    status = web.get(f"/tempo/requests/{token}")
    assert status.status_code == 200
    assert "Received" in status.text and "Warranty claim" in status.text and "photo.jpg" in status.text
    assert "<script>alert" not in status.text and "&lt;script&gt;" in status.text
    # Logged-in readers download a request's files through the API: those who may see the request
    # (ops and admins, while no step of it is anybody's yet).
    download_url = f"/tempo/api/v1/attachments/{files[0].id}"
    download = web.get(download_url, headers=auth("admin"))
    assert download.status_code == 200 and download.content in (b"\xff\xd8 photo", b"%PDF invoice")
    assert web.get(download_url, headers=auth("sandra")).status_code == 403


def test_an_address_with_a_card_gets_the_same_page_and_email_as_any_other(web, form_token, mailbox):
    with read_session() as session:  # the demo directory's card
        assert session.get_one(Counterparty, "GLOBEX").email == "buyers@globex.example"
    runs = runs_of_customer_request()
    known = send(web, form_token, email=" BUYERS@globex.example ", name="Mallory")
    unknown = send(web, form_token, email="nobody@unknown.example")
    assert (known.status_code, known.headers["location"]) == (
        unknown.status_code,
        unknown.headers["location"],
    )
    assert web.get(known.headers["location"]).text == web.get(unknown.headers["location"]).text
    [to_known], [to_unknown] = (
        mails_to(mailbox, "BUYERS@globex.example"),
        mails_to(mailbox, "nobody@unknown.example"),
    )
    assert to_known.subject == to_unknown.subject
    assert CONFIRM_LINK.sub("", to_known.body("plain")) == CONFIRM_LINK.sub("", to_unknown.body("plain"))
    # Nothing is filed on the card, and its registered name is shown to nobody.
    shown = web.get(confirmation_path(mailbox, "BUYERS@globex.example"))
    assert "Globex Ltd" not in shown.text and "Mallory" in shown.text
    assert runs_of_customer_request() == runs
    with read_session() as session:
        assert session.scalar(select(func.count()).select_from(Process)) == 0


def test_confirming_twice_or_from_two_tabs_registers_one_request(web, form_token, mailbox):
    assert send(web, form_token).status_code == 303
    url = confirmation_path(mailbox, "help@initech.example")
    runs = runs_of_customer_request()
    first_tab, second_tab = csrf_of(web.get(url).text), csrf_of(web.get(url).text)
    assert web.post(url, data={"csrf": first_tab}).status_code == 200
    held = stored()
    again = web.post(url, data={"csrf": second_tab})
    assert again.status_code == 409 and "already confirmed" in again.text
    assert not STATUS_LINK.search(again.text)
    assert web.get(url).status_code == 409
    assert stored() == held and runs_of_customer_request() == runs + 1
    with read_session() as session:
        assert session.scalar(select(func.count()).select_from(Process)) == 1


def test_a_confirmation_that_gets_past_the_claim_still_starts_no_second_run(web, form_token, mailbox):
    from sqlalchemy import update

    assert send(web, form_token).status_code == 303
    url = confirmation_path(mailbox, "help@initech.example")
    csrf = csrf_of(web.get(url).text)
    runs = runs_of_customer_request()
    assert web.post(url, data={"csrf": csrf}).status_code == 200
    # As if two confirmations had both found the request waiting: the run's id is the held
    # request's own, and Airflow has one run of that id already.
    with write_session() as session:
        session.execute(update(PendingRequest).values(confirmed_at=None))
    late = web.post(url, data={"csrf": csrf})
    assert late.status_code == 409 and "already confirmed" in late.text
    assert runs_of_customer_request() == runs + 1


def test_a_forged_expired_or_other_confirmation_link_changes_nothing(web, form_token, mailbox):
    import time_machine

    assert send(web, form_token).status_code == 303
    url = confirmation_path(mailbox, "help@initech.example")
    token = url.rsplit("/", 1)[1]
    csrf = csrf_of(web.get(url).text)
    held, runs = store_fingerprint(), runs_of_customer_request()
    other_purpose = [
        links.request_status_path(1).rsplit("/", 1)[1],  # a status link's token
        links.sign(1, "counterparty:GLOBEX", "respond"),  # a result link's
        links.dumps_signed({"c": "guess"}, salt="tempo.request-status.v1"),
        links.request_confirmation_link("a-secret-never-held").rsplit("/", 1)[1],  # well signed, unknown
    ]
    for bad in [token + "x", "not-a-token", *other_purpose]:
        assert web.get(f"/tempo/confirm/{bad}").status_code in (404, 410)
        assert web.post(f"/tempo/confirm/{bad}", data={"csrf": csrf}).status_code in (404, 410)
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=links.CONFIRM_LINK_MAX_AGE + 60)):
        late = web.post(url, data={"csrf": csrf})
        assert late.status_code == 410 and "expired" in late.text
    assert store_fingerprint() == held and runs_of_customer_request() == runs


def test_held_requests_nobody_confirmed_are_purged_with_their_files(
    web, form_token, mailbox, tmp_path, monkeypatch
):
    import time_machine

    monkeypatch.setenv("AIRFLOW__TEMPO__ATTACHMENTS_PATH", f"file://{tmp_path / 'files'}")
    files = [("attachments", ("photo.jpg", b"\xff\xd8 photo", "image/jpeg"))]
    assert send(web, form_token, files=files).status_code == 303
    assert [p.name for p in (tmp_path / "files").rglob("*") if p.is_file()] != []
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=links.CONFIRM_LINK_MAX_AGE + 60)):
        fresh = csrf_of(web.get("/tempo/request/warranty_claim").text)
        assert send(web, fresh, email="other@initech.example").status_code == 303
    assert pending_requests() == 1
    assert [p for p in (tmp_path / "files").rglob("*") if p.is_file()] == []


def test_each_client_is_rate_limited(web, form_token, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TEMPO__PUBLIC_REQUESTS_PER_HOUR", "1")
    data = {**VALID, "csrf": form_token}
    assert web.post("/tempo/request/warranty_claim", data=data, follow_redirects=False).status_code == 303
    before, runs = store_counts(), runs_of_customer_request()
    limited = web.post("/tempo/request/warranty_claim", data=data, follow_redirects=False)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "Too many requests" in limited.text
    after = store_counts()
    assert after.pop("tempo_rate_limit") == before.pop("tempo_rate_limit")  # the same row, counted up
    assert after == before and runs_of_customer_request() == runs
    monkeypatch.setenv("AIRFLOW__TEMPO__PUBLIC_REQUESTS_PER_HOUR", "0")
    assert web.get("/tempo/request").status_code == 404


@pytest.fixture
def client_at(api_app):
    """Clients at other addresses than the ``web`` fixture's."""
    from fastapi.testclient import TestClient

    opened: list[TestClient] = []

    def make(host: str) -> TestClient:
        client = TestClient(api_app, base_url="http://tempo.example.test", client=(host, 50000))
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def test_a_refused_request_counts_too(web, form_token, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TEMPO__PUBLIC_REQUESTS_PER_HOUR", "1")
    bad = web.post("/tempo/request/warranty_claim", data={**VALID, "email": "nope", "csrf": form_token})
    assert bad.status_code == 422
    runs = runs_of_customer_request()
    limited = web.post("/tempo/request/warranty_claim", data={**VALID, "csrf": form_token})
    assert limited.status_code == 429 and "Too many requests" in limited.text
    assert runs_of_customer_request() == runs


def test_one_ipv6_64_and_one_email_address_are_one_client_each(web, form_token, client_at, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TEMPO__PUBLIC_REQUESTS_PER_HOUR", "1")
    first, same_64 = client_at("2001:db8:1:2::1"), client_at("2001:db8:1:2:ffff::2")
    data = {**VALID, "csrf": form_token}
    assert first.post("/tempo/request/warranty_claim", data=data, follow_redirects=False).status_code == 303
    other_email = {**data, "email": "desk@other.example"}
    assert same_64.post("/tempo/request/warranty_claim", data=other_email).status_code == 429
    # Another network, the same address (its case and spaces aside): limited too.
    elsewhere = client_at("192.0.2.7")
    again = {**data, "email": " HELP@initech.example "}
    assert elsewhere.post("/tempo/request/warranty_claim", data=again).status_code == 429


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_request_bigger_than_the_cap_is_refused_before_it_is_read(web, form_token, monkeypatch):
    monkeypatch.setenv("AIRFLOW__TEMPO__PUBLIC_REQUESTS_PER_HOUR", "5")
    monkeypatch.setenv("AIRFLOW__TEMPO__PUBLIC_REQUEST_MAX_MB", "1")
    before, runs = store_counts(), runs_of_customer_request()
    big = [("attachments", ("big.bin", b"x" * (1024 * 1024 + 1), "application/octet-stream"))]
    declared = web.post("/tempo/request/warranty_claim", data={**VALID, "csrf": form_token}, files=big)
    assert declared.status_code == 413 and "at most 1 MB in all" in declared.text

    # Sent without a length: the body is counted as it arrives.
    boundary = "tempo-boundary"
    fields = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in {**VALID, "csrf": form_token}.items()
    )
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="attachments"; filename="b.bin"\r\n\r\n'

    def body():
        yield fields + head.encode()
        for _ in range(40):
            yield b"y" * 64 * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = web.post(
        "/tempo/request/warranty_claim",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert streamed.status_code == 413
    after = store_counts()
    assert after.pop("tempo_rate_limit") == before.pop("tempo_rate_limit") + 1  # counted, once a client
    assert after == before and runs_of_customer_request() == runs


def test_a_forged_status_link_shows_nothing(web):
    assert web.get("/tempo/requests/not-a-token").status_code == 404
    token = links.sign(1, "rob")  # an action link's token is no status token
    assert web.get(f"/tempo/requests/{token}").status_code == 404


# --- accepting or disputing a result ----------------------------------------------------------------

REVIEW_FORM = {
    "fields": [
        {"name": "claim", "type": "text", "required": False, "multiline": True, "max_length": 5000},
        {"name": "claim_files", "type": "file", "required": False, "multiple": True},
    ]
}


@pytest.fixture
def review(web) -> Task:
    """The counterparty's step: Globex is told the result and may accept or dispute it."""
    with write_session() as session:
        process = make_process(
            session,
            dag_id="customer_request",
            template="customer_request",
            counterparty_code="GLOBEX",
            data={"subject": "Valve leaks", "decision_name": "Refund", "explanation": HOSTILE},
        )
        return make_task(
            session,
            process,
            dag_id="customer_request",
            task_id="counterparty_review",
            title="Result of your request: Valve leaks",
            form_schema=REVIEW_FORM,
            outcomes=["accept", "dispute"],
            assignee="counterparty:GLOBEX",
        )


def task_state(task_id: int) -> tuple:
    with read_session() as session:
        task = session.get_one(Task, task_id)
        files = session.scalar(
            select(func.count()).select_from(Attachment).where(Attachment.task_id == task_id)
        )
        return task.status, task.version, task.outcome, task.result, files


def path_of(url: str) -> str:
    return url.removeprefix("http://tempo.example.test")


def test_opening_the_result_link_changes_nothing(web, review):
    url = path_of(links.respond_link(review.id, "GLOBEX"))
    before = task_state(review.id)
    for _ in range(2):
        page = web.get(url)
        assert page.status_code == 200
        assert "Refund" in page.text and 'value="dispute"' in page.text
        assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert task_state(review.id) == before
    # The status page offers the same answer while it waits: a respond link for the same task and
    # counterparty (its signature carries the second it was signed, so compare the claims, not the text).
    status = web.get(path_of(links.request_status_link(review.process_id)))
    offered = re.findall(r'href="[^"]*/respond/([^"/]+)"', status.text)
    assert [links.verify(token, expected_purpose="respond") for token in offered] == [
        links.LinkClaims(task_pk=review.id, username="counterparty:GLOBEX", purpose="respond")
    ]


def test_a_dispute_needs_a_claim_and_keeps_its_files(web, review):
    url = path_of(links.respond_link(review.id, "GLOBEX"))
    token = csrf_of(web.get(url).text)
    before = task_state(review.id)
    assert web.post(url, data={"outcome": "dispute", "claim": "x"}).status_code == 403  # no CSRF token
    no_claim = web.post(
        url,
        data={"csrf": token, "outcome": "dispute"},
        files=[("claim_files", ("a.txt", b"abc", "text/plain"))],
    )
    assert no_claim.status_code == 422 and 'id="error-claim"' in no_claim.text
    odd = web.post(url, data={"csrf": token, "outcome": "shrug"})
    assert odd.status_code == 422 and 'id="error-outcome"' in odd.text
    assert task_state(review.id) == before

    done = web.post(
        url,
        data={"csrf": token, "outcome": "dispute", "claim": "The valve still leaks."},
        files=[("claim_files", ("leak.jpg", b"\xff\xd8 leak", "image/jpeg"))],
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/tempo/requests/")
    status, _, outcome, result, files = task_state(review.id)
    assert (status, outcome, files) == (TaskStatus.COMPLETED, "dispute", 1)
    with read_session() as session:
        [attachment] = session.scalars(select(Attachment).where(Attachment.task_id == review.id)).all()
        assert session.get_one(Task, review.id).completed_by == "counterparty:GLOBEX"
    assert result == {"claim": "The valve still leaks.", "claim_files": [attachment.id]}

    # Replayed: refused, nothing changes; the link now says what happened.
    after = task_state(review.id)
    again = web.post(url, data={"csrf": token, "outcome": "accept"})
    assert again.status_code == 409 and "disputed" in again.text
    assert task_state(review.id) == after
    assert "disputed" in web.get(url).text


def test_a_refused_dispute_keeps_no_file(web, review, tmp_path, monkeypatch):
    # The form refuses the claim (too long) only once the answer is validated, after the page's checks.
    monkeypatch.setenv("AIRFLOW__TEMPO__ATTACHMENTS_PATH", f"file://{tmp_path / 'files'}")
    url = path_of(links.respond_link(review.id, "GLOBEX"))
    token = csrf_of(web.get(url).text)
    before, counts = task_state(review.id), store_counts()
    refused = web.post(
        url,
        data={"csrf": token, "outcome": "dispute", "claim": "x" * 5001},
        files=[("claim_files", ("leak.jpg", b"\xff\xd8 leak", "image/jpeg"))],
    )
    assert refused.status_code == 422 and 'id="error-claim"' in refused.text
    assert task_state(review.id) == before and store_counts() == counts
    assert [p for p in (tmp_path / "files").rglob("*") if p.is_file()] == []


def test_accepting_needs_no_claim(web, review):
    url = path_of(links.respond_link(review.id, "GLOBEX"))
    token = csrf_of(web.get(url).text)
    assert web.post(url, data={"csrf": token, "outcome": "accept"}, follow_redirects=False).status_code == 303
    status, _, outcome, result, files = task_state(review.id)
    assert (status, outcome, result, files) == (
        TaskStatus.COMPLETED,
        "accept",
        {"claim": None, "claim_files": None},
        0,
    )


def test_only_the_counterparty_answers_its_result(web, review):
    before = task_state(review.id)
    # Another counterparty's link, a person's action link, a tampered token: refused.
    assert web.get(path_of(links.respond_link(review.id, "ACME"))).status_code == 403
    assert web.get(f"/tempo/respond/{links.sign(review.id, 'counterparty:GLOBEX')}").status_code == 404
    assert web.get(path_of(links.respond_link(review.id, "GLOBEX")) + "x").status_code == 404
    # Staff cannot answer for the counterparty, not even its responsible specialist.
    # (The request is not among those she may see either: her form carries a token minted for her.)
    token = csrf_token("sandra", f"task:{review.id}")
    refused = web.post(
        f"/tempo/tasks/{review.id}/complete",
        data={"csrf": token, "outcome": "accept"},
        headers=auth("sandra"),
    )
    assert refused.status_code == 403
    assert task_state(review.id) == before


def test_a_request_whose_run_failed_says_so(web):
    from tempo.store.models import ProcessStatus

    with write_session() as session:
        process = make_process(
            session, dag_id="customer_request", template="customer_request", data={"subject": "S"}
        )
        process.status = ProcessStatus.FAILED
    page = web.get(path_of(links.request_status_link(process.id)))
    assert page.status_code == 200 and "Stopped: please contact us" in page.text
