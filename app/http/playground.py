"""GET /: the playground, one self-contained HTML page (app/http/static/playground.html).

No build step and no network fetch beyond this service's own API: its script and styles are
inline, so it works offline and air-gapped. The page itself holds nothing secret, so it is
served without the API key; its calls to the API send the key the user types (X-API-Key).
The file is read once per app, when its routes are made.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import HTMLResponse, Response

from app.protocols.base import RouteSpec

PLAYGROUND_FILE = Path(__file__).parent / "static" / "playground.html"
# The page runs only its own inline code and talks only to this origin.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def playground_route() -> RouteSpec:
    """GET / (no API key: the page is static; its fetches carry the key)."""
    page = PLAYGROUND_FILE.read_bytes()

    async def playground() -> Response:
        """The playground page: score as you type, see why, score a file."""
        return HTMLResponse(page, headers=_HEADERS)

    return RouteSpec(
        "/",
        playground,
        "GET",
        None,
        {},
        "Playground page",
        "playground",
        guarded=False,
        options={"response_class": HTMLResponse},
    )
