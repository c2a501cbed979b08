"""What every page of the review app shares: the root's Store and the templates (kept on app.state
by create_app), the answer to a refused or failed request, and reading a posted change."""

from __future__ import annotations

import html
import secrets
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import FormData

from storypipe.app import review
from storypipe.core.store import Store

NOT_FROM_APP = "This change did not come from a review app page. Reload the page and try again."
M = TypeVar("M", bound=BaseModel)


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status_code)


def problem(request: Request, status: int, message: str) -> Response:
    """A refusal or failure: JSON for the page's script, a short page for a person."""
    if request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"error": message}, status_code=status)
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>storypipe</title><p role=alert>{html.escape(message, quote=False)}</p>"
                        "<p><a href=/>Back to the stories</a></p>", status_code=status)


def same(given: object, expected: str) -> bool:
    return isinstance(given, str) and secrets.compare_digest(given, expected)


async def app_form(request: Request) -> FormData | None:
    """The posted form, or None when it does not carry this server's CSRF token (a form's token is
    in a field, so its handler checks it: the guard must not read, and so consume, the upload)."""
    form = await request.form()
    return form if same(form.get("csrf"), request.app.state.csrf) else None


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise review.ReviewError("The change could not be read (not JSON).") from None
    if not isinstance(body, dict):
        raise review.ReviewError("The change could not be read.")
    return body


async def json_model(request: Request, model: type[M]) -> M:
    """The posted change, checked against its pydantic model: a missing or wrong field is refused
    with its name (400), before anything is read or written."""
    body = await json_body(request)
    try:
        return model.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the change"
        raise review.ReviewError(f"The change could not be read: {where}: {first['msg']}.") from None
