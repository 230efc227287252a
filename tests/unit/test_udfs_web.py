"""udfs.web as plain Python: browser family and device class of real user agents."""

import pytest

from udfs.web import DEVICE_CLASSES, browser_family, device_family

pytestmark = pytest.mark.unit

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
EDGE_WIN = CHROME_WIN + " Edg/120.0.0.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
CHROMEBOOK = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
PIXEL = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
SAMSUNG_PHONE = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
GALAXY_TAB = (
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36"
)
KINDLE = (
    "Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Silk/119.3.1 like Chrome/119.0.6045.193 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
PS5 = "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)"

CASES = [
    # (user agent, browser family, device class)
    (CHROME_WIN, "Chrome", "desktop"),
    (EDGE_WIN, "Edge", "desktop"),
    (SAFARI_MAC, "Safari", "desktop"),
    (FIREFOX_LINUX, "Firefox", "desktop"),
    (CHROMEBOOK, "Chrome", "desktop"),
    (IPHONE, "Mobile Safari", "mobile"),
    (PIXEL, "Chrome Mobile", "mobile"),
    (SAMSUNG_PHONE, "Samsung Internet", "mobile"),
    (IPAD, "Mobile Safari", "tablet"),
    (GALAXY_TAB, "Chrome", "tablet"),
    (KINDLE, "Amazon Silk", "tablet"),
    (GOOGLEBOT, "Googlebot", "bot"),
    (BINGBOT, "bingbot", "bot"),
    ("curl/8.4.0", "curl", "bot"),
    ("python-requests/2.31.0", "Python Requests", "bot"),
    (PS5, "Apple Mail", "other"),  # uap-core's browser guess for the PS5 WebKit shell
    ("", "Other", "other"),
    ("something nobody ships/1.0", "Other", "other"),
]


@pytest.mark.parametrize(("ua", "browser", "device"), CASES)
def test_user_agents(ua: str, browser: str, device: str) -> None:
    assert browser_family(ua) == browser
    assert device_family(ua) == device
    assert device in DEVICE_CLASSES


def test_null_in_null_out() -> None:
    assert browser_family(None) is None
    assert device_family(None) is None


def test_results_are_cached() -> None:
    device_family.cache_clear()
    device_family(IPHONE)
    device_family(IPHONE)
    assert device_family.cache_info().hits == 1
