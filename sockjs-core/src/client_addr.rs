//! The client's address behind proxies: `Forwarded` (RFC 7239), `X-Forwarded-For` and
//! `X-Real-IP`, believed only as far as the hops that added them are trusted.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;

/// A range of addresses, `10.0.0.0/8` or `::1` (a single address), for
/// [`Options::trusted_proxies`](crate::Options::trusted_proxies).
///
/// ```
/// use sockjs_core::IpRange;
/// let private: IpRange = "10.0.0.0/8".parse()?;
/// assert!(private.contains("10.1.2.3".parse()?));
/// assert!(!private.contains("11.0.0.1".parse()?));
/// let loopback: IpRange = "::1".parse()?;
/// assert!(loopback.contains("::1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// The addresses that share their first `prefix` bits with `network` (`None` if the
    /// prefix is longer than the address).
    pub fn new(network: IpAddr, prefix: u8) -> Option<IpRange> {
        let bits = if network.is_ipv4() { 32 } else { 128 };
        (prefix <= bits).then_some(IpRange { network, prefix })
    }

    /// Whether `ip` is in the range. An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`)
    /// counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xFFu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

/// Why an [`IpRange`] did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRangeError;

impl fmt::Display for IpRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an IP address or a CIDR range")
    }
}

impl std::error::Error for IpRangeError {}

impl FromStr for IpRange {
    type Err = IpRangeError;

    fn from_str(s: &str) -> Result<IpRange, IpRangeError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| IpRangeError)?;
        let network = canonical(network);
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| IpRangeError)?,
            None => bits,
        };
        IpRange::new(network, prefix).ok_or(IpRangeError)
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The client's address: `peer` (the socket's), unless `peer` is a trusted proxy, in which
/// case the forwarding headers are read from the nearest hop outwards and the first address
/// not trusted is the client (the farthest one, if every hop is trusted). `Forwarded` is
/// read if present, else `X-Forwarded-For`, else `X-Real-IP`. Entries that are not IP
/// addresses (`unknown`, obfuscated identifiers) end the walk at the last address known.
/// The client's address behind trusted proxies, from the adapter's `peer` address
/// ([`PeerAddr`](crate::PeerAddr)) and the request's forwarding headers.
pub(crate) fn of_request(
    parts: &http::request::Parts,
    peer: Option<std::net::SocketAddr>,
    trusted: &[IpRange],
) -> Option<IpAddr> {
    Some(client_ip(peer?.ip(), &parts.headers, trusted))
}

pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpRange]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops = forwarded_for(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop else {
            return client;
        };
        client = canonical(*ip);
        if !is_trusted(client) {
            return client;
        }
    }
    client
}

/// The addresses the forwarding headers list, nearest hop last; `None` for an entry that is
/// not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| node_ip(value.trim()))
                })
            })
            .collect();
    }
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !xff.is_empty() {
        return xff
            .iter()
            .flat_map(|v| v.split(','))
            .map(|entry| node_ip(entry.trim()))
            .collect();
    }
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .map(|v| vec![node_ip(v.trim())])
        .unwrap_or_default()
}

/// An address from a forwarding header: `1.2.3.4`, `1.2.3.4:80`, `"[2001:db8::1]:80"`,
/// `2001:db8::1`.
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn ranges(list: &[&str]) -> Vec<IpRange> {
        list.iter().map(|r| r.parse().expect("range")).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        map
    }

    #[test]
    fn ranges_parse_and_match() {
        let r: IpRange = "192.168.0.0/16".parse().expect("range");
        assert!(r.contains(ip("192.168.255.1")));
        assert!(r.contains(ip("::ffff:192.168.1.1")));
        assert!(!r.contains(ip("192.169.0.1")));
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        assert!("nonsense".parse::<IpRange>().is_err());
        let odd: IpRange = "10.0.0.0/9".parse().expect("range");
        assert!(odd.contains(ip("10.127.0.1")) && !odd.contains(ip("10.128.0.1")));
        let all: IpRange = "::/0".parse().expect("range");
        assert!(all.contains(ip("2001:db8::1")));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-real-ip", "2.2.2.2")]);
        assert_eq!(
            client_ip(ip("9.9.9.9"), &h, &ranges(&["10.0.0.0/8"])),
            ip("9.9.9.9")
        );
        assert_eq!(client_ip(ip("9.9.9.9"), &h, &[]), ip("9.9.9.9"));
    }

    #[test]
    fn trusted_hops_are_walked_from_the_nearest() {
        let trusted = ranges(&["10.0.0.0/8", "127.0.0.1"]);
        // A client-supplied spoof (1.1.1.1) left of the real client (8.8.8.8).
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 8.8.8.8, 10.0.0.2")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("8.8.8.8"));
        // Every hop trusted: the farthest.
        let h = headers(&[
            ("x-forwarded-for", "10.0.0.5"),
            ("x-forwarded-for", "10.0.0.6"),
        ]);
        assert_eq!(client_ip(ip("10.0.0.7"), &h, &trusted), ip("10.0.0.5"));
        // X-Real-IP when nothing else says.
        let h = headers(&[("x-real-ip", "8.8.4.4")]);
        assert_eq!(client_ip(ip("10.1.1.1"), &h, &trusted), ip("8.8.4.4"));
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("10.1.1.1"), &HeaderMap::new(), &trusted),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn forwarded_wins_and_its_node_forms_are_read() {
        let trusted = ranges(&["10.0.0.0/8"]);
        let h = headers(&[
            (
                "forwarded",
                r#"for="[2001:db8::7]:4711";proto=https, for=10.0.0.3:80"#,
            ),
            ("x-forwarded-for", "1.1.1.1"),
        ]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "For=192.0.2.60;by=203.0.113.43")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("192.0.2.60"));
        // An obfuscated or unknown hop ends the walk at the last address known.
        let h = headers(&[("forwarded", "for=unknown, for=10.0.0.9")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.9"));
        let h = headers(&[("x-forwarded-for", "8.8.8.8:1234")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("8.8.8.8"));
    }
}
