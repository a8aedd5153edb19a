"""QTickets webhooks (qtickets_api.md §12): a durable queue of order ids to re-read."""

import hashlib
import hmac


def signature(body: bytes, secret: str) -> str:
    """The vendor's `X-Signature`: hex(HMAC-SHA1(raw body, secret)), PHP's hash_hmac('sha1', ...)."""
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
