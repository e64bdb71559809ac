"""The FastAPI app: the JSON API (OpenAPI at /openapi.json, docs at /docs) and the page.

POST /api/submissions                  upload a bundle (body: the .tar.gz; Bearer token)
GET  /api/submissions/{id}             its status: pending, verifying, accepted, rejected
                                       (with reasons) or failed
GET  /api/submissions                  every submission's status
GET  /api/entries                      the leaderboard's rows (ranked)
POST /api/submissions/{id}/flag        admin: flag and/or hide an entry, with a reason
GET  /  /submissions/{id}  /submissions/{id}/{stage}/{i}     the page
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from agentbench.bundle.archive import BundleError
from agentbench.leaderboard.page import Links, render_detail, render_episode, render_index
from agentbench.leaderboard.service import AuthError, Leaderboard, NotFound


class FlagRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    flagged: bool = True
    hidden: bool = False


class SubmissionStatus(BaseModel):
    id: int
    bundle_id: str
    status: str
    errors: list[str]
    warnings: list[str]
    episodes: int
    replayed: int
    track: str
    submitter: str | None
    hidden: bool
    flagged: bool
    flag_reason: str
    created_at: str
    updated_at: str
    duplicate: bool = False


def _token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def create_app(service: Leaderboard, *, worker: bool = True) -> FastAPI:
    """The app over `service`; `worker` starts the verification worker with the app."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if worker:
            service.start_worker()
        try:
            yield
        finally:
            if worker:
                service.stop_worker()

    app = FastAPI(
        title="agentbench leaderboard",
        version="1",
        description="Verified result bundles of agentbench suites.",
        lifespan=lifespan,
    )
    links = Links()

    def user_of(authorization: str | None, role: str | None = None) -> Any:
        try:
            return service.authenticate(_token(authorization), role)
        except AuthError as exc:
            code = 403 if role and "role" in str(exc) else 401
            raise HTTPException(code, str(exc)) from None

    @app.post("/api/submissions", status_code=202, response_model=SubmissionStatus)
    async def upload(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Any:
        """Upload a bundle (the raw .tar.gz as the body). 202 with its status; the same
        bundle again returns the first submission with `duplicate: true`."""
        user = user_of(authorization)
        limit = service.config.limits.max_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"bundle is {int(declared):,} bytes; the limit is {limit:,}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"bundle is over the limit of {limit:,} bytes")
            chunks.append(chunk)
        if not size:
            raise HTTPException(400, "empty body: send the bundle file as the request body")
        from starlette.concurrency import run_in_threadpool

        try:
            status, duplicate = await run_in_threadpool(service.upload, user, b"".join(chunks))
        except BundleError as exc:
            raise HTTPException(400, f"bundle refused: {exc}") from None
        return JSONResponse(
            {**status, "duplicate": duplicate}, status_code=200 if duplicate else 202
        )

    @app.get("/api/submissions/{sub_id}", response_model=SubmissionStatus)
    def status(sub_id: int) -> Any:
        try:
            return service.status(sub_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/submissions", response_model=list[SubmissionStatus])
    def submissions() -> Any:
        return service.submissions()

    @app.get("/api/entries")
    def entries() -> list[dict[str, Any]]:
        return service.rows()

    @app.post("/api/submissions/{sub_id}/flag", response_model=SubmissionStatus)
    def flag(
        sub_id: int, body: FlagRequest, authorization: Annotated[str | None, Header()] = None
    ) -> Any:
        user_of(authorization, "admin")
        try:
            service.flag(sub_id, body.reason, flagged=body.flagged, hidden=body.hidden)
            return service.status(sub_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return render_index(service.rows(), links)

    @app.get("/submissions/{sub_id}", response_class=HTMLResponse)
    def detail(sub_id: int) -> str:
        try:
            return render_detail(service.detail(sub_id), links)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/submissions/{sub_id}/{stage}/{index}", response_class=HTMLResponse)
    def episode(sub_id: int, stage: str, index: int) -> str:
        try:
            episodes = service.episodes(sub_id, stage)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        if not 0 <= index < len(episodes):
            raise HTTPException(404, f"no episode {index} (there are {len(episodes)})")
        return render_episode(sub_id, stage, index, episodes[index], links)

    return app
