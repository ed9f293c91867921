"""uvicorn's httptools protocol, with a deadline for each request to arrive whole.

uvicorn 0.54 has no header timeout: a connection that sends half a request, or nothing, holds a
file descriptor for ever, and a thousand of them stop the API. Here the request line, headers
and body must arrive within HEADER_TIMEOUT_SECONDS of the connection opening (first request)
or of the request's first byte (later ones on a keep-alive connection); otherwise the client
gets `408` with `Connection: close` when nothing else is being written, and the connection is
closed either way.
"""

from __future__ import annotations

import asyncio
import json
import logging

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api_server import descriptors

logger = logging.getLogger(__name__)


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes a connection whose request is not received within `header_timeout`."""

    header_timeout: float = 10.0
    _request_deadline: asyncio.TimerHandle | None = None
    _receiving_body = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        descriptors.probe(len(self.connections))

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving_body = False
        self._arm()

    def on_headers_complete(self) -> None:
        self._receiving_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._receiving_body = False
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def _arm(self) -> None:
        # Not re-armed when the first request begins: its deadline runs from the connection opening.
        if self._request_deadline is None:
            self._request_deadline = self.loop.call_later(self.header_timeout, self._request_timed_out)

    def _disarm(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None

    def _request_timed_out(self) -> None:
        self._request_deadline = None
        if self.transport.is_closing():
            return
        logger.debug("closing connection from %s: no whole request within %g s", self.client, self.header_timeout)
        cycle = self.cycle
        answered = (
            cycle is not None and cycle.response_started and (self._receiving_body or not cycle.response_complete)
        )
        if answered or self.pipeline:
            # This request was answered before its body came (say a 400), or an earlier request's
            # answer is being written: a 408 now would be a second answer, or land in the middle of one.
            self.transport.close()
            return
        if cycle is not None and not cycle.response_complete:
            # The app is waiting for the rest of the body: it now sees a disconnect and sends nothing.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.write(self._timeout_response())
        self.transport.close()

    def _timeout_response(self) -> bytes:
        body = json.dumps(
            {"detail": f"request not received in full within HEADER_TIMEOUT_SECONDS={self.header_timeout:g}"}
        ).encode()
        lines = [STATUS_LINE[408]]
        for name, value in self.server_state.default_headers:
            lines += [name, b": ", value, b"\r\n"]
        lines += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
            b"\r\n",
            body,
        ]
        return b"".join(lines)


def protocol_class(header_timeout: float) -> type[TimedHttpToolsProtocol]:
    """The protocol class to pass to `uvicorn.run(http=...)`; uvicorn builds one per connection."""
    return type("TimedHttpToolsProtocol", (TimedHttpToolsProtocol,), {"header_timeout": header_timeout})
