"""The findings report: the reports made so far, making today's, and showing one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from storypipe.app.web.common import NOT_FROM_APP, StoreDep, app_form, problem, render
from storypipe.core.settings import load_settings
from storypipe.core.store import REPORT_DAY, REPORT_HTML

router = APIRouter()


@router.get("/report", response_class=HTMLResponse)
def report_page(request: Request, store: StoreDep):
    return render(request, "reports.html", {"made": store.report_days()})


@router.post("/report")
async def make_report(request: Request, store: StoreDep):
    form = await app_form(request)
    if form is None:
        return problem(request, 403, NOT_FROM_APP)
    from starlette.concurrency import run_in_threadpool

    from storypipe.tasks import report  # only now: it loads matplotlib, seconds the app need not wait at start

    try:
        written = await run_in_threadpool(report.write_report, store, load_settings(store.root))
    except report.ReportError as e:
        return problem(request, 400, str(e))
    return RedirectResponse(f"/reports/{written.folder.name}/{REPORT_HTML}", status_code=303)


@router.get(f"/reports/{{day}}/{REPORT_HTML}")
def report_file(request: Request, day: str, store: StoreDep):
    path = store.report_dir(day) / REPORT_HTML
    if not REPORT_DAY.match(day) or not path.is_file():
        return problem(request, 404, f"There is no report of {day}.")
    return FileResponse(path, media_type="text/html")
