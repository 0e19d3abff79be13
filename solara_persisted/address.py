"""Where a session's state lives: a digest of the session cookie and the kernel id.

The kernel id is public (it travels in the websocket URL and in logs) and any client may present
any id; the session cookie is the credential. So the storage key of a kernel's state is
``SOLARA_STATE_PREFIX`` + ``session_address(cookie, kernel id)``: another cookie addresses another
hash, and nothing a client chooses ever becomes a raw key name. The digests are unkeyed on
purpose: they must survive a rotation of ``SOLARA_STATE_SECRET_KEYS``, and the cookie (a random
token only its browser holds) is what makes them unguessable.

An address is ``{S}K``: ``S`` digests the cookie alone and ``K`` the cookie and the kernel id,
10 base64url characters (60 bits) each. The braces are a Redis Cluster hash tag, so every hash
of one browser session lands in one slot (state shared by a session's tabs can then be read in
the same atomic script as a kernel's own), while sessions spread over the cluster. The state a
browser session's tabs share (``scope="session"``) lives at ``{S}`` alone: ``shared_address``.
"""

from __future__ import annotations

import base64
import hashlib
import re

SESSION_DOMAIN = b"solara-persisted/address/session/v1"
KERNEL_DOMAIN = b"solara-persisted/address/kernel/v1"
#: Characters kept of each digest: 10 base64url characters are 60 bits.
PART_LENGTH = 10
ADDRESS_LENGTH = 2 * PART_LENGTH + 2
ADDRESS = re.compile(r"\{[A-Za-z0-9_-]{10}\}[A-Za-z0-9_-]{10}")
SHARED_ADDRESS_LENGTH = PART_LENGTH + 2


def _digest(*parts: bytes) -> str:
    """``PART_LENGTH`` base64url characters of SHA-256 over the length-prefixed ``parts``."""
    message = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
    return base64.urlsafe_b64encode(hashlib.sha256(message).digest()).decode("ascii")[:PART_LENGTH]


def session_address(session_id: str, kernel_id: str) -> str:
    """The storage address of ``kernel_id``'s state for the session cookie ``session_id``."""
    cookie = session_id.encode("utf-8", "surrogatepass")
    session = _digest(SESSION_DOMAIN, cookie)
    kernel = _digest(KERNEL_DOMAIN, cookie, kernel_id.encode("utf-8", "surrogatepass"))
    return f"{{{session}}}{kernel}"


def shared_address(address: str) -> str:
    """The address of the state shared by every tab of ``address``'s browser session: its ``{S}``.

    It names the cookie's digest alone, so a session's kernels all find it, and it is in the same
    Cluster slot as each of their own hashes (read and written in the same script).
    """
    return address[:SHARED_ADDRESS_LENGTH]
