"""bot.protection.detect on its own, and fetch_feed naming the protection a real server sent."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bot.fetch import FetchError, fetch_feed, make_client
from bot.protection import detect
from tests.conftest import SAMPLES
from tests.fakes.feed_server import HTML, RSS, FeedServer

RSS_BODY = (SAMPLES / "embassy-rss.xml").read_bytes()

# Trimmed from real interstitials: each keeps the markers the vendors' pages carry.
CLOUDFLARE_CHALLENGE = b"""<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow"></head><body><div class="main-wrapper">
<h1 class="zone-name-title h1">www.example.org</h1>
<h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2>
<noscript><div class="h2"><span id="challenge-error-text">Enable JavaScript and cookies to
continue</span></div></noscript></div>
<script>(function(){window._cf_chl_opt={cvId: '3',cZone: "www.example.org",cType: 'managed',
cRay: '8a1b2c3d4e5f6071'};var cpo = document.createElement('script');
cpo.src = '/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=8a1b2c3d4e5f6071';
document.getElementsByTagName('head')[0].appendChild(cpo);}());</script></body></html>"""

CLOUDFLARE_TITLE_ONLY = b"""<!DOCTYPE html><html><head><title>Just a moment...</title></head>
<body><p>Please wait while your request is being verified...</p></body></html>"""

CLOUDFLARE_BLOCK = b"""<!DOCTYPE html><html class="no-js" lang="en-US"><head>
<title>Attention Required! | Cloudflare</title></head><body><div id="cf-wrapper">
<h1 data-translate="block_headline">Sorry, you have been blocked</h1>
<h2 class="cf-subheadline">You are unable to access example.org</h2></div></body></html>"""

F5_CHALLENGE = b"""<html><head><meta http-equiv="Pragma" content="no-cache"/>
<script type="text/javascript">window["bobcmn"] = "101111111110102000000042000000052000000052";
window.aht=!!window.aht;try{(function(){})();}catch(e){}</script>
<script type="text/javascript" src="/TSPD/082f0b5a3cab200041ee9f4cd3bb?type=9"></script>
<noscript>Please enable JavaScript to view the page content.<br/>Your support ID is:
12345678901234567890.</noscript></head><body></body></html>"""

F5_REJECTED = b"""<html><head><title>Request Rejected</title></head><body>The requested URL was
rejected. Please consult with your administrator.<br><br>Your support ID is:
1234567890123456789<br><br><a href='javascript:history.back();'>[Go Back]</a></body></html>""".replace(
    b"was\nrejected", b"was rejected"
)

DDOS_GUARD_CHALLENGE = b"""<!DOCTYPE html><html><head><title>DDoS-Guard</title>
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
</head><body><div id="ddg-l10n-title">Checking your browser before accessing</div>
<script src="/.well-known/ddos-guard/check?context=free_splash"></script>
<a href="https://ddos-guard.net/" target="_blank">DDoS-Guard</a></body></html>"""

# Ordinary pages the same vendors serve: never a protection.
CLOUDFLARE_NORMAL_PAGE = b"""<!DOCTYPE html><html><head><title>Statements</title></head><body>
<ul><li><a href="/fnapr/7012">President's telephone conversation</a></li></ul>
<script>(function(){function c(){var b=a.contentDocument||a.contentWindow.document;if(b){var
d=b.createElement('script');d.innerHTML="window.__CF$cv$params={r:'8a1b2c3d',t:'MTcw'};var
a=document.createElement('script');a.src='/cdn-cgi/challenge-platform/scripts/jsd/main.js';
document.getElementsByTagName('head')[0].appendChild(a);";}}}());</script></body></html>"""

F5_NORMAL_PAGE = b"""<!DOCTYPE html><html><head><title>News</title>
<script type="text/javascript" src="/TSPD/08a1b2c3d4?type=17"></script></head>
<body><h1>News</h1><p>Statement of the Ministry</p></body></html>"""

ARTICLE_ABOUT_WAITING = b"""<!DOCTYPE html><html><head><title>Just a moment</title></head>
<body><p>A statement about DDoS-Guard and Cloudflare, in plain words.</p></body></html>"""


@pytest.mark.parametrize(
    ("status", "headers", "body", "name"),
    [
        (
            403,
            {"Server": "cloudflare", "cf-mitigated": "challenge"},
            CLOUDFLARE_CHALLENGE,
            "Cloudflare challenge",
        ),
        (503, {"Server": "cloudflare"}, CLOUDFLARE_CHALLENGE, "Cloudflare challenge"),
        (403, {"CF-Mitigated": "challenge"}, b"", "Cloudflare challenge"),
        (200, {}, CLOUDFLARE_CHALLENGE, "Cloudflare challenge"),
        (503, {}, CLOUDFLARE_TITLE_ONLY, "Cloudflare challenge"),
        (200, {"Server": "cloudflare"}, CLOUDFLARE_TITLE_ONLY, "Cloudflare challenge"),
        (403, {"Server": "cloudflare"}, CLOUDFLARE_BLOCK, "Cloudflare block"),
        (200, {}, F5_CHALLENGE, "F5 bot defense"),
        (403, {}, b'<script src="/TSPD/0812?type=9"></script>', "F5 bot defense"),
        (200, {}, F5_REJECTED, "F5 web application firewall"),
        (403, {"Server": "ddos-guard"}, DDOS_GUARD_CHALLENGE, "DDoS-Guard"),
        (200, {"Server": "ddos-guard"}, DDOS_GUARD_CHALLENGE, "DDoS-Guard"),
        (403, {"Server": "ddos-guard"}, b"", "DDoS-Guard"),
        (403, {}, b"<p>blocked by <a href='https://ddos-guard.net/'>x</a></p>", "DDoS-Guard"),
    ],
    ids=[
        "cf-header-and-page",
        "cf-503-page",
        "cf-header-only",
        "cf-page-with-200",
        "cf-title-503",
        "cf-title-cloudflare-200",
        "cf-block",
        "f5-challenge",
        "f5-error-with-script",
        "f5-waf-rejected",
        "ddg-page",
        "ddg-page-200",
        "ddg-header-403",
        "ddg-link-on-error",
    ],
)
def test_protection_pages_are_named(
    status: int, headers: dict[str, str], body: bytes, name: str
) -> None:
    assert detect(status, headers, body) == name


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (200, {"Server": "cloudflare"}, CLOUDFLARE_NORMAL_PAGE),
        (200, {"Server": "cloudflare"}, RSS_BODY),
        (404, {"Server": "cloudflare"}, b"<html><title>404 Not Found</title></html>"),
        (200, {}, F5_NORMAL_PAGE),
        (200, {"Server": "ddos-guard"}, RSS_BODY),
        (503, {"Server": "ddos-guard"}, b"<html><title>503 Service Unavailable</title></html>"),
        (200, {"Server": "nginx"}, ARTICLE_ABOUT_WAITING),
        (500, {}, b"<html><body>Error</body></html>"),
        (200, {}, b""),
    ],
    ids=[
        "cf-normal-page",
        "cf-feed",
        "cf-404",
        "f5-normal-page",
        "ddg-feed",
        "ddg-503",
        "article-about-waiting",
        "plain-500",
        "empty",
    ],
)
def test_ordinary_answers_are_not_flagged(
    status: int, headers: dict[str, str], body: bytes
) -> None:
    assert detect(status, headers, body) is None


# ---- through fetch_feed, against a real local server ----------------------------------

CAP = 256 * 1024


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(0.5) as c:
        yield c


async def fetch(client: httpx.AsyncClient, url: str) -> bytes | None:
    result = await fetch_feed(client, url, max_bytes=CAP, timeout=0.5)
    return result.body


@pytest.mark.parametrize(
    ("status", "headers", "body", "name"),
    [
        (
            403,
            {"Server": "cloudflare", "cf-mitigated": "challenge"},
            CLOUDFLARE_CHALLENGE,
            "Cloudflare challenge",
        ),
        (
            503,
            {"Server": "cloudflare", "Retry-After": "30"},
            CLOUDFLARE_CHALLENGE,
            "Cloudflare challenge",
        ),
        (200, {"Server": "cloudflare"}, CLOUDFLARE_CHALLENGE, "Cloudflare challenge"),
        (403, {"Server": "cloudflare"}, CLOUDFLARE_BLOCK, "Cloudflare block"),
        (200, {}, F5_CHALLENGE, "F5 bot defense"),
        (200, {}, F5_REJECTED, "F5 web application firewall"),
        (403, {"Server": "ddos-guard"}, DDOS_GUARD_CHALLENGE, "DDoS-Guard"),
        (403, {"Server": "ddos-guard"}, b"", "DDoS-Guard"),
    ],
    ids=[
        "cf-challenge-403",
        "cf-challenge-503",
        "cf-challenge-200",
        "cf-block",
        "f5-challenge",
        "f5-waf",
        "ddg-challenge",
        "ddg-header",
    ],
)
async def test_fetch_names_the_protection_that_answered(
    server: FeedServer,
    client: httpx.AsyncClient,
    status: int,
    headers: dict[str, str],
    body: bytes,
    name: str,
) -> None:
    """Issue 8.6: 'blocked by bot protection (...)' instead of 'HTTP 403' or a parse error."""
    server.status("/feed.xml", status, headers=headers, body=body, content_type=HTML)

    with pytest.raises(FetchError) as caught:
        await fetch(client, server.url("/feed.xml"))

    assert str(caught.value) == f"blocked by bot protection ({name})"
    expected_wait = 30.0 if "Retry-After" in headers else None
    assert caught.value.retry_after == expected_wait


async def test_protection_page_is_named_when_gzipped(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """The page is looked at decoded, as the vendors send it compressed."""
    server.status(
        "/feed.xml",
        403,
        headers={"Server": "cloudflare", "Content-Encoding": "gzip"},
        body=gzip.compress(CLOUDFLARE_CHALLENGE),
        content_type=HTML,
    )

    with pytest.raises(FetchError, match=r"^blocked by bot protection \(Cloudflare challenge\)$"):
        await fetch(client, server.url("/feed.xml"))


async def test_protection_marker_deep_in_a_huge_error_page_costs_at_most_the_head(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """An error page is read only as far as detect() looks, never past the cap."""
    server.status("/feed.xml", 403, body=b" " * (2 * CAP) + F5_CHALLENGE, content_type=HTML)

    with pytest.raises(FetchError, match=r"^HTTP 403"):
        await fetch(client, server.url("/feed.xml"))


@pytest.mark.parametrize(
    ("headers", "body", "content_type"),
    [
        ({"Server": "cloudflare"}, CLOUDFLARE_NORMAL_PAGE, HTML),
        ({"Server": "cloudflare"}, RSS_BODY, RSS),
        ({}, F5_NORMAL_PAGE, HTML),
        ({"Server": "ddos-guard"}, RSS_BODY, RSS),
        ({"Server": "nginx"}, ARTICLE_ABOUT_WAITING, HTML),
    ],
    ids=["cf-normal-page", "cf-feed", "f5-normal-page", "ddg-feed", "article-about-waiting"],
)
async def test_fetch_returns_ordinary_pages_behind_the_same_vendors(
    server: FeedServer,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    body: bytes,
    content_type: str,
) -> None:
    server.set("/page", body, headers=headers, content_type=content_type)

    assert await fetch(client, server.url("/page")) == body


async def test_error_status_without_protection_keeps_its_plain_reason(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.status("/feed.xml", 403, headers={"Server": "cloudflare"}, body=b"Forbidden")

    with pytest.raises(FetchError, match=r"^HTTP 403 Forbidden$"):
        await fetch(client, server.url("/feed.xml"))
