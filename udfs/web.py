"""User agent -> browser family and device class, via `ua-parser` (uap-core regexes).

The regexes come from `ua-parser-builtins` (precompiled uap-core rules, Apache-2.0), so nothing
is downloaded at run time. A parse costs ~0.5-1 ms in pure Python, but user agents repeat a lot
in access logs, so results are memoised per process (LRU, 65 536 entries).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

OTHER = "Other"

#: Device classes returned by :func:`device_family`.
DEVICE_CLASSES = ("desktop", "mobile", "tablet", "bot", "other")

# Automated clients that uap-core does not mark as "Spider": crawlers that only say so in free
# text, HTTP libraries, CLI tools, headless browsers and monitoring probes.
_BOT_RE = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|archiver|curl/|wget/|python-requests|python-urllib|aiohttp"
    r"|go-http-client|java/|libwww-perl|okhttp|apache-httpclient|scrapy|headlesschrome"
    r"|phantomjs|httpclient|monitor|pingdom|uptime",
    re.IGNORECASE,
)
_MOBILE_OS = frozenset(
    {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS", "Symbian OS",
     "Tizen", "HarmonyOS", "Sailfish"}
)  # fmt: skip
_DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "macOS", "Linux", "Ubuntu", "Fedora", "Debian", "Chrome OS",
     "FreeBSD", "OpenBSD", "NetBSD", "Solaris", "Arch Linux", "Linux Mint", "openSUSE"}
)  # fmt: skip
_TABLET_DEVICES = frozenset({"iPad", "Kindle", "Generic Tablet"})
_TABLET_TOKEN_RE = re.compile(r"tablet|ipad|kindle|silk/|playbook|nexus (7|9|10)", re.IGNORECASE)


@lru_cache(maxsize=1)
def _parse() -> Any:
    """ua_parser.parse, imported on first use (loading the rules takes ~0.1 s)."""
    import ua_parser

    return ua_parser.parse


@lru_cache(maxsize=65536)
def browser_family(ua: str | None) -> str | None:
    """Browser family as uap-core names it: 'Chrome', 'Chrome Mobile', 'Firefox', 'Safari',
    'Mobile Safari', 'Edge', 'Samsung Internet', 'Googlebot', 'curl', ...

    'Other' when nothing matches (including the empty string); NULL in, NULL out.
    """
    if ua is None:
        return None
    agent = _parse()(ua).user_agent
    return agent.family if agent is not None else OTHER


@lru_cache(maxsize=65536)
def device_family(ua: str | None) -> str | None:
    """Device class: one of 'desktop', 'mobile', 'tablet', 'bot', 'other'; NULL in, NULL out.

    Rules, first match wins: 'bot' if uap-core says Spider or the agent is a known automated
    client (HTTP library, CLI tool, headless browser, monitor); 'tablet' for iPad/Kindle/Android
    tablets (uap-core's Generic_Android_Tablet, or Android without the 'Mobile' token) and agents
    saying 'Tablet'; 'mobile' for phone operating systems (iOS, Android, ...) or a 'Mobile'
    token; 'desktop' for Windows, macOS, Linux, Chrome OS and the BSDs; else 'other' (consoles,
    TVs, empty or unknown agents).
    """
    if ua is None:
        return None
    result = _parse()(ua)
    device, os_ = result.device, result.os
    device_name = device.family if device is not None else ""
    brand = (device.brand or "") if device is not None else ""
    os_name = os_.family if os_ is not None else ""
    if device_name == "Spider" or _BOT_RE.search(ua):
        return "bot"
    if (
        device_name in _TABLET_DEVICES
        or brand == "Generic_Android_Tablet"
        or _TABLET_TOKEN_RE.search(ua)
        or (os_name == "Android" and "Mobile" not in ua)
    ):
        return "tablet"
    if os_name in _MOBILE_OS or "Mobile" in ua:
        return "mobile"
    if os_name in _DESKTOP_OS:
        return "desktop"
    return "other"
