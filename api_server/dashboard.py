"""The dashboard: static pages served by the API; they read the JSON endpoints. No build step, no CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
# The pages load only their own script and style sheet and talk only to this API: an injected
# <script> or inline handler would not run, and no other site may frame them (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}

router = APIRouter(include_in_schema=False)
static_files = StaticFiles(directory=STATIC_DIR)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


@router.get("/ui/tasks/{task_id}")
def task_page(task_id: str) -> FileResponse:
    # The page reads the id from its own URL and asks the API; an unknown id shows "Task not found".
    return FileResponse(STATIC_DIR / "task.html", headers=PAGE_HEADERS)


@router.get("/ui/batches/{batch_id}")
def batch_page(batch_id: str) -> FileResponse:
    # Like the task page: the id comes from the URL, and an unknown one shows "Batch not found".
    return FileResponse(STATIC_DIR / "batch.html", headers=PAGE_HEADERS)
