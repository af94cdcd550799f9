"""Wiring: the only place that knows both rooms. Builds the Bolt app and serves it.

HTTP mode: a waitress WSGI server tuned for the internet (iamwarden.http_server) in front of Bolt's WSGI adapter,
serving ``POST /slack/events`` and ``GET /healthz``. Socket Mode when ``SLACK_APP_TOKEN`` is set,
with ``/healthz`` still served for the container's health check.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from bot.jobs import start_background_jobs
from bot.replay import SeenRequests
from bot.services import Services
from bot.settings import SettingsError
from handlers import register_all
from handlers.background import SlowWork
from handlers.client import build_client
from handlers.request_gate import RequestGate
from iamwarden.features import load
from iamwarden.http_server import HttpServer

__all__ = ["Health", "HttpServer", "build_app", "build_client", "run", "wsgi_app"]

log = logging.getLogger(__name__)

# Bolt's listener threads: they run listeners up to their ack and hand the rest to SlowWork.
ACK_THREADS = 16


class _DropWarningsWhileBuilding(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING


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
    # Two pools: Bolt's listener executor only ever acknowledges (listeners hand everything slow to
    # SlowWork), so a Web API call stuck on Slack's rate limit can never hold a thread an ack needs.
    services.extras.setdefault("slow_work", SlowWork())
    # Our client carries the token; Bolt would warn that SLACK_BOT_TOKEN (also in the environment)
    # is "unused" on every start. Quiet for construction only.
    bolt_logger = logging.getLogger("slack_bolt.App")
    quiet = _DropWarningsWhileBuilding()
    bolt_logger.addFilter(quiet)
    try:
        app = App(
            listener_executor=ThreadPoolExecutor(max_workers=ACK_THREADS, thread_name_prefix="iamwarden-ack"),
            client=client,
            signing_secret=settings.slack_signing_secret.get_secret_value()
            if settings.slack_signing_secret
            else None,
            # auth.test at start-up proves the token before we accept traffic.
            token_verification_enabled=True,
            # Acks go out as soon as a listener calls ack(); slow work continues on SlowWork's threads.
            process_before_response=False,
            raise_error_for_unhandled_request=False,
        )
    finally:
        bolt_logger.removeFilter(quiet)

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

    register_all(app, services)
    return app


@dataclass
class Health:
    """``GET /healthz``: the database accepts a write, the scheduler is alive (when ``iamwarden run``
    started one) and, in Socket Mode, the socket is connected. Cheap: one tiny upsert."""

    services: Services
    socket_connected: Callable[[], bool] | None = None

    def report(self) -> tuple[int, dict[str, Any]]:
        db_ok = self.services.store.ping(write=True)
        body: dict[str, Any] = {"db": "ok" if db_ok else "not writable"}
        ok = db_ok
        scheduler = self.services.extras.get("scheduler")
        if scheduler is not None:
            alive = bool(getattr(scheduler, "running", False)) and _thread_alive(scheduler)
            body["scheduler"] = "running" if alive else "stopped"
            ok = ok and alive
        if self.socket_connected is not None:
            connected = bool(self.socket_connected())
            body["socket_mode"] = "connected" if connected else "disconnected"
            ok = ok and connected
        body["status"] = "ok" if ok else "unhealthy"
        return (200 if ok else 503), body


def _thread_alive(scheduler: Any) -> bool:
    # APScheduler 3's BackgroundScheduler runs its loop on ``_thread``; a crashed loop leaves
    # ``running`` set, so the thread is checked too.
    thread = getattr(scheduler, "_thread", None)
    return thread is None or thread.is_alive()


def wsgi_app(app: App | None, health: Health) -> Callable:
    """WSGI: ``GET /healthz`` here, ``POST /slack/events`` through the request gate to Bolt's adapter."""
    bolt: Callable | None = None
    if app is not None:
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


def verify_slack(services: Services) -> None:
    """``auth.test`` before anything starts: an invalid token or an unreachable Slack is one line
    (SettingsError), never a traceback."""
    import urllib.error

    from slack_sdk.errors import SlackApiError

    settings = services.settings
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    # Quiet and without retries: the one line below says everything (slack_sdk would log each try).
    quiet = logging.getLogger("iamwarden.startup.slack")
    quiet.setLevel(logging.CRITICAL + 1)
    quiet.propagate = False
    client = WebClient(
        token=token, base_url=settings.slack_api_url, timeout=10, logger=quiet, retry_handlers=[]
    )
    try:
        client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else "error"
        raise SettingsError(
            f"SLACK_BOT_TOKEN: Slack refused the token ({error}); use the app's Bot User OAuth Token (xoxb-…)"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SettingsError(
            f"IAMWARDEN_SLACK_API_URL: cannot reach Slack at {settings.slack_api_url} ({reason}); "
            "check the network, proxy or URL"
        ) from None


def _listening(server: HttpServer, settings: Any) -> HttpServer:
    try:
        return server.start()
    except OSError as exc:
        raise SettingsError(
            f"IAMWARDEN_PORT: cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc})"
        ) from None


def run(services: Services) -> None:
    """``iamwarden run``: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP mode.

    Everything that can be wrong at start-up (token, Slack reachable, the port) is checked before
    the scheduler starts, so a fault is one line and nothing half-started is left behind."""
    settings = services.settings
    verify_slack(services)
    app = build_app(services)
    load("jobs")  # every feature's @job declarations, before the scheduler reads them

    if settings.socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(app, settings.slack_app_token.get_secret_value())
        server = HttpServer(
            wsgi_app(None, Health(services, socket_connected=lambda: handler.client.is_connected())),
            host=settings.host,
            port=settings.port,
            threads=2,
        )
    else:
        server = HttpServer(
            wsgi_app(app, Health(services)), host=settings.host, port=settings.port, threads=16
        )
    _listening(server, settings)
    stop_jobs = start_background_jobs(services, app.client)
    try:
        if settings.socket_mode:
            log.info("iamwarden running in Socket Mode; health on %s/healthz", server.url)
            handler.start()
        else:
            log.info(
                "iamwarden running in HTTP mode on %s:%s (POST /slack/events)", settings.host, server.port
            )
            server.wait()
    finally:
        server.stop()
        stop_jobs()
