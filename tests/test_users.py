"""Dashboard accounts: who sees which wearer, sessions, password changes."""

from __future__ import annotations

import pytest

from dashboard.users import UserError, Users

PW = "a long password"


@pytest.fixture()
def users(tmp_path):
    u = Users(tmp_path / "users.sqlite")
    u.add("w-1", PW, "wearer")
    u.add("anna", PW, "wearer", "w-2")
    u.add("dr-a", PW, "clinician")
    u.add("root", PW, "admin")
    u.assign("dr-a", "w-1")
    return u


def test_each_role_sees_only_what_it_may(users):
    wearer, other, clin, admin = (users.get(n) for n in ("w-1", "anna", "dr-a", "root"))
    assert users.visible_wearers(wearer) == ["w-1"] and users.may_see(wearer, "w-1")
    assert not users.may_see(wearer, "w-2") and users.visible_wearers(other) == ["w-2"]
    assert users.visible_wearers(clin) == ["w-1"] and not users.may_see(clin, "w-2")
    assert users.visible_wearers(admin) == ["w-1", "w-2"] and users.may_see(admin, "w-2")


def test_sessions_and_password_changes(users):
    s = users.login("dr-a", PW)
    assert s and users.session(s.token).user.name == "dr-a" and len(s.csrf) > 20
    assert users.login("dr-a", "wrong password") is None and users.login("nobody", PW) is None
    users.passwd("dr-a", "a new long password")
    assert users.session(s.token) is None  # logged out everywhere
    assert users.login("dr-a", "a new long password")
    users.logout(users.login("root", PW).token)


@pytest.mark.parametrize(("args", "message"), [
    (("Bad Name", PW, "wearer"), "user name"),
    (("bob", "short", "wearer"), "at least 10"),
    (("bob", PW, "nurse"), "role 'nurse'"),
    (("bob", PW, "clinician", "w-9"), "for wearer accounts only"),
    (("w-1", PW, "wearer"), "exists already"),
])
def test_bad_accounts_are_refused(users, args, message):
    with pytest.raises(UserError, match=message):
        users.add(*args)
    with pytest.raises(UserError, match="not a clinician"):
        users.assign("anna", "w-1")


def test_page_settings_are_kept_per_user(users, tmp_path):
    users.set_pref("dr-a", "montage", {"hidden": ["ACC R-Shank Z"], "gain": {"EMG L-Gastroc": 20.0}})
    again = Users(tmp_path / "users.sqlite")  # read back by a new process
    assert again.pref("dr-a", "montage") == {"hidden": ["ACC R-Shank Z"], "gain": {"EMG L-Gastroc": 20.0}}
    assert again.pref("root", "montage") is None
    with pytest.raises(UserError, match="unknown setting 'colour'"):
        users.set_pref("dr-a", "colour", 1)
    with pytest.raises(UserError, match="at most 8192"):
        users.set_pref("dr-a", "montage", {"order": ["x" * 9000]})
