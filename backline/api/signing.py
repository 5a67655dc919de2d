"""Signed, expiring URLs for Backline-hosted files (avatars, exports).

``/api/files/...`` paths get ``?expires=<epoch>&signature=<hmac-sha256>`` under the
server's secret key; a file route verifies with :func:`verify_signed_path`. External
https URLs are returned unchanged (they are not ours to sign).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

DEFAULT_TTL = 3600


def _signature(secret: str, path: str, expires: int) -> str:
    message = f"{path}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_path(secret: str, path: str, ttl: int = DEFAULT_TTL, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + ttl)
    query = urlencode({"expires": expires, "signature": _signature(secret, path, expires)})
    return f"{path}?{query}"


def verify_signed_path(
    secret: str, path: str, expires: str | int, signature: str, now: float | None = None
) -> bool:
    try:
        exp = int(expires)
    except (TypeError, ValueError):
        return False
    if exp < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(_signature(secret, path, exp), signature or "")


def signed_avatar_url(secret: str, public_url: str, avatar: str | None) -> str | None:
    if not avatar:
        return None
    if avatar.startswith("/api/files/"):
        return public_url + sign_path(secret, avatar)
    return avatar
