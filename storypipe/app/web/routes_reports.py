"""The findings report: the reports made so far, making today's, and showing one."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from storypipe.app.web.common import NOT_FROM_APP, StoreDep, app_form, problem, render
from storypipe.core.settings import load_settings

REPORT_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# reports/<day>/report.html, as storypipe.tasks.report writes it (REPORT_HTML; that module is
# imported only when a report is made: it loads matplotlib, seconds the app need not wait at start).
REPORT_PAGE = "report.html"

router = APIRouter()


@router.get("/report", response_class=HTMLResponse)
def report_page(request: Request, store: StoreDep):
    made = sorted((p.parent.name for p in store.reports.glob(f"*/{REPORT_PAGE}") if REPORT_DAY.match(p.parent.name)),
                  reverse=True)
    return render(request, "reports.html", {"made": made})


@router.post("/report")
async def make_report(request: Request, store: StoreDep):
    form = await app_form(request)
    if form is None:
        return problem(request, 403, NOT_FROM_APP)
    from starlette.concurrency import run_in_threadpool

    from storypipe.tasks import report

    try:
        written = await run_in_threadpool(report.write_report, store, load_settings(store.root))
    except report.ReportError as e:
        return problem(request, 400, str(e))
    return RedirectResponse(f"/reports/{written.folder.name}/{REPORT_PAGE}", status_code=303)


@router.get(f"/reports/{{day}}/{REPORT_PAGE}")
def report_file(request: Request, day: str, store: StoreDep):
    path = store.reports / day / REPORT_PAGE
    if not REPORT_DAY.match(day) or not path.is_file():
        return problem(request, 404, f"There is no report of {day}.")
    return FileResponse(path, media_type="text/html")
