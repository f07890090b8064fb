//! What an adapter knows of a request beyond its head, handed beside the request: its
//! connection, and the mount prefix a router matched.

use std::net::SocketAddr;

use http::Uri;
use http::uri::PathAndQuery;

use crate::{OriginalUri, PeerAddr, Tls};

/// The connection facts the engine reads: the peer's address (for
/// [`SessionInfo::client_addr`](crate::SessionInfo) and
/// [`SessionBinding::PeerIp`](crate::SessionBinding::PeerIp)) and whether it is TLS (for
/// hixie-76's `wss://` location).
///
/// Passed beside the request rather than as its extensions, where each request would
/// allocate a map and a box per entry (four allocations for an xhr request that never
/// looks at them); [`stamp`](Peer::stamp) puts them into the extensions only where the
/// application reads a request.
///
/// It also carries the length of a mount prefix a router in front of the service matched
/// (`mount`): the service routes on what follows it, and [`stamp`](Peer::stamp) strips it
/// from the requests the application sees, as a nesting router would have, so the
/// requests nobody looks at are never rewritten.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) tls: bool,
    /// Bytes at the start of the request's path that a router matched as the service's
    /// mount prefix; zero if the request came whole (or was stripped already).
    pub(crate) mount: usize,
}

impl Peer {
    /// What a request carries in its extensions ([`PeerAddr`], [`Tls`]): how the engine's
    /// own callers hand them over.
    pub(crate) fn of(parts: &http::request::Parts) -> Peer {
        Peer {
            addr: parts.extensions.get::<PeerAddr>().map(|peer| peer.0),
            tls: parts.extensions.get::<Tls>().is_some(),
            mount: 0,
        }
    }

    /// The part of `path` the service routes on: what follows the mount prefix (`None` if
    /// the path is shorter, which a router that matched the prefix never hands over).
    pub(crate) fn routed<'a>(&self, path: &'a str) -> Option<&'a str> {
        path.get(self.mount..)
    }

    /// Into `parts`' extensions, unless they hold them already, and the mount prefix out of
    /// its path (the whole URI kept as an [`OriginalUri`]): for the requests the
    /// application sees (a session's opening request, the option callbacks, an admission
    /// hook), which read them there.
    pub(crate) fn stamp(self, parts: &mut http::request::Parts) {
        if let Some(addr) = self.addr {
            if parts.extensions.get::<PeerAddr>().is_none() {
                parts.extensions.insert(PeerAddr(addr));
            }
        }
        if self.tls && parts.extensions.get::<Tls>().is_none() {
            parts.extensions.insert(Tls);
        }
        // Stripped once: a request stripped already carries its original URI.
        if self.mount > 0 && parts.extensions.get::<OriginalUri>().is_none() {
            let original = parts.uri.clone();
            if let Some(uri) = self
                .routed(original.path())
                .and_then(|rest| unmounted(&original, rest))
            {
                parts.uri = uri;
                parts.extensions.insert(OriginalUri(original));
            }
        }
    }
}

/// `uri` with its path replaced by `rest` (what follows a mount prefix; empty means `/`),
/// its query kept: the URI a nesting router hands on. `None` if the result is invalid.
pub(crate) fn unmounted(uri: &Uri, rest: &str) -> Option<Uri> {
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_facts_are_read_back_and_kept_once() {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        assert_eq!(Peer::of(&parts), Peer::default());
        let peer = Peer {
            addr: Some(([10, 0, 0, 1], 4000).into()),
            tls: true,
            mount: 0,
        };
        peer.stamp(&mut parts);
        assert_eq!(Peer::of(&parts), peer);
        // What the request carried already wins.
        Peer {
            addr: Some(([10, 0, 0, 2], 1).into()),
            tls: false,
            mount: 0,
        }
        .stamp(&mut parts);
        assert_eq!(Peer::of(&parts), peer);
        // Nothing to stamp: no map.
        let (mut bare, ()) = http::Request::new(()).into_parts();
        Peer::default().stamp(&mut bare);
        assert!(bare.extensions.is_empty());
    }

    #[test]
    fn a_mount_prefix_is_routed_past_and_stripped_once_where_the_request_is_read() {
        for (target, mount, routed, stripped) in [
            (
                "/app/echo/000/abc/xhr?t=1",
                4,
                "/echo/000/abc/xhr",
                "/echo/000/abc/xhr?t=1",
            ),
            ("/app", 4, "", "/"),
            ("/app?q", 4, "", "/?q"),
            ("/echo/info", 0, "/echo/info", "/echo/info"),
        ] {
            let (mut parts, ()) = http::Request::get(target)
                .body(())
                .expect("a valid target")
                .into_parts();
            let peer = Peer {
                mount,
                ..Peer::default()
            };
            assert_eq!(peer.routed(parts.uri.path()), Some(routed));
            peer.stamp(&mut parts);
            assert_eq!(parts.uri, stripped, "{target}");
            let original = parts
                .extensions
                .get::<OriginalUri>()
                .map(|o| o.0.to_string());
            assert_eq!(original.as_deref(), (mount > 0).then_some(target));
            // Stamped again (the engine stamps where it reads, and where it keeps): no
            // second strip.
            peer.stamp(&mut parts);
            assert_eq!(parts.uri, stripped, "{target}");
        }
        let peer = Peer {
            mount: 10,
            ..Peer::default()
        };
        assert_eq!(peer.routed("/short"), None);
    }
}
