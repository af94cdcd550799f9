"""Which IAM principals a typed name means: a member mention, ``@name``, an ARN or a user/role name."""

from __future__ import annotations

import difflib
import re

from bot.identity import PrincipalRef
from bot.queries.book import SnapshotBook


class PrincipalNotFound(LookupError):
    """Nothing in the snapshots matches what was typed; ``suggestions`` are the closest names."""

    def __init__(self, query: str, suggestions: list[str]):
        super().__init__(query)
        self.query = query
        self.suggestions = suggestions


class MemberNotMapped(LookupError):
    """A Slack member was named, but no IAM principal is linked to them."""

    def __init__(self, user_id: str):
        super().__init__(user_id)
        self.user_id = user_id


_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")


def resolve_principal(book: SnapshotBook, text: str) -> list[PrincipalRef]:
    """IAM principals named by ``text``: a member mention (``<@U…>``), ``@name``, an ARN or an IAM
    user/role name (case-insensitive, as IAM names are). Several when a member owns several, or a
    name exists in several accounts.

    Raises PrincipalNotFound (with the closest names) or MemberNotMapped.
    """
    query = text.strip()
    mention = _MENTION.match(query)
    if mention:
        return _member_principals(book, mention.group(1))
    if query.startswith("@"):
        handle = query[1:].lower()
        members = book.identity.members
        for uid, member in members.items():
            if handle in ((member.get("name") or "").lower(), (member.get("real_name") or "").lower()):
                return _member_principals(book, uid)
        names = [m.get("name") or "" for m in members.values() if m.get("name")]
        raise PrincipalNotFound(
            query, ["@" + n for n in difflib.get_close_matches(handle, names, n=3, cutoff=0.5)]
        )
    if query.startswith("arn:"):
        found = [p for p in book.principals if p.arn == query]
        if found:
            return found
        return _not_found(book, query, query.rsplit("/", 1)[-1])
    found = [p for p in book.principals if p.name.lower() == query.lower()]
    if found:
        return found
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", query) and query in book.identity.members:
        return _member_principals(book, query)
    return _not_found(book, query, query)


def _member_principals(book: SnapshotBook, user_id: str) -> list[PrincipalRef]:
    refs = book.identity.principals_of(user_id)
    if not refs:
        raise MemberNotMapped(user_id)
    return refs


def _not_found(book: SnapshotBook, query: str, name: str) -> list[PrincipalRef]:
    by_lower: dict[str, str] = {}
    for p in book.principals:
        by_lower.setdefault(p.name.lower(), p.name)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)
    raise PrincipalNotFound(query, [by_lower[c] for c in close])
