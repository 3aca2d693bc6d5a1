"""An HTTP client over ``wasi:http`` for channel adapters, blocking, standard library only.

Every request carries ``content-length`` (a body streamed without one goes out chunked, and
simple servers read it as empty). The host lets a request out only to the authorities the
manifest's ``capabilities.http`` (or the operator's ``allow_http``) grants; anything else
fails with :class:`HttpError`, like a connection error.

Only importable inside a component built for the ``channel-adapter`` world by
``belfry-build-py``: it uses the generated ``wit_world`` bindings of ``wasi:http``. Import it at
the top of your module: componentize-py runs module-level code at build time and snapshots the
interpreter, and a component cannot read Python files at run time, so an import first reached
inside a call fails with ImportError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

from componentize_py_types import Err
from wit_world.imports import http_types as t
from wit_world.imports import outgoing_handler, streams

#: Bodies are written in chunks no larger than wasi:io's guaranteed minimum write budget.
_CHUNK = 4096


class HttpError(Exception):
    """The request got no HTTP response: refused by the host's grants, DNS, connect, timeout."""


@dataclass
class Response:
    status: int
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> Optional[str]:
        want = name.lower()
        for k, v in self.headers:
            if k.lower() == want:
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def request(method: str, url: str, headers: Iterable[Tuple[str, str]] = (), body: bytes = b"", *,
            connect_timeout_ms: int = 10_000, first_byte_timeout_ms: int = 30_000,
            max_response_bytes: int = 1 << 20) -> Response:
    """Sends one request and reads the whole response (at most ``max_response_bytes``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HttpError(f"not an http(s) URL: {url!r}")
    body = bytes(body)
    fields = [(k, v.encode()) for k, v in headers if k.lower() not in ("content-length", "host")]
    fields.append(("content-length", str(len(body)).encode()))
    try:
        request_headers = t.Fields.from_list(fields)
    except Err as e:
        raise HttpError(f"a header the host does not allow: {e.value}") from None

    req = t.OutgoingRequest(request_headers)
    methods = {"GET": t.Method_Get(), "POST": t.Method_Post(), "PUT": t.Method_Put(),
               "PATCH": t.Method_Patch(), "DELETE": t.Method_Delete(), "HEAD": t.Method_Head()}
    req.set_method(methods.get(method.upper()) or t.Method_Other(method))
    req.set_scheme(t.Scheme_Http() if parts.scheme == "http" else t.Scheme_Https())
    req.set_authority(parts.netloc)
    req.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))

    options = t.RequestOptions()
    for setter, ms in ((options.set_connect_timeout, connect_timeout_ms),
                       (options.set_first_byte_timeout, first_byte_timeout_ms)):
        try:
            setter(ms * 1_000_000)
        except Err:
            pass  # a host that does not support the timeout keeps its own

    outgoing = req.body()
    try:
        future = outgoing_handler.handle(req, options)
    except Err as e:
        raise HttpError(f"refused: {e.value}") from None
    with outgoing.write() as stream:
        for off in range(0, len(body), _CHUNK):
            try:
                stream.blocking_write_and_flush(body[off:off + _CHUNK])
            except Err as e:
                raise HttpError(f"writing the body: {e.value}") from None
    t.OutgoingBody.finish(outgoing, None)

    with future.subscribe() as ready:
        ready.block()
    got = future.get()
    future.__exit__(None, None, None)
    if got is None or isinstance(got, Err):
        raise HttpError("no response")
    inner = got.value
    if isinstance(inner, Err):
        raise HttpError(f"{inner.value}")
    resp = inner.value

    status = resp.status()
    with resp.headers() as h:
        response_headers = [(k, v.decode("latin-1")) for k, v in h.entries()]
    incoming = resp.consume()
    chunks: List[bytes] = []
    size = 0
    with incoming.stream() as s:
        while True:
            try:
                chunk = s.blocking_read(65536)
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise HttpError(f"reading the response: {e.value}") from None
            size += len(chunk)
            if size > max_response_bytes:
                raise HttpError(f"response body over {max_response_bytes} bytes")
            chunks.append(chunk)
    t.IncomingBody.finish(incoming).__exit__(None, None, None)
    resp.__exit__(None, None, None)
    return Response(status=status, headers=response_headers, body=b"".join(chunks))


def post_json(url: str, value: Any, headers: Iterable[Tuple[str, str]] = (), **kw: Any) -> Response:
    """POSTs ``value`` as JSON (``content-type: application/json``)."""
    hs = [(k, v) for k, v in headers if k.lower() != "content-type"]
    hs.append(("content-type", "application/json"))
    return request("POST", url, hs, json.dumps(value, separators=(",", ":")).encode(), **kw)
