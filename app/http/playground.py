"""GET /: the playground, one self-contained HTML page (app/static/playground.html).

No build step and no network fetch beyond this service's own API: its script and styles are
inline, so it works offline and air-gapped. The page itself holds nothing secret, so it is
served without the API key; its calls to the API send the key the user types (X-API-Key).
The file is read once, when the routes are installed.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import HTMLResponse, Response

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


def install_playground_route(app: FastAPI) -> None:
    """Register GET / (no API key: the page is static; its fetches carry the key)."""
    page = PLAYGROUND_FILE.read_bytes()

    async def playground() -> Response:
        """The playground page: score as you type, see why, score a file."""
        return HTMLResponse(page, headers=_HEADERS)

    app.add_api_route(
        "/",
        playground,
        methods=["GET"],
        response_class=HTMLResponse,
        summary="Playground page",
        tags=["playground"],
    )
