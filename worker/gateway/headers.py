"""Headers on every gateway response: nothing a client sent can run as markup in a browser.

AllMySMS labels its JSON ``text/html`` and some clients rely on it (esup forces its JSON
converter for ``text/html``), so the gateway keeps that type; the body escapes ``<``, ``>`` and
``&`` (:func:`worker.allmysms.flux.render`), and these headers stop a browser from sniffing or
running anything in it.
"""

from __future__ import annotations


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
}
"""No sniffing; and a body opened in a browser loads, runs and frames nothing (every answer
carries them: :class:`worker.asgi.SecurityHeaders`, and ``to_response`` for the 500 that leaves
through starlette's outermost middleware)."""
