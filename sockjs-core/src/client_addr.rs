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
    /// prefix is longer than the address). An IPv4 address mapped into IPv6
    /// (`::ffff:a.b.c.d`) with a prefix of 96 or more is the IPv4 range it maps, as
    /// [`contains`](IpRange::contains) reads such addresses; with a shorter prefix it is
    /// `None`: it would be an IPv6 range that holds none of the IPv4 addresses it seems to
    /// name and many IPv6 ones it does not (`::ffff:10.0.0.0/8` is `::/8`, which holds
    /// `::1` and the NAT64 prefix `64:ff9b::/96`, where IPv4 clients appear behind a
    /// translator). An IPv6 range of a shorter prefix (`::/0` included) holds IPv6
    /// addresses only: to trust every proxy, list `0.0.0.0/0` beside `::/0`.
    pub fn new(network: IpAddr, prefix: u8) -> Option<IpRange> {
        let (network, prefix) = match (network, canonical(network)) {
            (IpAddr::V6(_), IpAddr::V4(v4)) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
            (IpAddr::V6(_), IpAddr::V4(_)) => return None,
            _ => (network, prefix),
        };
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

/// Which forwarding header the [trusted proxies](crate::Options::trusted_proxies) write,
/// for [`Options::forwarding_header`](crate::Options::forwarding_header).
///
/// Only that header is read. A proxy writes (or appends to) its own header and passes the
/// others through as the client sent them, so reading any header the proxy does not set
/// would let a client name its own address.
///
/// ```
/// use sockjs_core::{ForwardingHeader, Options};
/// let options = Options {
///     trusted_proxies: vec!["10.0.0.2".parse()?],
///     forwarding_header: ForwardingHeader::Forwarded,
///     ..Default::default()
/// };
/// # Ok::<(), sockjs_core::IpRangeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ForwardingHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`, each proxy appending the address it got
    /// the request from (nginx's `$proxy_add_x_forwarded_for`, HAProxy's `option
    /// forwardfor`, most load balancers). The default.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239), each proxy appending an element
    /// with `for=`; an element without `for=` (or with it twice) is a hop of unknown
    /// address.
    Forwarded,
    /// `X-Real-IP: client`, one address, set by the proxy in place of whatever the client
    /// sent (nginx's `proxy_set_header X-Real-IP $remote_addr`).
    XRealIp,
}

impl ForwardingHeader {
    fn name(self) -> &'static str {
        match self {
            ForwardingHeader::XForwardedFor => "x-forwarded-for",
            ForwardingHeader::Forwarded => "forwarded",
            ForwardingHeader::XRealIp => "x-real-ip",
        }
    }
}

/// The client's address behind trusted proxies, from the adapter's `peer` address
/// ([`PeerAddr`](crate::PeerAddr)) and the request's forwarding header; `None` when the
/// adapter gave no peer address.
pub(crate) fn of_request(
    parts: &http::request::Parts,
    peer: Option<std::net::SocketAddr>,
    options: &crate::Options,
) -> Option<IpAddr> {
    Some(client_ip(
        peer?.ip(),
        &parts.headers,
        &options.trusted_proxies,
        options.forwarding_header,
    ))
}

/// The client's address: `peer` (the socket's), unless `peer` is a trusted proxy, in which
/// case `header` is read from the nearest hop outwards and the first address not trusted
/// is the client (the farthest one, if every hop is trusted). An entry that is not an IP
/// address (`unknown`, an obfuscated identifier, bytes that are not text) ends the walk at
/// the last address known: what lies beyond it may be the client's own writing.
pub(crate) fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpRange],
    header: ForwardingHeader,
) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops = forwarded_for(headers, header);
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

/// The addresses `header` lists over all its lines, nearest hop last; `None` for an entry
/// that is not an address.
///
/// Lists are split at every comma, quotes or not: a proxy's own entries hold none, and a
/// quote the client left open must not swallow the entries the proxies appended after it.
/// Each entry is read on its own, so bytes that are not text spoil only their own entry.
fn forwarded_for(headers: &HeaderMap, header: ForwardingHeader) -> Vec<Option<IpAddr>> {
    let entries = headers
        .get_all(header.name())
        .iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b','))
        .map(|entry| std::str::from_utf8(entry).ok().map(str::trim));
    match header {
        ForwardingHeader::XForwardedFor | ForwardingHeader::XRealIp => {
            entries.map(|entry| entry.and_then(node_ip)).collect()
        }
        ForwardingHeader::Forwarded => entries
            .map(|element| element.and_then(element_for))
            .collect(),
    }
}

/// The address of a `Forwarded` element's one `for=` parameter. An element with an odd
/// number of quotes, or a parameter that is not `name=value`, is none: it is a piece of a
/// quoted string the list was split inside (`host="a,for=1.2.3.4;"`), whose text a proxy
/// may have taken from the client; the piece that ends such a string always holds its
/// closing quote, and the walk meets it first.
fn element_for(element: &str) -> Option<IpAddr> {
    let quotes = element.bytes().filter(|&b| b == b'"').count();
    let malformed = element
        .split(';')
        .any(|pair| !pair.trim().is_empty() && !pair.contains('='));
    if quotes % 2 == 1 || malformed {
        return None;
    }
    let mut nodes = element.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then_some(value)
    });
    let node = nodes.next()?;
    if nodes.next().is_some() {
        return None;
    }
    node_ip(node.trim())
}

/// An address from a forwarding header: `1.2.3.4`, `1.2.3.4:80`, `"[2001:db8::1]:80"`,
/// `2001:db8::1`, with RFC 7239 §6's obfuscated ports too (`"1.2.3.4:_p1"`). A node whose
/// port is neither (`1.2.3.4:x`), or a bracketed one that is not IPv6 and a port
/// (`[1.2.3.4]`, `[2001:db8::1]junk`), is no address; nor is one with a quote that does not
/// enclose it whole (`1.2.3.4"`): that is the end of a quoted string the list was split
/// inside, whose text a proxy may have taken from the client (`host="a,for=1.2.3.4"`).
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = match node.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => node,
    };
    if node.contains('"') {
        return None;
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if !after.is_empty() && !after.strip_prefix(':').is_some_and(node_port) {
            return None;
        }
        return ip.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    let (host, port) = node.rsplit_once(':')?;
    if !node_port(port) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// A node's port (RFC 7239 §6): up to five digits, or `_` and an obfuscated name of letters,
/// digits, `.`, `_` and `-`.
fn node_port(port: &str) -> bool {
    match port.strip_prefix('_') {
        Some(name) => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit()),
    }
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

    const XFF: ForwardingHeader = ForwardingHeader::XForwardedFor;

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
    fn a_mapped_ipv4_network_is_its_ipv4_range() {
        let mapped = IpRange::new(ip("::ffff:10.0.0.1"), 128).expect("range");
        assert!(mapped.contains(ip("10.0.0.1")));
        let r: IpRange = "::ffff:10.0.0.0/104".parse().expect("range");
        assert!(r.contains(ip("10.200.0.1")) && !r.contains(ip("11.0.0.1")));
        assert_eq!(r, "10.0.0.0/8".parse().expect("range"));
        // Shorter than the mapped prefix: refused, not an IPv6 range of its first bits
        // (`::/8`, which holds `::1` and NAT64's `64:ff9b::/96`).
        assert_eq!("::ffff:10.0.0.0/8".parse::<IpRange>(), Err(IpRangeError));
        assert_eq!(IpRange::new(ip("::ffff:10.0.0.0"), 95), None);
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-real-ip", "2.2.2.2")]);
        let trusted = ranges(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("9.9.9.9"), &h, &trusted, XFF), ip("9.9.9.9"));
        assert_eq!(client_ip(ip("9.9.9.9"), &h, &[], XFF), ip("9.9.9.9"));
    }

    #[test]
    fn trusted_hops_are_walked_from_the_nearest() {
        let trusted = ranges(&["10.0.0.0/8", "127.0.0.1"]);
        // A client-supplied spoof (1.1.1.1) left of the real client (8.8.8.8).
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 8.8.8.8, 10.0.0.2")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted, XFF), ip("8.8.8.8"));
        // Every hop trusted: the farthest.
        let h = headers(&[
            ("x-forwarded-for", "10.0.0.5"),
            ("x-forwarded-for", "10.0.0.6"),
        ]);
        assert_eq!(client_ip(ip("10.0.0.7"), &h, &trusted, XFF), ip("10.0.0.5"));
        let h = headers(&[("x-real-ip", "8.8.4.4")]);
        let real = ForwardingHeader::XRealIp;
        assert_eq!(client_ip(ip("10.1.1.1"), &h, &trusted, real), ip("8.8.4.4"));
        // No header: the proxy itself.
        let none = HeaderMap::new();
        assert_eq!(
            client_ip(ip("10.1.1.1"), &none, &trusted, XFF),
            ip("10.1.1.1")
        );
        let h = headers(&[("x-forwarded-for", "8.8.8.8:1234")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted, XFF), ip("8.8.8.8"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // A proxy that sets X-Forwarded-For passes the client's own Forwarded and
        // X-Real-IP through untouched: they are the client's word, not the proxy's.
        let trusted = ranges(&["10.0.0.0/8"]);
        let h = headers(&[
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.7"),
            ("x-forwarded-for", "8.8.8.8"),
        ]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted, XFF), ip("8.8.8.8"));
        let fwd = ForwardingHeader::Forwarded;
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted, fwd), ip("6.6.6.6"));
        // The configured header missing: the proxy, never another header.
        let h = headers(&[("forwarded", "for=6.6.6.6"), ("x-real-ip", "6.6.6.7")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted, XFF), ip("10.0.0.1"));
    }

    #[test]
    fn bytes_that_are_not_text_spoil_only_their_own_entry() {
        let trusted = ranges(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        let line = http::HeaderValue::from_bytes(b"\xe9, 8.8.8.8").expect("obs-text value");
        h.append("x-forwarded-for", line);
        h.append("x-real-ip", "6.6.6.6".parse().expect("value"));
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted, XFF), ip("8.8.8.8"));
        // Nearest first: the bad entry ends the walk at the last address known.
        let mut h = HeaderMap::new();
        let line = http::HeaderValue::from_bytes(b"6.6.6.6, \xe9").expect("obs-text value");
        h.append("x-forwarded-for", line);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted, XFF), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_node_forms_and_hops_of_unknown_address() {
        let trusted = ranges(&["10.0.0.0/8"]);
        let fwd = ForwardingHeader::Forwarded;
        let h = headers(&[(
            "forwarded",
            r#"for="[2001:db8::7]:4711";proto=https, for=10.0.0.3:80"#,
        )]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &trusted, fwd),
            ip("2001:db8::7")
        );
        let h = headers(&[("forwarded", "For=192.0.2.60;by=203.0.113.43")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &trusted, fwd),
            ip("192.0.2.60")
        );
        // An obfuscated or unknown hop ends the walk at the last address known.
        let h = headers(&[("forwarded", "for=unknown, for=10.0.0.9")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted, fwd), ip("10.0.0.9"));
        // So does a trusted proxy's element without `for=`: the client's element before
        // it is not promoted to the nearest hop.
        let h = headers(&[("forwarded", "for=6.6.6.6"), ("forwarded", "proto=https")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted, fwd), ip("10.0.0.1"));
        // And an element naming `for` twice.
        let h = headers(&[("forwarded", "for=6.6.6.6;for=10.0.0.4")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted, fwd), ip("10.0.0.1"));
        // A quote the client left open does not swallow the proxy's element.
        let h = headers(&[("forwarded", r#"for="6.6.6.6, for=8.8.8.8"#)]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted, fwd), ip("8.8.8.8"));
        // Nor does a comma inside a proxy's quoted value, taken from the client's request
        // (its `Host`), make an element of what follows: the walk ends at the proxy.
        for value in [
            r#"for=8.8.8.8;host="a,for=1.2.3.4""#,
            r#"for=8.8.8.8;host="a,for=1.2.3.4;""#,
            r#"for=8.8.8.8;host="a,for=1.2.3.4;x=""#,
            r#"for=8.8.8.8;host="a,for=1.2.3.4,""#,
            r#"for=8.8.8.8;host="a,for=1.2.3.4";proto=http"#,
        ] {
            let h = headers(&[("forwarded", value)]);
            assert_eq!(
                client_ip(ip("10.0.0.1"), &h, &trusted, fwd),
                ip("10.0.0.1"),
                "{value}"
            );
        }
        // Balanced quotes and empty parameters are fine.
        let h = headers(&[("forwarded", r#"for="8.8.8.8";proto=https;;host="a.b""#)]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted, fwd), ip("8.8.8.8"));
    }

    /// RFC 7239 §6: a node is an IPv4 address or a bracketed IPv6 one, with a port of
    /// digits or an obfuscated one (`_` and a name); nothing else is an address.
    #[test]
    fn rfc7239_s6_node_ports_digits_or_obfuscated() {
        for (node, address) in [
            ("192.0.2.1", Some("192.0.2.1")),
            ("192.0.2.1:8080", Some("192.0.2.1")),
            ("\"192.0.2.1:_p-1.x\"", Some("192.0.2.1")),
            ("\"[2001:db8::1]\"", Some("2001:db8::1")),
            ("\"[2001:db8::1]:443\"", Some("2001:db8::1")),
            ("\"[2001:db8::1]:_hidden\"", Some("2001:db8::1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("192.0.2.1:", None),
            ("192.0.2.1:_", None),
            ("192.0.2.1:+80", None),
            ("192.0.2.1:123456", None),
            ("192.0.2.1:_p!", None),
            ("\"[2001:db8::1]junk\"", None),
            ("\"[2001:db8::1]:\"", None),
            ("[1.2.3.4]", None),
            ("\"192.0.2.1", None),
            ("192.0.2.1\"", None),
            ("\"192.0.2.1\"\"", None),
            ("\"", None),
            ("_hidden", None),
            ("unknown", None),
        ] {
            assert_eq!(node_ip(node), address.map(ip), "{node}");
        }
        // An obfuscated port is still the client's address, not the end of the walk.
        let trusted = ranges(&["10.0.0.0/8"]);
        let fwd = ForwardingHeader::Forwarded;
        let h = headers(&[("forwarded", r#"for="192.0.2.1:_p", for=10.0.0.2"#)]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &trusted, fwd),
            ip("192.0.2.1")
        );
    }

    /// A client address no test range trusts: public IPv4, or IPv6 documentation space.
    fn untrusted() -> impl proptest::strategy::Strategy<Value = IpAddr> {
        use proptest::prelude::*;
        prop_oneof![
            (1u8..=9, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| IpAddr::from([a, b, c, d])),
            any::<u16>().prop_map(|x| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, x])),
        ]
    }

    /// A proxy's address, in the trusted ranges (`10.0.0.0/8`, `fd00::/8`).
    fn trusted_hop() -> impl proptest::strategy::Strategy<Value = IpAddr> {
        use proptest::prelude::*;
        prop_oneof![
            any::<[u8; 3]>().prop_map(|[b, c, d]| IpAddr::from([10, b, c, d])),
            any::<u16>().prop_map(|x| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, x])),
        ]
    }

    /// How a proxy writes `ip` into `header`, ports and quotes as the header allows.
    fn written(ip: IpAddr, header: ForwardingHeader, port: bool) -> String {
        match (header, ip, port) {
            (ForwardingHeader::Forwarded, IpAddr::V6(v6), true) => format!("for=\"[{v6}]:8080\""),
            (ForwardingHeader::Forwarded, IpAddr::V6(v6), false) => format!("for=\"[{v6}]\""),
            (ForwardingHeader::Forwarded, IpAddr::V4(v4), true) => format!("for=\"{v4}:8080\""),
            (ForwardingHeader::Forwarded, ip, _) => format!("for={ip}"),
            (_, IpAddr::V4(v4), true) => format!("{v4}:8080"),
            (_, ip, _) => ip.to_string(),
        }
    }

    proptest::proptest! {
        /// Whatever a client writes into the forwarding header before the proxies append
        /// theirs (commas, quotes, addresses, trusted ones included), the address it is
        /// given is the one the first trusted proxy saw: its own. From an untrusted peer
        /// the header is not read at all.
        #[test]
        fn the_client_cannot_choose_its_address(
            forged in "[ -~]{0,60}",
            forged_line in proptest::prelude::any::<bool>(),
            client in untrusted(),
            hops in proptest::collection::vec(trusted_hop(), 0..4),
            peer in trusted_hop(),
            stranger in untrusted(),
            forwarded in proptest::prelude::any::<bool>(),
            ports in proptest::prelude::any::<bool>(),
        ) {
            let header = if forwarded { ForwardingHeader::Forwarded } else { XFF };
            let trusted = ranges(&["10.0.0.0/8", "fd00::/8"]);
            let appended: Vec<String> = std::iter::once(client)
                .chain(hops.iter().copied())
                .map(|ip| written(ip, header, ports))
                .collect();
            let appended = appended.join(", ");
            let name = header.name();
            let h = if forged_line {
                headers(&[(name, &forged), (name, &appended)])
            } else {
                headers(&[(name, &format!("{forged}, {appended}"))])
            };
            proptest::prop_assert_eq!(client_ip(peer, &h, &trusted, header), client);
            proptest::prop_assert_eq!(client_ip(stranger, &h, &trusted, header), stranger);
        }

        /// `contains` against the arithmetic: the first `prefix` bits are equal.
        #[test]
        fn ranges_contain_what_shares_their_prefix(
            v6 in proptest::prelude::any::<bool>(),
            network in proptest::prelude::any::<u128>(),
            ip in proptest::prelude::any::<u128>(),
            prefix in 0u8..=128,
            near in proptest::prelude::any::<bool>(),
        ) {
            let (bits, network, ip) = if v6 { (128, network, ip) } else { (32, network >> 96, ip >> 96) };
            let prefix = prefix % (bits + 1);
            // Half the time an address that shares most of the network's bits.
            let ip = if near { network ^ (ip.checked_shr(ip.count_ones() % (u32::from(bits) + 1)).unwrap_or(0)) } else { ip };
            let mask = if prefix == 0 { 0 } else { (!0u128 >> (128 - u32::from(bits))) & !((1u128 << (bits - prefix)) - 1) };
            let addr = |x: u128| if v6 {
                IpAddr::from(std::net::Ipv6Addr::from(x))
            } else {
                IpAddr::from(std::net::Ipv4Addr::from(x as u32))
            };
            let (network, ip) = (addr(network), addr(ip));
            // Mapped IPv4 addresses read as IPv4: leave them to the example tests.
            proptest::prop_assume!(canonical(network) == network && canonical(ip) == ip);
            let range = IpRange::new(network, prefix).expect("a prefix that fits");
            let (n, i) = (match network { IpAddr::V4(v) => u128::from(u32::from(v)), IpAddr::V6(v) => u128::from(v) },
                          match ip { IpAddr::V4(v) => u128::from(u32::from(v)), IpAddr::V6(v) => u128::from(v) });
            proptest::prop_assert_eq!(range.contains(ip), n & mask == i & mask, "{}/{} {}", network, prefix, ip);
        }
    }
}
