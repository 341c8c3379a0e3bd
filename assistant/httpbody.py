"""Reading the body of a streamed HTTP response from a server we do not control, never more than we mean to hold."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


async def read_at_most(response: httpx.Response, limit: int) -> bytes:
    """Return the first ``limit`` bytes of ``response``'s body; the rest is left unread."""
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) >= limit:
            break
    return bytes(body[:limit])
