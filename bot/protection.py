"""Name the bot protection (Cloudflare, F5, DDoS-Guard) that answered instead of the feed.

Pure: a status, the response headers and the first bytes of the body in, a name or None out.
Every marker here is one that the vendors put on their challenge or block pages only, not on the
ordinary pages they proxy: `server: cloudflare`, Cloudflare's `/cdn-cgi/challenge-platform/`
script and F5's `/TSPD/` script also appear on normal pages, so they never suffice on their own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["HEAD_BYTES", "detect"]

HEAD_BYTES = 64 * 1024  # how much of a body detect() needs: every marker sits in the first KBs

_BLOCK_STATUSES = frozenset({403, 429, 503})

_CF_TITLE = re.compile(rb"<title>\s*just a moment(?:\.\.\.|\xe2\x80\xa6)?\s*</title>", re.I)
_CF_CHALLENGE = (b"_cf_chl_opt", b"cf-challenge-running", b"cf_chl_prog")
_CF_BLOCK = re.compile(rb"<title>\s*attention required!\s*\|\s*cloudflare\s*</title>", re.I)
_F5_CHALLENGE = b"bobcmn"
_F5_SCRIPTS = (b"/TSPD/", b"TSPD_101")
_F5_REJECTED = b"The requested URL was rejected. Please consult with your administrator."
_DDG_CHALLENGE = b"/.well-known/ddos-guard/"
_DDG_MARKERS = (b"ddos-guard.net", b"DDoS-Guard")
_DDG_TITLE = re.compile(rb"<title>\s*ddos-guard\s*</title>", re.I)


def detect(status: int, headers: Mapping[str, str], body_head: bytes) -> str | None:
    """The name of the protection that answered (e.g. "Cloudflare challenge"), else None."""
    lowered = {name.lower(): value for name, value in headers.items()}
    # Several Server values arrive joined by commas; any of them may be the proxy's.
    servers = {part.strip().lower() for part in lowered.get("server", "").split(",")}
    blocked_status = status in _BLOCK_STATUSES

    # Cloudflare sets cf-mitigated only on answers it produced itself in place of the origin's.
    if lowered.get("cf-mitigated", "").strip().lower() == "challenge":
        return "Cloudflare challenge"
    if any(marker in body_head for marker in _CF_CHALLENGE):
        return "Cloudflare challenge"
    # The title alone could be an odd site's own; with a blocking status or Cloudflare as the
    # server it is the interstitial.
    if _CF_TITLE.search(body_head) and (blocked_status or "cloudflare" in servers):
        return "Cloudflare challenge"
    if status == 403 and "cloudflare" in servers and _CF_BLOCK.search(body_head):
        return "Cloudflare block"

    if _F5_CHALLENGE in body_head:
        return "F5 bot defense"
    # Normal F5-protected pages load a /TSPD/ script too: only an error page that does counts.
    if status >= 400 and any(marker in body_head for marker in _F5_SCRIPTS):
        return "F5 bot defense"
    if _F5_REJECTED in body_head:  # F5's WAF block page, often sent with a 200
        return "F5 web application firewall"

    if _DDG_CHALLENGE in body_head or _DDG_TITLE.search(body_head):
        return "DDoS-Guard"
    if status >= 400 and any(marker in body_head for marker in _DDG_MARKERS):
        return "DDoS-Guard"
    # DDoS-Guard names itself as the server on every page it proxies (and on the origin's own
    # errors, 503 included), so only its refusal counts.
    if status == 403 and any(server.startswith("ddos-guard") for server in servers):
        return "DDoS-Guard"
    return None
