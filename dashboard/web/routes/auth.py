"""Login and logout: a CSRF cookie on the login form, a lock-out after wrong passwords."""

from __future__ import annotations

import hmac
import math
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from dashboard.roles import UserError
from dashboard.web.common import COOKIE, LOGIN_CSRF, Sess, csrf_ok, page

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/", error: str = ""):
    token = secrets.token_urlsafe(24)
    r = page(request, "login.html", None, next=next if next.startswith("/") else "/", error=error,
             csrf=token)
    r.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=request.app.state.secure)
    return r


@router.post("/login")
def login(request: Request, name: Annotated[str, Form(max_length=200)],
          password: Annotated[str, Form(max_length=1000)],
          csrf: Annotated[str, Form(max_length=200)], next: Annotated[str, Form(max_length=2000)] = "/",
          tz: Annotated[str, Form(max_length=64)] = ""):
    cookie = request.cookies.get(LOGIN_CSRF, "")
    if not cookie or not hmac.compare_digest(cookie, csrf):
        raise HTTPException(403, "missing or wrong CSRF token: reload the login page")
    limiter = request.app.state.limiter
    address = request.client.host if request.client else "?"
    wait = limiter.retry_after(name.strip(), address)
    logins = request.app.state.metrics.logins
    if wait > 0:
        logins.labels("locked_out").inc()
        raise HTTPException(429, f"Too many wrong passwords: try again in {math.ceil(wait)} s.",
                            headers={"Retry-After": str(math.ceil(wait))})
    s = request.app.state.users.login(name.strip(), password, tz=tz or None)
    if s is None:
        limiter.failed(name.strip(), address)
        logins.labels("wrong_password").inc()
        return RedirectResponse("/login?error=1", status_code=303)
    limiter.succeeded(name.strip(), address)
    logins.labels("ok").inc()
    local = next.startswith("/") and not next.startswith("//")  # never off-site
    r = RedirectResponse(next if local else "/", status_code=303)
    r.set_cookie(COOKIE, s.token, httponly=True, samesite="lax", secure=request.app.state.secure,
                 max_age=12 * 3600)
    r.delete_cookie(LOGIN_CSRF)
    return r


@router.post("/logout")
def logout(request: Request, s: Sess, csrf: Annotated[str, Form()]):
    csrf_ok(s, csrf)
    request.app.state.users.logout(s.token)
    r = RedirectResponse("/login", status_code=303)
    r.delete_cookie(COOKIE)
    return r


@router.get("/settings", response_class=HTMLResponse)
def settings_form(request: Request, s: Sess, saved: bool = False):
    return page(request, "settings.html", s, saved=saved)


@router.post("/settings")
def settings_save(request: Request, s: Sess, csrf: Annotated[str, Form(max_length=200)],
                  tz: Annotated[str, Form(max_length=64)]):
    csrf_ok(s, csrf)
    try:
        request.app.state.users.set_tz(s.user.name, tz.strip())
    except UserError as exc:
        raise HTTPException(422, str(exc)) from None
    return RedirectResponse("/settings?saved=1", status_code=303)
