"""`nightcramp serve`: the wearer's morning summary and the clinician's night review.

FastAPI with server-side pages (Jinja2) and small scripts; traces come from InfluxDB through the
detector's store read API, min/max-downsampled on the server to at most two values per pixel.
Every page needs a session; every form and edit carries the session's CSRF token.
``create_app`` wires the parts: the state (accounts, store, login limiter, export slots), the
security headers, the error pages, and one router per audience (``dashboard.web.routes``).
"""

from __future__ import annotations

import threading
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from dashboard.users import Users
from dashboard.web.common import COOKIE, HERE, NeedLogin, templates
from dashboard.web.metrics import DashboardMetrics, is_loopback
from dashboard.web.routes import auth, clinician, exports, wearer
from dashboard.web.security import LoginLimiter, security_headers
from detector.service.settings import Services
from detector.store.accounts import settings_for
from detector.store.influx import InfluxStore, StoreError
from detector.store.shards import open_store


def create_app(services: Services, *, users: Users | None = None,
               store: InfluxStore | None = None) -> FastAPI:
    app = FastAPI(title="nightcramp", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.users = users or Users(services.dashboard.users_db)
    app.state.store = store or open_store(settings_for(services.store, "dashboard"),
                                          services.dashboard.users_db)
    app.state.secure = services.dashboard.secure_cookies
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    d = services.dashboard
    app.state.limiter = LoginLimiter(max_failures=d.login_max_failures, lockout_s=d.login_lockout_s)
    app.state.exports = threading.BoundedSemaphore(d.max_exports)
    app.state.recording_cache = {}
    app.state.metrics = DashboardMetrics()
    for r in (auth.router, wearer.router, clinician.router, exports.router):
        app.include_router(r)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        m = app.state.metrics
        m.requests.labels(f"{response.status_code // 100}xx").inc()
        m.latency.observe(time.perf_counter() - t0)
        for k, v in security_headers(request.url.path).items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(NeedLogin)
    async def _to_login(request: Request, exc: NeedLogin):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "log in first"}, status_code=401)
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    def _error(request: Request, status: int, message: str, headers: dict | None = None):
        """JSON for the API, a page for a browser."""
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": message}, status_code=status, headers=headers)
        titles = {400: "That request was not understood", 403: "Not allowed", 404: "Not found",
                  405: "Not allowed", 422: "That request was not understood", 429: "Too many attempts",
                  503: "Temporarily unavailable"}
        s = request.app.state.users.session(request.cookies.get(COOKIE))
        r = templates.TemplateResponse(request, "error.html", {
            "s": s, "status": status, "title": titles.get(status, "Something went wrong"),
            "message": message}, status_code=status)
        r.headers.update(headers or {})
        return r

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        what = "; ".join(f"{'.'.join(str(x) for x in e['loc'][1:]) or 'request'}: {e['msg']}"
                         for e in exc.errors()[:5])
        return _error(request, 422, what or "malformed request")

    @app.exception_handler(StoreError)
    async def _store_down(request: Request, exc: StoreError):
        return _error(request, 503, "The night database (InfluxDB) cannot be reached just now; "
                      "try again in a minute.", {"Retry-After": "30"})

    @app.get("/metrics")
    def metrics(request: Request):
        """Prometheus text format, for this machine only (loopback)."""
        if not is_loopback(request.client.host if request.client else ""):
            return JSONResponse({"detail": "metrics are served to this machine only"}, status_code=403)
        app.state.metrics.store_up.set(1.0 if app.state.store.ping() else 0.0)
        return Response(app.state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/healthz")
    def healthz():
        return {"ok": True, "influxdb": app.state.store.ping()}

    return app
