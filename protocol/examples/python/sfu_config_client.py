"""Reference SFU-side client of the sfu-config/1 protocol (protocol/PROTOCOL.md).

Dependencies: the Python standard library and ``websockets`` (Debian's
``python3-websockets``, 10.x; run with ``/usr/bin/python3``).

The SFU is the WebSocket client: it dials the agent (``ws://127.0.0.1:7070``)
with subprotocol ``sfu-config.v1``, sends ``hello``, and answers every
``config`` with ``ack`` or ``nack``. What "applying" means is the SFU's
business: give :class:`SfuConfigClient` an ``apply`` callback. The callback
receives the config (a ``dict``) and the whole message; it returns normally to
accept (the client acks), raises :class:`ConfigRejected` to refuse with a
protocol code (the client nacks with it), and any other exception is nacked
``APPLY_FAILED``. The client itself checks the message, the nonce order, the
schema version and the hash before calling ``apply``::

    client = SfuConfigClient("ws://127.0.0.1:7070", apply, name="my-sfu", version="1.2.3")
    await client.run()          # reconnects with backoff until stop()

Subclasses may override :meth:`SfuConfigClient.config_hash`,
:meth:`SfuConfigClient.reply_for` and :meth:`SfuConfigClient.on_protocol_violation`
(the example's deliberately broken modes do).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import math
import random
import re
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Optional, Union

import websockets
import websockets.exceptions

__all__ = [
    "SUBPROTOCOL",
    "PROTOCOL_VERSION",
    "MAX_FRAME_BYTES",
    "CloseCode",
    "ConfigRejected",
    "SfuConfigClient",
    "canonical_json",
    "config_hash",
]

#: WebSocket subprotocol of sfu-config/1.
SUBPROTOCOL = "sfu-config.v1"
#: Value of ``hello.protocol``.
PROTOCOL_VERSION = 1
#: Largest frame either side accepts, in bytes.
MAX_FRAME_BYTES = 1024 * 1024
#: ``sha256:`` followed by 64 lowercase hex digits.
HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
#: Upgrade response header in which the agent lists the optional frames it accepts (PROTOCOL.md section 15).
FEATURES_HEADER = "sfu-config-features"
#: Seconds between ``health`` frames while the counters change.
HEALTH_INTERVAL = 5.0
#: Largest integer JSON numbers may carry exactly (JavaScript's Number.MAX_SAFE_INTEGER).
MAX_SAFE_INTEGER = 2**53 - 1
# websockets 14 made its new asyncio client the default, which names the header argument differently.
_HEADERS_ARG = "additional_headers" if int(websockets.__version__.split(".")[0]) >= 14 else "extra_headers"


class CloseCode:
    """WebSocket close codes of sfu-config/1 (protocol/close-codes.ts)."""

    PROTOCOL_ERROR = 4000
    BAD_JSON = 4001
    UNKNOWN_TYPE = 4002
    INVALID_MESSAGE = 4003
    BAD_NONCE = 4004
    HELLO_REQUIRED = 4005
    HELLO_TIMEOUT = 4006
    UNSUPPORTED_PROTOCOL = 4007
    FRAME_TOO_LARGE = 4009
    ALREADY_CONNECTED = 4010


class ConfigRejected(Exception):
    """Raised by an ``apply`` callback to nack a config with a protocol code.

    ``code`` is one of ``INVALID_CONFIG``, ``UNSUPPORTED_SCHEMA``,
    ``RESTART_REQUIRED``, ``APPLY_FAILED`` (or another upper-case code the
    agent will pass through); ``path`` is an optional JSON pointer.
    """

    def __init__(self, code: str, message: str, path: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path


class _Violation(Exception):
    """A frame from the agent broke the protocol; the link is closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --- canonical JSON and the config hash -------------------------------------------------


def _number(value: Union[int, float]) -> str:
    """Formats a number exactly as ECMAScript's Number::toString (JSON.stringify) does."""
    if isinstance(value, bool):  # pragma: no cover - handled by the caller
        raise TypeError("bool is not a number")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"canonical JSON: non-finite number {value!r}")
    if value == 0:
        return "0"
    if value < 0:
        return "-" + _number(-value)
    # repr() gives the shortest round-tripping digits, as ECMAScript does; only the layout differs.
    mantissa, _, exp = repr(value).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    n = len(int_part) + int(exp or 0)  # decimal point position after `digits[0:n]` (ECMAScript's n)
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{head}e{sign}{abs(e)}"


def _string(value: str) -> str:
    """A JSON string as JSON.stringify writes it: only ``"``, ``\\`` and controls escaped."""
    return json.dumps(value, ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """Serialises a JSON value canonically (PROTOCOL.md "Canonical JSON", = RFC 8785 for configs).

    No insignificant whitespace; object keys sorted by UTF-16 code units;
    strings with non-ASCII characters written raw (UTF-8), escaping only ``"``,
    ``\\`` and control characters (``\\b \\f \\n \\r \\t``, else ``\\u00xx``);
    numbers as ECMAScript writes them. Raises ``TypeError``/``ValueError`` on
    values JSON cannot hold.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON: object key {key!r} is not a string")
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(_string(k) + ":" + canonical_json(value[k]) for k in keys) + "}"
    raise TypeError(f"canonical JSON: unsupported value of type {type(value).__name__}")


def config_hash(config: Any) -> str:
    """``sha256:<hex>`` of the UTF-8 bytes of the canonical JSON of ``config``."""
    return "sha256:" + hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


# --- the client ---------------------------------------------------------------------------

ApplyCallback = Callable[[dict, dict], Union[None, Awaitable[None]]]


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= MAX_SAFE_INTEGER


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _advertised(ws: Any, feature: str) -> bool:
    """Whether the agent's upgrade response lists ``feature`` in FEATURES_HEADER."""
    headers = getattr(ws, "response_headers", None)  # websockets < 14 (legacy client)
    if headers is None:
        headers = getattr(getattr(ws, "response", None), "headers", None)  # websockets >= 14
    value = headers.get(FEATURES_HEADER, "") if headers is not None else ""
    return feature in [token.strip().lower() for token in value.split(",")]


class SfuConfigClient:
    """Dials the agent, says hello, applies pushed configs through ``apply``, acks or nacks.

    Args:
        url: agent URL, ``ws://127.0.0.1:7070`` in a pod.
        apply: ``apply(config, message)``, sync or async; see the module docs.
        name, version: reported in ``hello.sfu``.
        token: bearer token sent as ``Authorization: Bearer <token>`` (never logged), or None.
        token_file: file re-read on every dial for the token (takes precedence over ``token``).
        applied: ``{"version", "hash"}`` already in force at start (e.g. restored from disk), or None.
        schema_versions: config schema versions the SFU understands (default ``(1,)``).
        initial_backoff, max_backoff: reconnect delays in seconds (0.5 and 30 by default); the
            delay doubles per failed attempt, is capped, and is jittered to 50-100 % of its value.
            It resets once a connection opens.
        logger: a ``logging.Logger`` (default ``logging.getLogger("sfu_config_client")``).
        health: optional call health (PROTOCOL.md section 15): a callable returning the counters
            ``{"joins", "joinFailures", "iceConnected", "iceFailures"}`` of the calls set up since the
            current config was applied (the SFU restarts them at 0 when it applies another hash). When
            given and the agent advertises ``sfu-config-features: health``, the client sends a
            ``health`` frame after hello, at once after applying another hash, and every 5 s while the
            counters change. None: the feature is off (nothing is ever sent).
    """

    def __init__(
        self,
        url: str,
        apply: ApplyCallback,
        *,
        name: str,
        version: str,
        token: Optional[str] = None,
        token_file: Optional[str] = None,
        applied: Optional[dict] = None,
        schema_versions: tuple = (1,),
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        logger: Optional[logging.Logger] = None,
        health: Optional[Callable[[], dict]] = None,
    ) -> None:
        if not (url.startswith("ws://") or url.startswith("wss://")):
            raise ValueError(f"url must be ws:// or wss://, got {url!r}")
        if not callable(apply):
            raise TypeError("apply must be callable")
        if not name or not version:
            raise ValueError("name and version must be non-empty")
        if not (0 < initial_backoff <= max_backoff):
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        if applied is not None and not (_is_int(applied.get("version"), 0) and HASH_RE.match(str(applied.get("hash")))):
            raise ValueError("applied must be None or {'version': int, 'hash': 'sha256:...'}")
        if not schema_versions or not all(_is_int(v, 1) for v in schema_versions):
            raise ValueError("schema_versions must be a non-empty tuple of positive integers")
        self.url = url
        self._apply = apply
        self.name = name
        self.version = version
        self._token = token
        self._token_file = token_file
        #: What is in force: ``{"version", "hash"}`` of the last config applied, or None.
        self.applied: Optional[dict] = dict(applied) if applied else None
        self.schema_versions = tuple(schema_versions)
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.log = logger or logging.getLogger("sfu_config_client")
        self._stopping = asyncio.Event()
        self._ws: Any = None
        self._health = health
        self._health_wake = asyncio.Event()
        #: ISO time the current ``applied`` hash was applied (the counters start there).
        self.applied_since = _now_iso()

    # -- hooks (override in subclasses) --

    def config_hash(self, config: dict) -> str:
        """The hash the client computes for a received config (default: :func:`config_hash`)."""
        return config_hash(config)

    def reply_for(self, message: dict, error: Optional[dict]) -> dict:
        """The ack (``error`` None) or nack frame answering ``message``."""
        reply = {"type": "ack" if error is None else "nack", "nonce": message["nonce"],
                 "version": message["version"], "hash": message["hash"]}
        if error is not None:
            reply["applied"] = self.applied
            reply["error"] = error
        return reply

    async def on_protocol_violation(self, ws: Any, code: int, reason: str) -> None:
        """Closes the link with ``code`` (the reconnect loop then re-dials)."""
        self.log.warning("agent protocol violation, closing with %d: %s", code, reason)
        await ws.close(code=code, reason=reason.encode("utf-8")[:123].decode("utf-8", "ignore"))

    # -- lifecycle --

    def backoff_delay(self, attempt: int) -> float:
        """Delay in seconds before reconnect attempt ``attempt`` (0-based)."""
        base = min(self.max_backoff, self.initial_backoff * (2 ** min(attempt, 30)))
        return base * (0.5 + 0.5 * random.random())

    def stop(self) -> None:
        """Asks :meth:`run` to close the connection and return."""
        self._stopping.set()
        if self._ws is not None:
            asyncio.ensure_future(self._ws.close(code=1000, reason="SFU stopping"))

    async def run(self) -> None:
        """Dials, serves and re-dials with backoff until :meth:`stop`."""
        attempt = 0
        while not self._stopping.is_set():
            try:
                async with websockets.connect(
                    self.url,
                    subprotocols=[SUBPROTOCOL],
                    max_size=MAX_FRAME_BYTES,
                    open_timeout=10,
                    close_timeout=2,
                    **{_HEADERS_ARG: self._headers()},
                ) as ws:
                    attempt = 0
                    self._ws = ws
                    await self._serve(ws)
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as err:
                self.log.info("agent link failed: %s", err)
            finally:
                self._ws = None
            if self._stopping.is_set():
                break
            delay = self.backoff_delay(attempt)
            attempt += 1
            self.log.debug("re-dialing in %.2f s", delay)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    def _headers(self) -> dict:
        token = self._token
        if self._token_file is not None:
            with open(self._token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _serve(self, ws: Any) -> None:
        if ws.subprotocol != SUBPROTOCOL:
            await ws.close(code=CloseCode.UNSUPPORTED_PROTOCOL, reason="agent did not select sfu-config.v1")
            return
        hello = {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "sfu": {"name": self.name, "version": self.version},
            "schemaVersions": list(self.schema_versions),
            "applied": self.applied,
        }
        await ws.send(json.dumps(hello))
        self.log.info("connected to %s, applied %s", self.url, self.applied)
        health_task = None
        if self._health is not None and _advertised(ws, "health"):
            health_task = asyncio.ensure_future(self._send_health(ws))
        try:
            await self._answer(ws)
        finally:
            if health_task is not None:
                health_task.cancel()

    async def _send_health(self, ws: Any) -> None:
        """Sends ``health`` frames: at once, then every HEALTH_INTERVAL while they changed."""
        last = None
        while True:
            if self.applied is not None:
                counters = self._health()
                frame = {"type": "health", "hash": self.applied["hash"], "since": self.applied_since,
                         **{k: int(counters[k]) for k in ("joins", "joinFailures", "iceConnected", "iceFailures")}}
                if frame != last:
                    await ws.send(json.dumps(frame))
                    last = frame
            self._health_wake.clear()
            try:
                await asyncio.wait_for(self._health_wake.wait(), timeout=HEALTH_INTERVAL)
            except asyncio.TimeoutError:
                pass

    async def _answer(self, ws: Any) -> None:
        last_nonce = 0
        async for frame in ws:
            try:
                message = self._parse(frame)
                if message["nonce"] <= last_nonce:
                    raise _Violation(CloseCode.BAD_NONCE, f"config nonce {message['nonce']} did not increase (last {last_nonce})")
            except _Violation as violation:
                await self.on_protocol_violation(ws, violation.code, violation.reason)
                return
            last_nonce = message["nonce"]
            error = await self._handle(message)
            await ws.send(json.dumps(self.reply_for(message, error), ensure_ascii=False))

    def _parse(self, frame: Union[str, bytes]) -> dict:
        """Checks a frame is a well-formed config message; raises :class:`_Violation` otherwise."""
        if isinstance(frame, bytes):
            raise _Violation(CloseCode.BAD_JSON, "binary frames are not allowed")
        try:
            message = json.loads(frame)
        except ValueError as err:
            raise _Violation(CloseCode.BAD_JSON, f"bad JSON: {err}") from None
        if not isinstance(message, dict):
            raise _Violation(CloseCode.INVALID_MESSAGE, "frame is not a JSON object")
        if message.get("type") != "config":
            raise _Violation(CloseCode.UNKNOWN_TYPE, f"unknown message type {message.get('type')!r}")
        problems = []
        if not _is_int(message.get("nonce"), 1):
            problems.append("nonce")
        if not _is_int(message.get("version"), 1):
            problems.append("version")
        if not isinstance(message.get("hash"), str) or not HASH_RE.match(message["hash"]):
            problems.append("hash")
        revision = message.get("revision", 0)
        if not (revision is None or (isinstance(revision, str) and 0 < len(revision) <= 256)):
            problems.append("revision")
        if not _is_int(message.get("schemaVersion"), 1):
            problems.append("schemaVersion")
        if not isinstance(message.get("config"), dict):
            problems.append("config")
        if problems:
            raise _Violation(CloseCode.INVALID_MESSAGE, "invalid config message: bad " + ", ".join(problems))
        return message

    async def _handle(self, message: dict) -> Optional[dict]:
        """Verifies and applies one config; returns None (ack) or the nack's error object."""
        config = message["config"]
        if message["schemaVersion"] not in self.schema_versions:
            return {"code": "UNSUPPORTED_SCHEMA",
                    "message": f"schemaVersion {message['schemaVersion']} is not supported "
                               f"(supported: {', '.join(map(str, self.schema_versions))})",
                    "path": "/schemaVersion"}
        if config.get("schemaVersion") != message["schemaVersion"]:
            return {"code": "INVALID_CONFIG", "message": "config.schemaVersion differs from the message's",
                    "path": "/schemaVersion"}
        try:
            actual = self.config_hash(config)
        except (TypeError, ValueError) as err:
            return {"code": "INVALID_CONFIG", "message": f"config is not plain JSON: {err}"}
        if actual != message["hash"]:
            return {"code": "INVALID_CONFIG",
                    "message": f"hash mismatch: message says {message['hash']}, config hashes to {actual}"}
        if self.applied is not None and self.applied["hash"] == message["hash"]:
            self.applied = {"version": message["version"], "hash": message["hash"]}
            return None  # already in force: nothing to apply
        try:
            result = self._apply(config, message)
            if inspect.isawaitable(result):
                await result
        except ConfigRejected as rejected:
            error = {"code": rejected.code, "message": rejected.message}
            if rejected.path is not None:
                error["path"] = rejected.path
            self.log.warning("config version %s rejected: %s %s", message["version"], rejected.code, rejected.message)
            return error
        except Exception as err:  # noqa: BLE001 - any apply failure is a nack, never a crash
            self.log.exception("applying config version %s failed", message["version"])
            return {"code": "APPLY_FAILED", "message": f"{type(err).__name__}: {err}"}
        self.applied = {"version": message["version"], "hash": message["hash"]}
        self.applied_since = _now_iso()
        self._health_wake.set()  # another hash: report it at once
        self.log.info("applied config version %s %s", message["version"], message["hash"])
        return None
