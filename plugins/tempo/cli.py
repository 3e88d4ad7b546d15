"""The ``tempo`` command: store migrations, the directory, YAML templates, tasks, the options."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Collection, Sequence


def _db_upgrade(args: argparse.Namespace) -> int:
    from tempo.store.migrate import current_revision, upgrade

    upgrade(args.url)
    print(f"[tempo] store at revision {current_revision(args.url)}")
    return 0


def _db_current(args: argparse.Namespace) -> int:
    from tempo.store.migrate import current_revision, head_revision

    current, head = current_revision(args.url), head_revision()
    print(f"current: {current or '(empty)'}  head: {head}")
    return 0 if current == head else 1


def _directory_load(args: argparse.Namespace) -> int:
    from tempo.directory import DirectoryError, load_directory_file

    try:
        summary = load_directory_file(args.file, args.url)
    except DirectoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("Nothing was changed.", file=sys.stderr)
        return 2
    print(
        f"[tempo] directory loaded: {summary.units} units, {summary.roles} roles, "
        f"{summary.people} people, {summary.counterparties} counterparties"
    )
    return 0


def _templates_check(args: argparse.Namespace) -> int:
    from tempo.yaml_templates import TemplateError, read_template

    failed = 0
    for path in args.files:
        try:
            spec = read_template(path, source=path)
        except TemplateError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        print(f"ok: {path} (process {spec.id}, {len(spec.steps)} steps)")
    return 2 if failed else 0


def _tasks_list(args: argparse.Namespace) -> int:
    from tempo.store.engine import read_session
    from tempo.store.models import ACTIVE_TASK_STATUSES, TaskStatus
    from tempo.store.tasks import list_tasks

    statuses = [TaskStatus(s) for s in args.status] if args.status else list(ACTIVE_TASK_STATUSES)
    with read_session(args.url) as session:
        tasks = list_tasks(
            session, statuses=statuses, assignee=args.assignee, dag_id=args.dag_id, limit=args.limit
        )
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": t.id,
                        "dag_id": t.dag_id,
                        "run_id": t.run_id,
                        "task_id": t.task_id,
                        "title": t.title,
                        "status": t.status.value,
                        "assignee": t.assignee,
                        "role": t.candidate_role,
                        "due_at": t.due_at.isoformat() if t.due_at else None,
                        "version": t.version,
                    }
                    for t in tasks
                ],
                indent=2,
            )
        )
        return 0
    if not tasks:
        print("no tasks")
        return 0
    rows = [("ID", "STATUS", "ASSIGNEE", "DUE", "TITLE")]
    for t in tasks:
        who = t.assignee or (f"@{t.candidate_role}" if t.candidate_role else f"#{t.candidate_unit or '-'}")
        due = t.due_at.strftime("%Y-%m-%d %H:%M") if t.due_at else "-"
        rows.append((str(t.id), t.status.value, who, due, t.title))
    print(_columns(rows, right_aligned={0}))
    return 0


def _columns(rows: Sequence[Sequence[str]], right_aligned: Collection[int] = ()) -> str:
    """``rows`` as text columns two spaces apart, each as wide as its widest cell (the last one not
    padded: a long title runs on)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if i in right_aligned else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        cells[-1] = row[-1]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _tasks_complete(args: argparse.Namespace) -> int:
    from tempo.actions import complete
    from tempo.forms import FormErrors
    from tempo.store.tasks import TaskConflict, TaskNotFound

    answers: dict[str, object] = {}
    for item in args.field or []:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"error: --field takes NAME=VALUE, not {item!r}", file=sys.stderr)
            return 2
        answers[name] = value
    try:
        complete(args.task_id, actor=args.by, answers=answers, outcome=args.outcome)
    except FormErrors as exc:
        for name, message in exc.errors.items():
            print(f"error: {name}: {message}", file=sys.stderr)
        return 2
    except TaskNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TaskConflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(f"[tempo] task {args.task_id} completed by {args.by}")
    return 0


def _config_list(_args: argparse.Namespace) -> int:
    from tempo.config import OPTIONS

    for option in OPTIONS:
        print(f"{option.key:<22} default: {option.default}\n{'':<22} {option.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tempo", description="Tempo: human steps in Airflow processes.")
    parser.add_argument("--url", default=None, help="store URL (default: [tempo] sql_alchemy_conn)")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="Tempo's store").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="create or migrate Tempo's tables").set_defaults(func=_db_upgrade)
    db.add_parser("current", help="show the store's revision").set_defaults(func=_db_current)

    directory = commands.add_parser("directory", help="people, units, roles, counterparties")
    directory_commands = directory.add_subparsers(dest="directory_command", required=True)
    load = directory_commands.add_parser("load", help="upsert a directory YAML file (all or nothing)")
    load.add_argument("file")
    load.set_defaults(func=_directory_load)

    templates = commands.add_parser("templates", help="process templates in YAML").add_subparsers(
        dest="templates_command", required=True
    )
    check = templates.add_parser(
        "check", help="check YAML templates; every problem with file, line, step, field"
    )
    check.add_argument("files", nargs="+", metavar="FILE.yaml")
    check.set_defaults(func=_templates_check)

    tasks = commands.add_parser("tasks", help="human tasks").add_subparsers(
        dest="tasks_command", required=True
    )
    listing = tasks.add_parser("list", help="list tasks (open and claimed by default)")
    listing.add_argument("--status", action="append", choices=[s.value for s in _task_statuses()])
    listing.add_argument("--assignee")
    listing.add_argument("--dag-id")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_tasks_list)

    complete = tasks.add_parser("complete", help="complete a task as a person would (validated)")
    complete.add_argument("task_id", type=int)
    complete.add_argument("--by", required=True, help="username of the person acting")
    complete.add_argument("--outcome")
    complete.add_argument("--field", action="append", metavar="NAME=VALUE")
    complete.set_defaults(func=_tasks_complete)

    commands.add_parser("config", help="list the [tempo] options").set_defaults(func=_config_list)
    return parser


def _task_statuses() -> list:
    from tempo.store.models import TaskStatus

    return list(TaskStatus)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
