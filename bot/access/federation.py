"""Console sign-in links through the AWS federation endpoint.

``signin_url`` exchanges session credentials for a sign-in token (``Action=getSigninToken``) and
builds the ``Action=login`` URL. The token is as good as the credentials: it is returned to the
caller for the requester's eyes only and never logged. The endpoint is configurable
(``[access] federation_url``) so tests and the demo use ``sandbox.federation.FederationStandIn``
on loopback.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from urllib.parse import urlencode

from bot.access import SCRUBBER, IssuedCredentials

log = logging.getLogger(__name__)

CONSOLE_URL = "https://console.aws.amazon.com/"
ISSUER = "iamwarden"


class FederationError(Exception):
    """The sign-in link could not be made; the message never contains credentials."""


def signin_url(federation_url: str, creds: IssuedCredentials, *, timeout: float = 10.0) -> str:
    """A console sign-in URL for ``creds`` (valid about 15 minutes, as AWS issues them)."""
    session = json.dumps(
        {
            "sessionId": creds.access_key_id,
            "sessionKey": creds.secret_access_key.get_secret_value(),
            "sessionToken": creds.session_token.get_secret_value(),
        }
    )
    query = urlencode({"Action": "getSigninToken", "Session": session})
    try:
        with urllib.request.urlopen(f"{federation_url}?{query}", timeout=timeout) as reply:  # noqa: S310 - configured https endpoint
            token = json.loads(reply.read())["SigninToken"]
    except urllib.error.HTTPError as exc:
        raise FederationError(f"the federation endpoint answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FederationError(f"could not reach the federation endpoint ({type(exc).__name__})") from None
    except (ValueError, KeyError, TypeError):
        raise FederationError("the federation endpoint's answer had no sign-in token") from None
    SCRUBBER.add(token, creds.expiration)
    return f"{federation_url}?" + urlencode(
        {"Action": "login", "Issuer": ISSUER, "Destination": CONSOLE_URL, "SigninToken": token}
    )
