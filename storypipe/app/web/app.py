"""The review app: one FastAPI app for a root, its pages in routers (routes_stories: the list;
routes_story: a story's page and the review changes; routes_media: its audio; routes_add: add a
story; routes_reports: the findings report; routes_search: search across stories). Pages are
Jinja2 templates; changes go through storypipe.app.review as JSON posts from a little plain
JavaScript (static/app.js). Nothing here is loaded from the network.

Safety, in one place:
- ids are checked by storypipe.app.review before any path is built, so "../" never reaches the disk;
- every state-changing request must carry this server's random CSRF token (pages embed it), and
  a request from another origin is refused outright;
- bound to another host than 127.0.0.1, every request needs the access token, given once in the
  URL (?token=...) and then kept in a cookie;
- a request whose Host header is not one of this server's own names is answered 400 before
  anything else runs, so a page on another site that points its own name at 127.0.0.1 (DNS
  rebinding) cannot read the stories.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from storypipe.app import review
from storypipe.app.web import routes_add, routes_media, routes_reports, routes_search, routes_stories, routes_story
from storypipe.app.web.common import NOT_FROM_APP, problem, same
from storypipe.core import timefmt
from storypipe.core.jsonio import BadFileError
from storypipe.core.store import Store

HERE = Path(__file__).parent
# Posted as forms, whose CSRF token their handler checks (routes_add, routes_reports).
FORM_ROUTES = {"/add", "/report"}
# The names a browser on this machine uses for a server on the loopback address. Starlette compares
# the Host header without its port, and keeps the brackets of an IPv6 address: "[::1]", not "::1".
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def create_app(root: Path, access_token: str | None = None, *, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The review app for `root`. `allowed_hosts` are the Host header values (without port) it
    answers; any other gets 400. The default is the loopback names; "*" allows any."""
    app = FastAPI(title="storypipe review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = Store(Path(root)).ensure()
    app.state.csrf = secrets.token_urlsafe(24)
    app.state.access_token = access_token
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(csrf=app.state.csrf, consent_help=routes_add.CONSENT_HELP)
    templates.env.filters["duration"] = timefmt.duration
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (routes_stories, routes_story, routes_media, routes_add, routes_reports, routes_search):
        app.include_router(module.router)

    app.middleware("http")(guard)
    # Added last, so it runs first: a foreign Host gets 400 before the token or CSRF checks.
    hosts = LOCAL_HOSTS if allowed_hosts is None else allowed_hosts
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=[host_pattern(h) for h in hosts], www_redirect=False)

    app.add_exception_handler(review.ReviewError, review_error)
    app.add_exception_handler(BadFileError, bad_file)
    return app


async def guard(request: Request, call_next):
    """The access token (when the app is reachable from other machines), then, for a change, its
    origin and this server's CSRF token."""
    access_token, csrf = request.app.state.access_token, request.app.state.csrf
    if access_token is not None:
        given = request.query_params.get("token")
        if given is not None and secrets.compare_digest(given, access_token):
            response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
            response.set_cookie("storypipe_token", access_token, httponly=True, samesite="strict")
            return response
        if not secrets.compare_digest(request.cookies.get("storypipe_token", ""), access_token):
            return problem(request, 403, "This review app needs the access link with its token.")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        origin = request.headers.get("origin")
        if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
            return problem(request, 403, "Changes from another web site are refused.")
        is_form = request.headers.get("content-type", "").startswith(
            ("multipart/form-data", "application/x-www-form-urlencoded"))
        # A form carries its token in a field, checked by its handler (reading the body here would
        # consume the upload); everything else carries it in a header.
        if is_form and request.url.path not in FORM_ROUTES:
            return problem(request, 403, NOT_FROM_APP)
        if not is_form and not same(request.headers.get("x-csrf-token"), csrf):
            return problem(request, 403, NOT_FROM_APP)
    return await call_next(request)


async def review_error(request: Request, exc: review.ReviewError):
    return problem(request, exc.status, str(exc))


async def bad_file(request: Request, exc: BadFileError):
    return problem(request, 500, f"{exc.path.name} could not be read: {exc.reason}")


def host_pattern(host: str) -> str:
    """A name or address as TrustedHostMiddleware matches it: lower case, and an IPv6 address in
    brackets and in its short form, as browsers send it ("::1" and "0:0:0:0:0:0:0:1" -> "[::1]")."""
    host = host.strip().lower()
    try:
        address = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return host
    return f"[{address.compressed}]" if address.version == 6 else address.compressed
