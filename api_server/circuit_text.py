"""POST /tasks with the circuit as the whole body (`text/plain` or `application/qasm`), so
`curl --data-binary @bell.qasm -H 'Content-Type: text/plain' '…/tasks?shots=1000'` works.

Shots, seed and tags travel as query parameters. The request becomes the same `TaskCreate` a JSON
body would, and goes through the same checks, limits and storing (api_server.submissions).
"""

from __future__ import annotations

from email.message import Message
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import StringConstraints, ValidationError
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import Scope

from api_server.auth import CallerDep
from api_server.deps import SettingsDep, StoreDep
from api_server.schemas import CIRCUIT_PATTERN, DEFAULT_MAX_CIRCUIT_BYTES, MAX_SEED, TaskCreate
from api_server.submissions import IdempotencyKey, accept_task, refuse
from api_server.task_options import MAX_TAGS, TAG_PAIR_PATTERN
from shared.examples import BELL_QASM3

CONTENT_TYPES = ("text/plain", "application/qasm")
QUERY_FIELDS = ("shots", "seed", "tag")
TEXT_ONLY = "only with a `text/plain` or `application/qasm` body (a JSON body carries its own fields)."
UTF8_CHARSETS = {"utf-8", "utf8", "us-ascii", "ascii"}

ShotsQuery = Annotated[
    int | None, Query(ge=1, description=f"Number of shots, 1 to MAX_SHOTS; DEFAULT_SHOTS when left out; {TEXT_ONLY}")
]
SeedQuery = Annotated[
    int | None, Query(ge=0, le=MAX_SEED, description=f"Aer's seed_simulator, 0 to 2^63-1; {TEXT_ONLY}")
]
TagQuery = Annotated[
    list[Annotated[str, StringConstraints(pattern=TAG_PAIR_PATTERN)]] | None,
    Query(
        max_length=MAX_TAGS,
        description="A tag of the task as `key:value` (split at the first colon, so the key has none); repeat "
        f"it for more, at most {MAX_TAGS}; {TEXT_ONLY}",
    ),
]

# The request body POST /tasks documents besides JSON (added to the JSON route's operation).
TEXT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": "The circuit alone, as UTF-8 text: the same rules as `circuit` in the JSON body. "
    "`shots`, `seed` and `tag` go in the query.",
    "minLength": 1,
    "maxLength": DEFAULT_MAX_CIRCUIT_BYTES,
    "pattern": CIRCUIT_PATTERN,
}
OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {"content": {media: {"schema": TEXT_SCHEMA, "example": BELL_QASM3} for media in CONTENT_TYPES}}
}


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """`Text/Plain; charset=UTF-8` -> ("text/plain", {"charset": "utf-8"})."""
    message = Message()
    message["content-type"] = content_type
    params = {key.lower(): str(value).lower() for key, value in (message.get_params() or [])[1:]}
    return message.get_content_type(), params


class TextBodyRoute(APIRoute):
    """A route that matches only requests whose body is declared as circuit text, so the JSON
    route on the same path and method takes every other request."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.FULL and media_type(Headers(scope=scope).get("content-type", ""))[0] not in CONTENT_TYPES:
            return Match.NONE, {}
        return match, child_scope


async def circuit_text(request: Request) -> str:
    """The body as text: UTF-8, whatever the declared charset may claim otherwise is refused."""
    charset = media_type(request.headers.get("content-type", ""))[1].get("charset", "utf-8")
    if charset not in UTF8_CHARSETS:
        raise HTTPException(415, f"send the circuit as UTF-8 (charset=utf-8), not charset={charset[:40]}")
    raw = await request.body()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        where = f"byte 0x{raw[error.start]:02x} at position {error.start}"
        message = f"is not UTF-8 text ({where}); send the circuit as UTF-8"
        raise RequestValidationError([{"type": "unicode_decode", "loc": ("body",), "msg": message}]) from None


def refuse_unknown_query(request: Request) -> None:
    """A typo such as `?shot=10` is refused, never run with the default shots (as `extra="forbid"` does for JSON)."""
    for name in request.query_params:
        if name not in QUERY_FIELDS:
            refuse(("query",), name, "unknown query parameter; a circuit sent as text takes shots, seed and tag")


def tags_from_query(tag: list[str]) -> dict[str, str]:
    """`["project:vqe", "run:7"]` -> `{"project": "vqe", "run": "7"}`; a key given twice is a 422."""
    tags: dict[str, str] = {}
    for index, pair in enumerate(tag):
        key, _, value = pair.partition(":")
        if key in tags:
            refuse(("query", "tag"), index, f"the key {key!r} is given twice")
        tags[key] = value
    return tags


def build_submission(circuit: str, shots: int | None, seed: int | None, tag: list[str] | None) -> TaskCreate:
    """The TaskCreate these parts make; a refusal names the body or the query parameter."""
    fields: dict[str, Any] = {"circuit": circuit}
    fields.update({name: value for name, value in (("shots", shots), ("seed", seed)) if value is not None})
    if tag:
        fields["tags"] = tags_from_query(tag)
    try:
        return TaskCreate.model_validate(fields)
    except ValidationError as error:
        keys = list(fields.get("tags", {}))
        raise RequestValidationError([_relocated(e, keys) for e in error.errors(include_url=False)]) from None


def _relocated(error: Any, tag_keys: list[str]) -> dict[str, Any]:
    """An error of TaskCreate's field as the error of the request part that carried it."""
    field, *rest = error["loc"]
    if field == "tags":
        # ("tags", key) or ("tags", key, "[key]"): the key's place among the `tag` parameters.
        loc: tuple[str | int, ...] = ("query", "tag", *([tag_keys.index(rest[0])] if rest else []))
    elif field == "circuit":
        loc = ("body",)
    else:
        loc = ("query", field, *rest)
    return {"type": error["type"], "loc": loc, "msg": error["msg"]}


router = APIRouter(route_class=TextBodyRoute)


# Not in the schema: the JSON route documents this body beside its own (OPENAPI_BODY).
@router.post("/tasks", include_in_schema=False, dependencies=[Depends(refuse_unknown_query)])
def submit_circuit_text(
    caller: CallerDep,
    circuit: Annotated[str, Depends(circuit_text)],
    store: StoreDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
    shots: ShotsQuery = None,
    seed: SeedQuery = None,
    tag: TagQuery = None,
) -> JSONResponse:
    """Queue the circuit sent as the body; exactly what the JSON form would store."""
    body = build_submission(circuit, shots, seed, tag)
    return accept_task(body, store, settings, caller, idempotency_key, where=("query",))
