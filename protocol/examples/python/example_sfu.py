#!/usr/bin/env python3
"""A toy "SFU" that keeps its config in memory, fed by sfu-config/1.

Shows how an SFU written in Python uses :mod:`sfu_config_client`: the apply
callback checks what it can take live and stores the rest. It serves no media;
it exists to run against the agent or the conformance kit::

    /usr/bin/python3 example_sfu.py --agent ws://127.0.0.1:7070 [--token-file F]

``--broken MODE`` makes it deliberately non-conformant (the conformance kit's
own tests use these to prove the kit catches each mistake):

* ``wrong-hash``: hashes JSON with ``\\uXXXX`` escapes for non-ASCII
  (Python's ``json.dumps`` default) instead of the canonical raw UTF-8;
* ``missing-nonce``: leaves ``nonce`` out of its acks and nacks;
* ``crash-on-bad-frame``: exits when a frame is not valid JSON instead of
  closing the link with 4001 and re-dialing.

It reports call health (PROTOCOL.md section 15) with zero counters, as it
hosts no calls; ``--no-health`` turns that optional feature off.

Exit status: 0 on SIGINT/SIGTERM, 2 on a usage error, 70 after a deliberate crash.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import signal
import sys
from typing import Any, Optional

from sfu_config_client import ConfigRejected, SfuConfigClient

BROKEN_MODES = ("wrong-hash", "missing-nonce", "crash-on-bad-frame")
AUDIO_CODECS = {"opus", "pcmu", "pcma"}
VIDEO_CODECS = {"vp8", "vp9", "h264", "av1"}


class ConfigStore:
    """The SFU's in-memory config. ``apply`` is the client's callback."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.config: Optional[dict] = None

    def apply(self, config: dict, message: dict) -> None:
        """Accepts ``config`` or raises :class:`ConfigRejected`; never touches live sessions."""
        server = config.get("server")
        port = server.get("port") if isinstance(server, dict) else None
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigRejected("INVALID_CONFIG", "server.port must be an integer 1..65535", "/server/port")
        webrtc = config.get("webrtc")
        codecs = webrtc.get("codecs") if isinstance(webrtc, dict) else None
        if not isinstance(codecs, list) or not AUDIO_CODECS & set(codecs) or not VIDEO_CODECS & set(codecs):
            raise ConfigRejected("INVALID_CONFIG", "webrtc.codecs needs an audio and a video codec", "/webrtc/codecs")
        if self.config is not None and self.config["server"]["port"] != port:
            raise ConfigRejected(
                "RESTART_REQUIRED",
                f"server.port {self.config['server']['port']} -> {port} needs a restart",
                "/server/port",
            )
        level = (config.get("logging") or {}).get("level", "info")
        self.log.setLevel(getattr(logging, {"trace": "DEBUG", "fatal": "CRITICAL"}.get(level, level).upper(), logging.INFO))
        self.config = config
        self.log.info("now running config version %s", message["version"])

    def health(self) -> dict:
        """Call-health counters since the current config was applied: this toy hosts no calls."""
        return {"joins": 0, "joinFailures": 0, "iceConnected": 0, "iceFailures": 0}


class WrongHashClient(SfuConfigClient):
    """Hashes with ASCII escapes: differs from the canonical hash on any non-ASCII string."""

    def config_hash(self, config: dict) -> str:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


class MissingNonceClient(SfuConfigClient):
    """Leaves the nonce out of every reply."""

    def reply_for(self, message: dict, error: Optional[dict]) -> dict:
        reply = super().reply_for(message, error)
        del reply["nonce"]
        return reply


class CrashOnBadFrameClient(SfuConfigClient):
    """Dies on a frame that is not JSON instead of closing 4001 and re-dialing."""

    async def on_protocol_violation(self, ws: Any, code: int, reason: str) -> None:
        if code == 4001:
            self.log.critical("crashing on a bad frame (--broken crash-on-bad-frame): %s", reason)
            os._exit(70)
        await super().on_protocol_violation(ws, code, reason)


CLIENTS = {
    None: SfuConfigClient,
    "wrong-hash": WrongHashClient,
    "missing-nonce": MissingNonceClient,
    "crash-on-bad-frame": CrashOnBadFrameClient,
}


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description="Toy SFU fed by sfu-config/1 (in-memory config store).")
    parser.add_argument("--agent", default="ws://127.0.0.1:7070", help="agent URL (default %(default)s)")
    parser.add_argument("--token-file", help="file holding the bearer token the agent requires")
    parser.add_argument("--name", default="example-python-sfu", help="name reported in hello")
    parser.add_argument("--broken", choices=BROKEN_MODES, help="be deliberately non-conformant")
    parser.add_argument("--no-health", action="store_true", help="do not report call health (the optional feature)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("example_sfu")
    store = ConfigStore(log)
    try:
        client = CLIENTS[args.broken](
            args.agent,
            store.apply,
            name=args.name,
            version="0.1.0",
            token_file=args.token_file,
            health=None if args.no_health else store.health,
        )
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    if args.token_file is not None and not os.access(args.token_file, os.R_OK):
        parser.error(f"--token-file {args.token_file} is not readable")

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, client.stop)
        await client.run()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
