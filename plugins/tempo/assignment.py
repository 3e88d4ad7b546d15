"""Who a step is for: a person, a role's queue, a unit's queue, the requester's manager, the person
responsible for the process's counterparty, or a callable deciding at run time.

The same objects name recipients of notifications (``NotifyStep(to=Requester())``).
Resolution happens in ``execute()`` against the directory, never at DAG parse time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

# Declaring an assignment in a DAG file must stay cheap: every worker parses the DAG before each
# task. The directory and the store are only imported when an assignment is resolved.
if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tempo.store.models import Person as DirectoryPerson
    from tempo.store.models import Process


class AssignmentError(LookupError):
    """The directory cannot say who this step is for."""


@dataclass(frozen=True)
class Contact:
    """Someone outside the directory who is written to: a counterparty's contact address.

    It quacks like a directory person for mail templates (``username``, ``name``, ``email``); its
    ``action_link`` leads to the counterparty's own answer page, as it has no login and no inbox.
    """

    username: str
    name: str
    email: str
    counterparty_code: str

    def action_link(self, task_pk: int) -> str:
        from tempo import links

        return links.respond_link(task_pk, self.counterparty_code)


@dataclass(frozen=True)
class Resolved:
    """Either one assignee or a queue (role and/or unit) that candidates claim from.

    With ``dag_id`` (the process the task belongs to) absences count: the recipients are the
    assignee's stand-in, and a queue's members who are present (their stand-ins when nobody is).
    """

    assignee: str | None = None
    role: str | None = None
    unit: str | None = None
    #: Outside recipients (a counterparty): when set, they are the recipients.
    contacts: tuple[Contact, ...] = ()
    #: The absent person ``assignee`` stands in for (``standing_in``).
    acting_for: str | None = None
    dag_id: str | None = None

    def standing_in(self, session: Session, dag_id: str) -> Resolved:
        """This assignment once absences are counted: an absent assignee's task goes to their
        stand-in (``directory.stand_in``), who holds it for them; so does a queue's whose members are
        all away, to the stand-in of its first member (else nobody who may take it would hear of it)."""
        from tempo import directory

        counted = replace(self, dag_id=dag_id)
        if self.contacts:
            return counted
        if self.assignee:
            people = [p for p in [directory.active_person(session, self.assignee)] if p is not None]
        else:
            people = self.recipients(session)
        stand_ins = [directory.stand_in(session, p, dag_id) for p in people]
        if not people or any(s.username == p.username for p, s in zip(people, stand_ins, strict=True)):
            return counted
        return Resolved(assignee=stand_ins[0].username, acting_for=people[0].username, dag_id=dag_id)

    def recipients(self, session: Session) -> list[Any]:
        from tempo import directory

        if self.contacts:
            return list(self.contacts)
        if self.assignee:
            person = directory.active_person(session, self.assignee)
            return [self._stand_in(session, person)] if person is not None else []
        people = directory.people_with_role(session, self.role) if self.role else []
        if self.unit:
            in_unit = directory.people_in_unit(session, self.unit)
            people = [p for p in people if p.unit_code == self.unit] if self.role else in_unit
        if self.dag_id is None:
            return people
        stand_ins = [self._stand_in(session, p) for p in people]
        present = [p for p, s in zip(people, stand_ins, strict=True) if s.username == p.username]
        return present or list({s.username: s for s in stand_ins}.values())

    def _stand_in(self, session: Session, person: DirectoryPerson) -> DirectoryPerson:
        from tempo import directory

        return person if self.dag_id is None else directory.stand_in(session, person, self.dag_id)


class Assignment:
    def resolve(self, session: Session, process: Process, context: Any = None) -> Resolved:
        raise NotImplementedError


@dataclass(frozen=True)
class Person(Assignment):
    username: str

    def resolve(self, session: Session, process: Process, context: Any = None) -> Resolved:
        from tempo import directory

        person = directory.get_person(session, self.username)
        if person is None:
            raise AssignmentError(f"person {self.username!r} is not in the directory")
        if not person.active:
            raise AssignmentError(f"person {self.username!r} is deactivated in the directory")
        return Resolved(assignee=self.username)


@dataclass(frozen=True)
class Role(Assignment):
    """The role's queue; ``unit`` narrows it to the role's holders in that unit."""

    code: str
    unit: str | None = None

    def resolve(self, session: Session, process: Process, context: Any = None) -> Resolved:
        resolved = Resolved(role=self.code, unit=self.unit)
        if not resolved.recipients(session):
            raise AssignmentError(
                f"nobody holds role {self.code!r}" + (f" in unit {self.unit!r}" if self.unit else "")
            )
        return resolved


@dataclass(frozen=True)
class Unit(Assignment):
    code: str

    def resolve(self, session: Session, process: Process, context: Any = None) -> Resolved:
        from tempo import directory

        if not directory.people_in_unit(session, self.code):
            raise AssignmentError(f"unit {self.code!r} has nobody in it")
        return Resolved(unit=self.code)


@dataclass(frozen=True)
class Requester(Assignment):
    """The person who started the process."""

    def resolve(self, session: Session, process: Process, context: Any = None) -> Resolved:
        if not process.requester:
            raise AssignmentError("the process has no requester")
        return Person(process.requester).resolve(session, process)


@dataclass(frozen=True)
class RequesterManager(Assignment):
    def resolve(self, session: Session, process: Process, context: Any = None) -> Resolved:
        from tempo import directory

        if not process.requester:
            raise AssignmentError("the process has no requester, so no requester's manager")
        manager = directory.manager_of(session, process.requester)
        if manager is None:
            raise AssignmentError(f"{process.requester!r} has no active manager in the directory")
        return Resolved(assignee=manager.username)


@dataclass(frozen=True)
class CounterpartyResponsible(Assignment):
    def resolve(self, session: Session, process: Process, context: Any = None) -> Resolved:
        from tempo import directory

        if not process.counterparty_code:
            raise AssignmentError("the process has no counterparty")
        person = directory.responsible_for(session, process.counterparty_code)
        if person is None:
            raise AssignmentError(
                f"nobody active is responsible for counterparty {process.counterparty_code!r}"
            )
        return Resolved(assignee=person.username)


@dataclass(frozen=True)
class CounterpartyContact(Assignment):
    """The process's counterparty itself, at the email of its card.

    As a step's assignee the task belongs to nobody in the directory (``counterparty:<code>``): only
    the counterparty answers it, through the signed link of its email.
    """

    def resolve(self, session: Session, process: Process, context: Any = None) -> Resolved:
        from tempo.store.models import Counterparty

        code = process.counterparty_code
        card = session.get(Counterparty, code) if code else None
        if card is None:
            raise AssignmentError("the process has no counterparty")
        if not card.email:
            raise AssignmentError(f"counterparty {code!r} has no email address")
        contact = Contact(
            username=f"counterparty:{card.code}",
            name=card.name,
            email=card.email,
            counterparty_code=card.code,
        )
        return Resolved(assignee=contact.username, contacts=(contact,))


@dataclass(frozen=True)
class HeadOfUnit(Assignment):
    """The head of the unit of whoever ``of`` names (one person); when that person heads the unit
    themselves, or the head is deactivated, the active head of the nearest unit above."""

    of: Assignment

    def resolve(self, session: Session, process: Process, context: Any = None) -> Resolved:
        from tempo import directory

        inner = self.of.resolve(session, process, context)
        if not inner.assignee:
            raise AssignmentError("HeadOfUnit needs one person, not a queue")
        person = directory.get_person(session, inner.assignee)
        unit_code = person.unit_code if person else None
        while unit_code:
            unit = directory.get_unit(session, unit_code)
            if unit is None:
                break
            head = directory.active_person(session, unit.head_username) if unit.head_username else None
            if head is not None and head.username != inner.assignee:
                return Resolved(assignee=head.username)
            unit_code = unit.parent_code
        raise AssignmentError(f"nobody heads a unit above {inner.assignee!r}")


@dataclass(frozen=True)
class Decide(Assignment):
    """A callable ``(context, process) -> Assignment | username`` deciding when the step runs."""

    function: Callable[[Any, Process], Assignment | str]

    def resolve(self, session: Session, process: Process, context: Any = None) -> Resolved:
        choice = self.function(context, process)
        if isinstance(choice, str):
            choice = Person(choice)
        if not isinstance(choice, Assignment) or isinstance(choice, Decide):
            raise AssignmentError(
                f"{self.function!r} must return a username or an assignment, not {choice!r}"
            )
        return choice.resolve(session, process, context)


def as_assignment(value: Assignment | str | Callable[..., Any]) -> Assignment:
    """``"sandra"`` means ``Person("sandra")``; a plain callable means ``Decide(callable)``."""
    if isinstance(value, Assignment):
        return value
    if isinstance(value, str):
        return Person(value)
    if callable(value):
        return Decide(value)
    raise TypeError(f"cannot assign a step to {value!r}")
