"""Wiring: the only place that knows both rooms. Builds the Bolt app and serves it.

HTTP mode: a waitress WSGI server tuned for the internet (bot.http_server) in front of Bolt's WSGI adapter,
serving ``POST /slack/events`` and ``GET /healthz``. Socket Mode when ``SLACK_APP_TOKEN`` is set,
with ``/healthz`` still served for the container's health check.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot.http_server import HttpServer
from bot.services import Services
from bot.settings import SettingsError

__all__ = ["Health", "HttpServer", "build_app", "build_client", "run", "wsgi_app"]

log = logging.getLogger(__name__)


def build_client(services: Services) -> WebClient:
    """A WebClient that retries Slack's rate limits (honouring Retry-After) and dropped connections."""
    settings = services.settings
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
        ],
    )


def build_app(services: Services, *, client: WebClient | None = None) -> App:
    """The Bolt app with every handler registered. Needs SLACK_BOT_TOKEN (and, in HTTP mode,
    SLACK_SIGNING_SECRET)."""
    settings = services.settings
    if settings.slack_bot_token is None:
        raise SettingsError("SLACK_BOT_TOKEN: is required")
    if not settings.socket_mode and settings.slack_signing_secret is None:
        raise SettingsError(
            "SLACK_SIGNING_SECRET: is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    client = client or build_client(services)
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value()
        if settings.slack_signing_secret
        else None,
        # auth.test at start-up proves the token before we accept traffic.
        token_verification_enabled=True,
        # Acks go out as soon as a listener calls ack(); slow work continues on Bolt's worker threads.
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )

    @app.error
    def on_error(error: Exception, body: dict, logger: logging.Logger) -> BoltResponse | None:
        # Context for the log, never tokens or credentials: only ids and the kind of payload.
        kind = body.get("type") or ("slash_command" if "command" in body else "unknown")
        user = (body.get("user") or {}).get("id") or body.get("user_id")
        logger.error("unhandled %s from %s: %s: %s", kind, user, type(error).__name__, error, exc_info=error)
        return BoltResponse(
            status=200,
            body=json.dumps(
                {
                    "response_type": "ephemeral",
                    "text": "Sorry, that failed on our side. It is logged and nothing was changed.",
                }
            ),
            headers={"content-type": "application/json"},
        )

    from handlers import register_all

    register_all(app, services)
    return app


@dataclass
class Health:
    services: Services
    socket_connected: Callable[[], bool] | None = None

    def report(self) -> tuple[int, dict[str, Any]]:
        db_ok = self.services.store.ping()
        body: dict[str, Any] = {"db": "ok" if db_ok else "unreachable"}
        ok = db_ok
        if self.socket_connected is not None:
            connected = bool(self.socket_connected())
            body["socket_mode"] = "connected" if connected else "disconnected"
            ok = ok and connected
        body["status"] = "ok" if ok else "unhealthy"
        return (200 if ok else 503), body


def wsgi_app(app: App | None, health: Health) -> Callable:
    """WSGI: ``GET /healthz`` here, ``POST /slack/events`` through the request gate to Bolt's adapter."""
    bolt: Callable | None = None
    if app is not None:
        from bot.replay import SeenRequests
        from handlers.request_gate import RequestGate

        secret = health.services.settings.slack_signing_secret
        bolt = SlackRequestHandler(app)
        if secret is not None:
            # Verify, de-duplicate and parse-check before Bolt sees a byte (see handlers.request_gate).
            bolt = RequestGate(bolt, secret.get_secret_value(), SeenRequests(health.services.store))

    def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            status, body = health.report()
            payload = json.dumps(body).encode()
            start_response(
                f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        if bolt is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not Found"]
        return bolt(environ, start_response)

    return application


def run(services: Services) -> None:
    """``iamwarden run``: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP mode."""
    settings = services.settings
    app = build_app(services)
    from bot.jobs import start_background_jobs

    stop_jobs = start_background_jobs(services, app.client)
    try:
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            handler = SocketModeHandler(app, settings.slack_app_token.get_secret_value())
            health = HttpServer(
                wsgi_app(None, Health(services, socket_connected=lambda: handler.client.is_connected())),
                host=settings.host,
                port=settings.port,
                threads=2,
            ).start()
            log.info("iamwarden running in Socket Mode; health on %s/healthz", health.url)
            try:
                handler.start()
            finally:
                health.stop()
        else:
            log.info(
                "iamwarden running in HTTP mode on %s:%s (POST /slack/events)", settings.host, settings.port
            )
            HttpServer(
                wsgi_app(app, Health(services)), host=settings.host, port=settings.port, threads=16
            ).serve_forever()
    finally:
        stop_jobs()
