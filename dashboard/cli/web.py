"""``nightcramp serve`` and ``nightcramp users``: the dashboard and its accounts."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from dashboard.roles import ROLES, UserError


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
    asg.add_argument("--create", action="store_true",
                     help="assign a wearer who has no account and no stored night yet")
    asg.set_defaults(func=users_assign)
    pw = usub.add_parser("passwd", help="set a new password (logs the account out everywhere)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(func=users_passwd)
    ls = usub.add_parser("list", help="accounts and assignments")
    ls.set_defaults(func=users_list)
    sen = usub.add_parser("add-sensor", help="a broker account for a wearer's collector (it may publish "
                          "only that wearer's frames); prints where its secret file is")
    sen.add_argument("wearer", help="wearer id")
    sen.set_defaults(func=users_add_sensor)
    rm = usub.add_parser("remove-sensor", help="delete a wearer's broker account (its collector is refused)")
    rm.add_argument("wearer", help="wearer id")
    rm.set_defaults(func=users_remove_sensor)
    sh = usub.add_parser("shard", help="which InfluxDB instance keeps a wearer ([store] shards), or put "
                         "a new wearer on one before its first night")
    sh.add_argument("wearer", help="wearer id")
    sh.add_argument("shard", nargs="?", help="main or a name from [store] shards")
    sh.set_defaults(func=users_shard)
    for p in (add, asg, pw, ls, sen, rm, sh):
        p.add_argument("--services", type=Path)


def _users(args):
    from dashboard.users import Users
    from detector.service.settings import load_services

    return Users(load_services(args.services).dashboard.users_db)


def users_shard(args) -> int:
    """Show or set the InfluxDB instance of a wearer (the map kept with the accounts)."""
    from detector.service.settings import load_services
    from detector.store.shards import MAIN, WearerMap
    from ingest.wire.ids import check_id

    sv = load_services(args.services)
    wearer = check_id(args.wearer, "wearer")
    if not sv.store.shards:
        raise ValueError("[store] shards names no further InfluxDB instance: every wearer is on [store] url")
    m = WearerMap(sv.dashboard.users_db, [MAIN, *sv.store.shards])
    if args.shard:
        if wearer in m.all() and (_stored_nights(args.services, wearer) or 0) > 0:
            raise ValueError(f"wearer {wearer} already has nights on shard {m.shard_of(wearer)}: moving them "
                             "is not done by nightcramp (copy them with InfluxDB's tools first)")
        m.assign(wearer, args.shard)
    shard = m.shard_of(wearer)
    url = sv.store.url if shard == MAIN else sv.store.shards[shard]
    print(f"{wearer}: shard {shard} ({url})")
    return 0


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


def _stored_nights(services: Path | None, wearer: str) -> int | None:
    """How many nights the store holds for ``wearer``; None when the store cannot be asked."""
    from detector.service.settings import load_services
    from detector.store.accounts import settings_for
    from detector.store.influx import StoreError
    from detector.store.shards import open_store

    sv = load_services(services)
    store = open_store(settings_for(sv.store, "dashboard"), sv.dashboard.users_db)
    try:
        return len(store.nights(wearer))
    except StoreError:
        return None
    finally:
        store.close()


def users_assign(args) -> int:
    users = _users(args)
    if not args.create and not users.has_wearer(args.wearer):
        nights = _stored_nights(args.services, args.wearer)
        if not nights:
            seen = "no stored nights" if nights == 0 else "the night store could not be asked"
            raise ValueError(f"unknown wearer {args.wearer!r}: no wearer account and {seen}. Add the "
                             f"account first ('nightcramp users add {args.wearer} --role wearer'), or pass "
                             "--create to assign a wearer before their first night")
    try:
        users.assign(args.clinician, args.wearer)
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


def _broker_dir(args):
    from detector.service.settings import load_services

    sv = load_services(args.services)
    if not sv.mqtt.credentials_dir:
        raise ValueError("[mqtt] credentials_dir is not set in the services file: the broker has no accounts")
    return sv, Path(sv.mqtt.credentials_dir)


def _reload_broker(sv) -> str:
    """Tell the stack's running Mosquitto and nats-servers (if any) to read their accounts again."""
    from dashboard import broker_auth, nats_auth, stack

    state = stack.status(sv)
    said = []
    info = state.get("mosquitto")
    if info and info["running"]:
        broker_auth.reload(info["pid"])
        said.append("the running broker has reloaded its accounts")
    else:
        said.append("the broker uses it from its next start")
    cdir = Path(sv.mqtt.credentials_dir)
    nodes = [(k, v) for k, v in state.items() if k.startswith("nats-n") and v["running"]]
    for name, v in nodes:
        nats_auth.rewrite(Path(sv.stack.data_dir) / "nats" / name.removeprefix("nats-") / "nats.conf", cdir)
        nats_auth.reload(v["pid"])
    if nodes:
        said.append(f"so have the {len(nodes)} nats-servers")
    return "; " + ", ".join(said)


def users_add_sensor(args) -> int:
    from dashboard import broker_auth

    sv, cdir = _broker_dir(args)
    broker_auth.ensure(cdir)
    path = broker_auth.add_account(cdir, args.wearer)
    print(f"broker account {args.wearer}: secret in {path} (mode 600; copy it to the collector's "
          f"credentials directory, with ca.pem for TLS){_reload_broker(sv)}")
    return 0


def users_remove_sensor(args) -> int:
    from dashboard import broker_auth

    sv, cdir = _broker_dir(args)
    broker_auth.remove_account(cdir, args.wearer)
    print(f"broker account {args.wearer} removed{_reload_broker(sv)}")
    return 0


def serve(args) -> int:
    import uvicorn

    from dashboard.web.app import create_app
    from detector.service.settings import load_services

    sv = load_services(args.services)
    host, port = args.host or sv.dashboard.host, args.port or sv.dashboard.port
    app = create_app(sv)
    print(f"nightcramp dashboard on http://{host}:{port}/ (Ctrl-C stops it)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
