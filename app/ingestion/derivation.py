"""What ingestion adds to each event of a request before it is queued: the visitor's user
agent and country, and the visitor's id when the event names no user. The visitor's address
is read here and dropped: no queued message carries it (docs/visitors.md).

A server sending on a visitor's behalf names them with the body's `ip` and `user_agent`;
those are believed only from a sender with the site's server key (the gate refuses a key
of another site), or from any server with `AUTH_MODE=open`. A page's are ignored: it must not
choose whom it counts as.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import request

from app.access.origins import SERVER, Sender, request_sender
from app.extensions import redis_store
from app.ingestion.bots import bot_reason
from app.ingestion.country import country_of
from app.settings import current_settings
from app.visitors import DailySalt
from app.web.client_address import CLIENT_ENVIRON_KEY, request_client_address

# One per process: the day's salt, read from Redis once a day.
daily_salt = DailySalt()


@dataclass
class Visitor:
    """What a request says of its visitor: the address and user agent it came with, whether
    a browser sent it, and whether its events may name another visitor (a server sending on
    their behalf)."""

    address: str
    user_agent: str | None
    from_browser: bool
    # Asked only of an event that names a visitor: most name none.
    speaks_for_visitors: Callable[[], bool]
    # (site, address, user agent) -> the visitor's ids of today and of the previous day.
    _visitor_ids: Callable[[str, str, str], tuple[str, str | None]]

    def derive(self, event: dict[str, Any]) -> str | None:
        """Complete `event`, or say why it is a bot's (then it is left as it is)."""
        address, named_agent = event.pop("ip", None), event.pop("user_agent", None)
        if (address or named_agent) and not self.speaks_for_visitors():
            address = named_agent = None
        reason = self._bot_reason(named_agent)
        if reason:
            return reason
        user_agent = named_agent or self.user_agent
        if user_agent:
            event["user_agent"] = user_agent
        address = address or self.address
        country = country_of(address)
        if country:
            event["country"] = country
        if not event.get("user_id"):
            current, previous = self._visitor_ids(event["site_id"], address, user_agent or "")
            event["visitor_id"] = current
            if previous:
                event["previous_visitor_id"] = previous
        return None

    def _bot_reason(self, named_agent: str | None) -> str | None:
        # The visitor's user agent is checked, never a sending library's: a server that
        # names no visitor (the README's curl example, an SDK) is not checked at all.
        if named_agent:
            return bot_reason(named_agent)
        if self.from_browser:
            return bot_reason(self.user_agent or "")
        return None


def speaks_for_visitors(sender: Sender, auth_mode: str) -> bool:
    """Whether a sender may name the visitor its events are of: a server with the site's
    key, or, when every sender is trusted alike (`AUTH_MODE=open`), any server; never a page."""
    return sender.key_hash is not None or (auth_mode == "open" and sender.kind == SERVER)


# The longest user agent an event carries (the event field's bound).
MAX_USER_AGENT = 1024


def request_visitor() -> Visitor:
    """The visitor of the current request."""
    return Visitor(
        address=request.environ.get(CLIENT_ENVIRON_KEY) or request_client_address(),
        # Bounded as the body's `user_agent` is: each event of a batch carries it to the queue.
        user_agent=request.headers.get("User-Agent", "")[:MAX_USER_AGENT] or None,
        # What every browser sends with a page's request: its page (a POST's `Origin`) or, in
        # all current browsers, the fetch metadata; a server sends neither.
        from_browser="Origin" in request.headers or "Sec-Fetch-Site" in request.headers,
        speaks_for_visitors=lambda: speaks_for_visitors(request_sender(), current_settings().auth_mode),
        _visitor_ids=lambda *visitor: daily_salt.visitor_ids(redis_store.client, *visitor),
    )
