"""Where a session's state lives: a digest of the session cookie and the kernel id.

The kernel id is public (it travels in the websocket URL and in logs) and any client may present
any id; the session cookie is the credential. So the storage key of a kernel's state is
``SOLARA_STATE_PREFIX`` + ``session_address(cookie, kernel id)``: another cookie addresses another
hash, and nothing a client chooses ever becomes a raw key name. The digest is unkeyed on purpose:
it must survive a rotation of ``SOLARA_STATE_SECRET_KEYS``, and the cookie (a random token only
its browser holds) is what makes it unguessable. It is still one key per kernel, so one Cluster
slot.
"""

from __future__ import annotations

import base64
import hashlib
import re

ADDRESS_DOMAIN = b"solara-persisted/address/v1"
#: 128 bits of SHA-256, base64url without padding: 22 characters.
ADDRESS_BYTES = 16
ADDRESS_LENGTH = 22
ADDRESS = re.compile(r"[A-Za-z0-9_-]{22}")


def _lp(part: bytes) -> bytes:
    return len(part).to_bytes(4, "big") + part


def session_address(session_id: str, kernel_id: str) -> str:
    """The storage address of ``kernel_id``'s state for the session cookie ``session_id``."""
    digest = hashlib.sha256(
        _lp(ADDRESS_DOMAIN) + _lp(session_id.encode("utf-8", "surrogatepass")) + _lp(kernel_id.encode("utf-8", "surrogatepass"))
    ).digest()[:ADDRESS_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
