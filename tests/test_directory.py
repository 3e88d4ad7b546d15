from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from tempo import directory
from tempo.directory import DirectoryError, load_directory_file, parse_directory
from tempo.store.engine import read_session
from tempo.store.models import Counterparty, Person, PersonRole, Role, Unit
from tests.conftest import REPO

DEMO = REPO / "include" / "directory.yaml"


def _snapshot() -> dict[str, list[tuple]]:
    with read_session() as session:
        return {
            "units": [
                (u.code, u.name, u.parent_code, u.head_username)
                for u in session.scalars(select(Unit).order_by(Unit.code))
            ],
            "people": [
                (p.username, p.name, p.email, p.unit_code, p.manager_username, p.active)
                for p in session.scalars(select(Person).order_by(Person.username))
            ],
            "roles": [(r.code, r.name) for r in session.scalars(select(Role).order_by(Role.code))],
            "person_roles": sorted((pr.username, pr.role_code) for pr in session.scalars(select(PersonRole))),
            "counterparties": [
                (c.code, c.name, c.email, c.responsible_username)
                for c in session.scalars(select(Counterparty).order_by(Counterparty.code))
            ],
        }


def test_demo_directory_loads_and_answers_who_questions(store):
    summary = load_directory_file(DEMO)
    assert summary.people >= 3 and summary.units >= 3
    with read_session() as session:
        assert directory.manager_of(session, "sandra").username == "helen"
        assert directory.head_of_unit(session, "customer_service").username == "helen"
        assert [p.username for p in directory.people_with_role(session, "customer_service")] == ["sandra"]
        assert [p.username for p in directory.people_with_role(session, "repair_technician")] == ["john"]
        assert directory.get_person(session, "rob").unit_code == "support"
        assert directory.responsible_for(session, "GLOBEX").username == "sandra"


def test_loading_twice_changes_nothing(store):
    load_directory_file(DEMO)
    first = _snapshot()
    load_directory_file(DEMO)
    assert _snapshot() == first


def test_reload_updates_changed_entries(store, tmp_path):
    load_directory_file(DEMO)
    changed = DEMO.read_text().replace("email: sandra@example.com", "email: sandra.new@example.com")
    changed = changed.replace("roles: [customer_service]}", "roles: [customer_service, financial_manager]}")
    path = tmp_path / "dir.yaml"
    path.write_text(changed)
    load_directory_file(path)
    with read_session() as session:
        assert session.get_one(Person, "sandra").email == "sandra.new@example.com"
        assert sorted(directory.roles_of(session, "sandra")) == ["customer_service", "financial_manager"]


def test_manager_falls_back_to_unit_head(store, tmp_path):
    path = tmp_path / "dir.yaml"
    path.write_text(
        "units:\n  - {code: top, name: Top, head: boss}\n  - {code: team, name: Team, parent: top}\n"
        "people:\n  - {username: boss, name: Boss, email: boss@example.com, unit: top}\n"
        "  - {username: ann, name: Ann, email: ann@example.com, unit: team}\n"
    )
    load_directory_file(path)
    with read_session() as session:
        assert directory.manager_of(session, "ann").username == "boss"
        assert directory.manager_of(session, "boss") is None


BAD_FILES = [
    ("people:\n  - {username: ann, name: Ann, email: not-an-email}\n", r"dir\.yaml:2: people\.0\.email"),
    (
        "people:\n  - username: ann\n    name: Ann\n    email: ann@example.com\n    unit: nowhere\n",
        r"dir\.yaml:5: people\.0\.unit: unknown unit 'nowhere'",
    ),
    (
        "roles:\n  - {code: a, name: A}\n"
        "people:\n  - {username: ann, name: Ann, email: a@example.com, roles: [a, b]}\n",
        r"dir\.yaml:4: people\.0\.roles\.1: unknown role 'b'",
    ),
    (
        "people:\n  - {username: ann, name: Ann, email: a@example.com, shoe_size: 42}\n",
        r"dir\.yaml:2: people\.0\.shoe_size",
    ),
    ("units:\n  - {code: a, name: A, parent: b}\n  - {code: b, name: B, parent: a}\n", r"its own ancestor"),
    (
        "people:\n  - {username: ann, name: Ann, email: a@example.com}\n"
        "  - {username: ann, name: Anne, email: b@example.com}\n",
        r"dir\.yaml:3: people\.1\.username: duplicate username 'ann'",
    ),
    (
        "counterparties:\n  - {code: A, name: A, email: desk@a.example}\n"
        "  - {code: B, name: B, email: Desk@A.example}\n",
        r"dir\.yaml:3: counterparties\.1\.email: duplicate email 'desk@a\.example'",
    ),
    ("people: [\n", r"dir\.yaml:\d+: not valid YAML"),
    ("", r"the file is empty"),
]


@pytest.mark.parametrize(
    ("content", "message"),
    BAD_FILES,
    ids=[
        "bad-email",
        "unknown-unit",
        "unknown-role",
        "unknown-field",
        "unit-cycle",
        "duplicate",
        "duplicate-counterparty-email",
        "broken-yaml",
        "empty",
    ],
)
def test_bad_file_names_line_and_field_and_changes_nothing(store, tmp_path, content, message):
    load_directory_file(DEMO)
    before = _snapshot()
    path = tmp_path / "dir.yaml"
    path.write_text(content)
    with pytest.raises(DirectoryError, match=message):
        load_directory_file(path)
    assert _snapshot() == before


def test_file_may_reference_entries_already_in_the_store(store, tmp_path):
    load_directory_file(DEMO)
    path = tmp_path / "more.yaml"
    path.write_text("counterparties:\n  - {code: INITECH, name: Initech, responsible: sandra}\n")
    load_directory_file(path)
    with read_session() as session:
        assert directory.responsible_for(session, "INITECH").username == "sandra"
        assert session.scalar(select(func.count()).select_from(Counterparty)) == 3


def test_parse_error_lists_every_problem():
    with pytest.raises(DirectoryError) as info:
        parse_directory(
            "people:\n  - {username: a, name: A, email: x}\n  - {username: b, name: '', email: y}\n",
            source="f.yaml",
        )
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith("f.yaml:") for line in lines)


def test_missing_file_is_a_clear_error(store):
    with pytest.raises(DirectoryError, match="cannot read"):
        load_directory_file(Path("/nonexistent/dir.yaml"))
