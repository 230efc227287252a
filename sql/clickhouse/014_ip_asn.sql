-- 014_ip_asn: which network (autonomous system) a client address belongs to, at query time.
--
-- Input:  the reference rows below (IPv4 CIDR -> AS number and organisation), client_activity.
-- Output: ip_asn (the ranges), client_activity_asn (a view: client_activity with asn, as_org).
-- Params: {database}.
--
-- The data is a small bundled sample, not a full routing table: well-known, long-stable
-- allocations (public resolvers, a CDN, whole /8s of their original holders) and the RFC 5737
-- documentation networks under the RFC 5398 documentation AS numbers, which tests and scripted
-- attacks use. An address in no listed range is unattributed: asn 0, as_org ''. A new or changed
-- range is a new migration (an applied one is checksummed).
--
-- Rules of the data, enforced by the table: a range is a CIDR of /8 or longer, so it lies inside
-- one /8 (first_octet, the join's equality key); ranges do not overlap (the ASOF join takes the
-- range that starts last at or below the address, then checks its end).
CREATE TABLE IF NOT EXISTS {database}.ip_asn
(
    cidr         String,
    asn          UInt32,
    as_org       String,
    range_start  UInt32 MATERIALIZED toUInt32(tupleElement(IPv4CIDRToRange(
                     toIPv4(splitByChar('/', cidr)[1]), toUInt8(splitByChar('/', cidr)[2])), 1)),
    range_end    UInt32 MATERIALIZED toUInt32(tupleElement(IPv4CIDRToRange(
                     toIPv4(splitByChar('/', cidr)[1]), toUInt8(splitByChar('/', cidr)[2])), 2)),
    first_octet  UInt8 MATERIALIZED intDiv(range_start, 16777216),
    CONSTRAINT prefix_within_one_slash8 CHECK toUInt8(splitByChar('/', cidr)[2]) BETWEEN 8 AND 32
)
ENGINE = ReplacingMergeTree
ORDER BY (first_octet, range_start);

-- INSERT ... SELECT, not VALUES: a row the constraint refuses fails the migration (through the
-- embedded server a refused VALUES row was dropped without an error).
INSERT INTO {database}.ip_asn (cidr, asn, as_org)
SELECT cidr, asn, as_org FROM values('cidr String, asn UInt32, as_org String',
    ('1.1.1.0/24', 13335, 'Cloudflare, Inc.'),
    ('1.0.0.0/24', 13335, 'Cloudflare, Inc.'),
    ('8.8.8.0/24', 15169, 'Google LLC'),
    ('8.8.4.0/24', 15169, 'Google LLC'),
    ('9.9.9.0/24', 19281, 'Quad9'),
    ('17.0.0.0/8', 714, 'Apple Inc.'),
    ('208.67.222.0/24', 36692, 'Cisco OpenDNS, LLC'),
    ('208.67.220.0/24', 36692, 'Cisco OpenDNS, LLC'),
    ('192.0.2.0/24', 64496, 'Documentation (TEST-NET-1)'),
    ('198.51.100.0/24', 64497, 'Documentation (TEST-NET-2)'),
    ('203.0.113.0/24', 64498, 'Documentation (TEST-NET-3)'));

-- client_activity rows with the network of their client: ASOF LEFT JOIN on the first octet
-- (equality) and range_start <= the address, then the range's end decides (an address between two
-- ranges of one /8 gets the lower one's row, which must not count). Not IPv4 (an IPv6 client,
-- garbage): address 0, no range. FINAL on client_activity, as its other readers; the window
-- caveats are client_activity's (HOP windows overlap: sum over the tiling ones). Cost: the ranges
-- are a hash table of a few rows; a time filter on window_end reaches client_activity's sorting
-- key.
CREATE VIEW IF NOT EXISTS {database}.client_activity_asn AS
SELECT
    c.window_start AS window_start,
    c.window_end   AS window_end,
    c.client_ip    AS client_ip,
    c.country      AS country,
    c.requests     AS requests,
    c.errors       AS errors,
    c.bytes        AS bytes,
    if(c.ip <= a.range_end AND a.asn != 0, a.asn, 0)    AS asn,
    if(c.ip <= a.range_end AND a.asn != 0, a.as_org, '') AS as_org
FROM
(
    SELECT window_start, window_end, client_ip, country, requests, errors, bytes,
           toUInt32(toIPv4OrZero(client_ip)) AS ip, toUInt8(intDiv(ip, 16777216)) AS octet
    FROM {database}.client_activity FINAL
) AS c
ASOF LEFT JOIN
(
    SELECT first_octet, range_start, range_end, asn, as_org FROM {database}.ip_asn FINAL
) AS a
    ON c.octet = a.first_octet AND c.ip >= a.range_start
SETTINGS join_use_nulls = 0;
