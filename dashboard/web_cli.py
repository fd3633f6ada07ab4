"""``nightcramp serve`` and ``nightcramp users``: the dashboard and its accounts."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from dashboard.users import ROLES, UserError, Users


def add_parsers(sub) -> None:
    sv = sub.add_parser("serve", help="the web dashboard (wearer summaries, clinician review)")
    sv.add_argument("--host", help="listen address (default [dashboard] host, loopback)")
    sv.add_argument("--port", type=int, help="port (default [dashboard] port)")
    sv.add_argument("--services", type=Path)
    sv.set_defaults(func=serve)

    u = sub.add_parser("users", help="dashboard accounts: add, assign, passwd, list")
    usub = u.add_subparsers(metavar="ACTION")
    add = usub.add_parser("add", help="add an account")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--wearer-id", help="for a wearer: the pseudonymous id their nights are stored under "
                     "(default: the account name)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=users_add)
    asg = usub.add_parser("assign", help="let a clinician see a wearer's nights")
    asg.add_argument("clinician")
    asg.add_argument("wearer", help="wearer id")
    asg.set_defaults(func=users_assign)
    pw = usub.add_parser("passwd", help="set a new password (logs the account out everywhere)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(func=users_passwd)
    ls = usub.add_parser("list", help="accounts and assignments")
    ls.set_defaults(func=users_list)
    for p in (add, asg, pw, ls):
        p.add_argument("--services", type=Path)


def _users(args) -> Users:
    from detector.settings import load_services

    return Users(load_services(args.services).dashboard.users_db)


def _password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise ValueError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def users_add(args) -> int:
    try:
        u = _users(args).add(args.name, _password(args), args.role, args.wearer_id)
    except UserError as exc:
        raise ValueError(str(exc)) from None
    print(f"added {u.role} {u.name}" + (f" (wearer id {u.wearer})" if u.wearer else ""))
    return 0


def users_assign(args) -> int:
    try:
        _users(args).assign(args.clinician, args.wearer)
    except UserError as exc:
        raise ValueError(str(exc)) from None
    print(f"{args.clinician} now sees the nights of {args.wearer}")
    return 0


def users_passwd(args) -> int:
    try:
        _users(args).passwd(args.name, _password(args))
    except UserError as exc:
        raise ValueError(str(exc)) from None
    print(f"password of {args.name} changed; its sessions are logged out")
    return 0


def users_list(args) -> int:
    users = _users(args)
    for u in users.all():
        extra = f" wearer id {u.wearer}" if u.wearer else ""
        if u.role == "clinician":
            extra = f" sees {', '.join(sorted(users.assigned(u.name))) or 'nobody yet'}"
        print(f"{u.name:20} {u.role:10}{extra}")
    return 0


def serve(args) -> int:
    import uvicorn

    from dashboard.web.app import create_app
    from detector.settings import load_services

    sv = load_services(args.services)
    host, port = args.host or sv.dashboard.host, args.port or sv.dashboard.port
    app = create_app(sv)
    print(f"nightcramp dashboard on http://{host}:{port}/ (Ctrl-C stops it)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
