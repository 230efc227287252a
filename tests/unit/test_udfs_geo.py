"""udfs.geo as plain Python: country of known IPs (RIR data shipped by iptocc), random_ip."""

import random

import pytest

from udfs.geo import UNKNOWN, countries, ip_country, random_ip

pytestmark = pytest.mark.unit

# Long-standing registrations, read from the RIR delegated files that iptocc embeds.
KNOWN = {
    "8.8.8.8": "US",  # Google public DNS, ARIN
    "133.1.1.1": "JP",  # JPNIC legacy /8 block
    "193.0.6.139": "NL",  # RIPE NCC's own web server
    "200.160.2.3": "BR",  # NIC.br, LACNIC
    "81.2.69.142": "GB",  # Andrews & Arnold, RIPE
    "1.1.1.1": "AU",  # APNIC research prefix (Cloudflare resolver)
    "2001:4860:4860::8888": "US",  # Google public DNS over IPv6
}


@pytest.mark.parametrize(("ip", "country"), sorted(KNOWN.items()))
def test_known_ips(ip: str, country: str) -> None:
    assert ip_country(ip) == country


@pytest.mark.parametrize(
    "ip",
    ["10.0.0.1", "172.16.5.4", "192.168.1.1", "127.0.0.1", "100.64.0.1", "0.0.0.0",
     "255.255.255.255", "fe80::1", "", "not-an-ip", "999.1.1.1", "8.8.8"],
)  # fmt: skip
def test_private_reserved_and_invalid_are_zz(ip: str) -> None:
    assert ip_country(ip) == UNKNOWN == "ZZ"


def test_whitespace_and_null() -> None:
    assert ip_country(" 8.8.8.8\n") == "US"
    assert ip_country(None) is None


def test_random_ip_maps_back_to_its_country_and_is_seeded() -> None:
    assert {"US", "DE", "GB", "JP", "BR", "IN", "FR", "CN"} <= set(countries())
    for country in ("US", "DE", "GB", "JP", "BR", "IN", "FR", "TV", "VA"):
        rng = random.Random(42)
        ips = [random_ip(country, rng) for _ in range(50)]
        assert {ip_country(ip) for ip in ips} == {country}, country
        assert all(int(ip.rsplit(".", 1)[1]) not in (0, 255) for ip in ips)
        rng2 = random.Random(42)
        assert [random_ip(country, rng2) for _ in range(50)] == ips
    assert random_ip("de", random.Random(1)) == random_ip("DE", random.Random(1))


def test_random_ip_unknown_country() -> None:
    with pytest.raises(KeyError):
        random_ip("XX", random.Random(0))
