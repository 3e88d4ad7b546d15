"""The JSON API fuzzed from its own OpenAPI description (schemathesis), through Airflow's real API
server app with Airflow's authentication, on SQLite and PostgreSQL.

Every generated request (valid and invalid bodies, paths and queries; ids of real rows and made-up
ones; form answers keyed by the real fields) must answer below 500, and every 4xx must leave the
store exactly as it was (``tests.fingerprint``). ``TEMPO_FUZZ_CASES`` sets the number of requests
per backend: a small number in the default suite, 10,000 through ``make fuzz``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tempo.attachments import add_attachment
from tempo.store.engine import write_session
from tests.conftest import REPO
from tests.factories import make_process, make_task
from tests.fingerprint import changed_tables, store_fingerprint
from tests.web.conftest import token_for

CASES = int(os.environ.get("TEMPO_FUZZ_CASES", "150"))
#: Where ``make fuzz`` collects the numbers for bench/RESULTS.md (one JSON line per run).
SUMMARY = os.environ.get("TEMPO_FUZZ_SUMMARY")

EVERY_FIELD = {
    "fields": [
        {"name": "so_number", "type": "text", "pattern": r"SO-\d{6}", "required": True, "max_length": 20},
        {"name": "note", "type": "text", "required": False, "max_length": 50},
        {"name": "quantity", "type": "number", "minimum": 1, "maximum": 100, "integer": True},
        {"name": "price", "type": "number", "required": False},
        {"name": "ship_on", "type": "date", "earliest": "2026-01-01"},
        {"name": "priority", "type": "choice", "choices": ["low", "high"]},
        {"name": "tags", "type": "choice", "choices": ["a", "b"], "multiple": True, "required": False},
        {"name": "urgent", "type": "checkbox"},
        {"name": "contact", "type": "email", "required": False},
        {"name": "drawings", "type": "file", "multiple": True, "required": False},
    ]
}
FIELD_NAMES = [f["name"] for f in EVERY_FIELD["fields"]]

# Values of every JSON kind, and the strings that broke things before: NUL, lone surrogates, digits
# of other scripts, huge numbers, datetimes given for dates.
TRICKY_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "SO-123456\x00",
        "\ud800",
        "\u0663",
        "\uff13",
        "\u00b2",
        "1e400",
        "-0",
        "9" * 5000,
        "2026-02-03T10:00:00",
        "2026-02-30",
        "0001-01-01",
        "SO-123456",
        "high",
        "on",
        "a@b.cc",
        "<script>alert(1)</script>",
    ]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON carries no NaN
    | st.text()
    | TRICKY_STRINGS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
REAL_ANSWERS = st.dictionaries(st.sampled_from(FIELD_NAMES), JSON_VALUES, max_size=len(FIELD_NAMES))


@dataclass
class Seeded:
    task_ids: list[int]
    process_ids: list[int]
    attachment_ids: list[int]
    dag_ids: list[str] = field(default_factory=lambda: ["rma_sales_order", "rma_sales_order"])


@dataclass
class Tally:
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    operations: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    changed_after_4xx: list[str] = field(default_factory=list)


@pytest.fixture
def seeded(api_app, store) -> Seeded:
    """The demo directory, and tasks of every kind of form that Sandra may act on."""
    from tempo.directory import load_directory_file

    load_directory_file(REPO / "include" / "directory.yaml")
    with write_session() as session:
        process = make_process(
            session, dag_id="rma_sales_order", template="rma_sales_order", title="RMA-1", requester="rob"
        )
        tasks = [
            make_task(
                session,
                process,
                dag_id="rma_sales_order",
                task_id=f"step_{n}",
                title=f"Step {n}",
                form_schema=EVERY_FIELD,
                outcomes=outcomes,
                **who,
            )
            for n, (outcomes, who) in enumerate(
                [
                    ([], {"candidate_role": "customer_service"}),
                    (["approve", "reject"], {"assignee": "sandra"}),
                    ([], {"assignee": "sandra"}),
                    ([], {"assignee": "john"}),
                ]
            )
        ]
    attachment = add_attachment(
        tasks[0].id, actor="sandra", filename="quote.pdf", content_type="application/pdf", data=b"%PDF"
    )
    return Seeded([t.id for t in tasks], [process.id], [attachment.id])


def fuzz_cases(operation, seeded: Seeded):
    """Requests of one operation, valid and invalid, often aimed at real rows and real fields."""
    generated = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )
    real_ids = {
        "task_id": st.sampled_from(seeded.task_ids),
        "attachment_id": st.sampled_from(seeded.attachment_ids),
        "dag_id": st.sampled_from(seeded.dag_ids),
    }

    @st.composite
    def aimed(draw):
        case = draw(generated)
        if case.path_parameters and draw(st.integers(0, 3)):  # three times out of four: a real row
            for name in list(case.path_parameters):
                if name in real_ids:
                    case.path_parameters[name] = draw(real_ids[name])
        if case.operation.path.endswith("/complete") and isinstance(case.body, dict) and draw(st.booleans()):
            case.body["answers"] = draw(REAL_ANSWERS)
            if draw(st.booleans()):
                case.body["outcome"] = draw(st.sampled_from(["approve", "reject", None, "\x00", ""]))
        user = draw(st.sampled_from(["sandra", "sandra", "sandra", "john", "admin", "vera"]))
        return case, user

    return aimed()


def run_fuzz(api_app, seeded: Seeded, cases: int) -> Tally:
    schema = schemathesis.openapi.from_asgi("/tempo/openapi.json", api_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    tokens = {u: token_for(u) for u in ("sandra", "john", "admin", "vera")}
    tally = Tally()
    for operation in operations:  # an even share each: no operation is left out by chance
        fuzz_operation(operation, seeded, tokens, tally, max(cases // len(operations), 10))
    return tally


def fuzz_operation(operation, seeded: Seeded, tokens: dict[str, str], tally: Tally, cases: int) -> None:
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzz_cases(operation, seeded))
    def one(drawn):
        case, user = drawn
        before = store_fingerprint()
        response = case.call(headers={"Authorization": f"Bearer {tokens[user]}"})
        tally.cases += 1
        tally.statuses[response.status_code] += 1
        tally.operations[case.operation.label] += 1
        if response.status_code >= 500:
            tally.server_errors.append(f"{response.status_code} {case.as_curl_command()}")
        elif 400 <= response.status_code < 500:
            changed = changed_tables(before, store_fingerprint())
            if changed:
                tally.changed_after_4xx.append(f"{changed} {response.status_code} {case.as_curl_command()}")

    one()


def test_no_request_answers_5xx_and_no_refusal_changes_the_store(api_app, seeded, store_url):
    tally = run_fuzz(api_app, seeded, CASES)
    backend = "postgresql" if store_url.startswith("postgresql") else "sqlite"
    summary = {
        "backend": backend,
        "cases": tally.cases,
        "5xx": len(tally.server_errors),
        "store_changed_after_4xx": len(tally.changed_after_4xx),
        "statuses": dict(sorted(tally.statuses.items())),
        "operations": dict(sorted(tally.operations.items())),
    }
    print(json.dumps(summary))
    if SUMMARY:
        with Path(SUMMARY).open("a") as out:
            out.write(json.dumps({"test": "api", **summary}) + "\n")
    assert tally.cases >= CASES * 0.9, "hypothesis stopped early"
    assert not tally.server_errors, "\n".join(tally.server_errors[:10])
    assert not tally.changed_after_4xx, "\n".join(tally.changed_after_4xx[:10])
    # The fuzzing reached every operation, and got past validation somewhere.
    schema = schemathesis.openapi.from_asgi("/tempo/openapi.json", api_app)
    assert len(tally.operations) == len(list(schema.get_all_operations()))
    assert any(200 <= status < 300 for status in tally.statuses)


# --- what fuzzing found, through the web (each a 500 before, now a field error and no change) -----


def test_ids_beyond_the_id_column_are_422(web, seeded):
    from tests.web.conftest import auth

    before = store_fingerprint()
    for url in (
        f"/tempo/api/v1/tasks/{2**63}",
        f"/tempo/tasks/{2**31}",
        f"/tempo/api/v1/attachments/{2**70}",
    ):
        response = web.get(url, headers=auth("sandra"))
        assert response.status_code == 422, url
    response = web.post(
        f"/tempo/api/v1/tasks/{seeded.task_ids[1]}/claim",
        json={"expected_version": 2**63},
        headers=auth("sandra"),
    )
    assert response.status_code == 422 and "expected_version" in response.text
    assert store_fingerprint() == before


def test_nul_in_queries_bodies_and_forms_is_422(web, seeded):
    from tests.web.conftest import auth

    sandra = auth("sandra")
    before = store_fingerprint()
    inbox = web.get("/tempo/api/v1/tasks", params={"q": "a\x00b"}, headers=sandra)
    assert inbox.status_code == 422 and inbox.json()["detail"]["errors"] == {"q": UNSAFE}
    report = web.get("/tempo/reports/processes", params={"requester": "\x00"}, headers=sandra)
    assert report.status_code == 422 and "requester" in report.text
    task = seeded.task_ids[1]
    comment = web.post(f"/tempo/api/v1/tasks/{task}/comments", json={"text": "hi\x00"}, headers=sandra)
    assert comment.status_code == 422 and comment.json()["detail"]["errors"] == {"text": UNSAFE}
    answer = web.post(
        f"/tempo/api/v1/tasks/{task}/complete",
        json={"answers": {**VALID_ANSWERS, "so_number": "SO-123456\x00"}, "outcome": "approve"},
        headers=sandra,
    )
    assert answer.status_code == 422 and answer.json()["detail"]["errors"] == {"so_number": UNSAFE}
    token = csrf_on(web, f"/tempo/tasks/{task}", sandra)
    delegate = web.post(
        f"/tempo/tasks/{task}/delegate", data={"csrf": token, "to": "helen\x00"}, headers=sandra
    )
    assert delegate.status_code == 422
    assert store_fingerprint() == before


def test_page_form_version_is_checked_and_not_taken_for_an_answer(web, seeded):
    from tests.web.conftest import auth

    sandra = auth("sandra")
    task = seeded.task_ids[1]
    page = web.get(f"/tempo/tasks/{task}", headers=sandra).text
    token = csrf_on(web, f"/tempo/tasks/{task}", sandra)
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    before = store_fingerprint()
    for bad in ("\u00b2", "1" * 30, "-1", "\u0663"):
        data = {"csrf": token, "version": bad, "outcome": "approve", **VALID_ANSWERS}
        response = web.post(f"/tempo/tasks/{task}/complete", data=data, headers=sandra)
        assert response.status_code == 422, bad
        assert "reload the page" in response.text
    assert store_fingerprint() == before
    # The page's own form, version included, completes the task.
    data = {"csrf": token, "version": version, "outcome": "approve", **VALID_ANSWERS}
    done = web.post(f"/tempo/tasks/{task}/complete", data=data, headers=sandra, follow_redirects=False)
    assert done.status_code == 303


def test_file_answers_must_be_attachments_of_the_task(web, seeded):
    from tempo.attachments import add_attachment
    from tests.web.conftest import auth

    with write_session() as session:
        elsewhere = make_task(session, title="Another process", assignee="sandra")
    foreign = add_attachment(
        elsewhere.id, actor="sandra", filename="x.txt", content_type="text/plain", data=b"x"
    )
    url = f"/tempo/api/v1/tasks/{seeded.task_ids[1]}/complete"
    before = store_fingerprint()
    for drawings in ([foreign.id], [999999], [True], ["1e3"]):
        answers = {**VALID_ANSWERS, "drawings": drawings}
        response = web.post(url, json={"answers": answers, "outcome": "approve"}, headers=auth("sandra"))
        assert response.status_code == 422, drawings
        assert set(response.json()["detail"]["errors"]) == {"drawings"}
    assert store_fingerprint() == before
    answers = {**VALID_ANSWERS, "drawings": [seeded.attachment_ids[0]]}
    ok = web.post(url, json={"answers": answers, "outcome": "approve"}, headers=auth("sandra"))
    assert ok.status_code == 200 and ok.json()["result"]["drawings"] == seeded.attachment_ids


def test_report_dates_near_the_ends_of_the_calendar_are_422(web, seeded):
    from tests.web.conftest import auth

    for params in ({"to": "0001-01-01"}, {"from": "9999-12-31", "to": "9999-12-31"}):
        response = web.get("/tempo/api/v1/reports/funnel", params=params, headers=auth("admin"))
        assert response.status_code == 422 and set(response.json()["detail"]["errors"]) <= {"from", "to"}


VALID_ANSWERS = {
    "so_number": "SO-123456",
    "quantity": "3",
    "ship_on": "2026-02-03",
    "priority": "high",
    "urgent": "on",
}
UNSAFE = "Remove the control characters (such as NUL) from the text."


def csrf_on(web, url, headers):
    return re.search(r'name="csrf" value="([^"]+)"', web.get(url, headers=headers).text).group(1)
