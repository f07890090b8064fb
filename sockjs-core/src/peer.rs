//! What an adapter knows of a request's connection, handed beside the request.

use std::net::SocketAddr;

use crate::{PeerAddr, Tls};

/// The connection facts the engine reads: the peer's address (for
/// [`SessionInfo::client_addr`](crate::SessionInfo) and
/// [`SessionBinding::PeerIp`](crate::SessionBinding::PeerIp)) and whether it is TLS (for
/// hixie-76's `wss://` location).
///
/// Passed beside the request rather than as its extensions, where each request would
/// allocate a map and a box per entry (four allocations for an xhr request that never
/// looks at them); [`stamp`](Peer::stamp) puts them into the extensions only where the
/// application reads a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) tls: bool,
}

impl Peer {
    /// What a request carries in its extensions ([`PeerAddr`], [`Tls`]): how the engine's
    /// own callers hand them over.
    pub(crate) fn of(parts: &http::request::Parts) -> Peer {
        Peer {
            addr: parts.extensions.get::<PeerAddr>().map(|peer| peer.0),
            tls: parts.extensions.get::<Tls>().is_some(),
        }
    }

    /// Into `parts`' extensions, unless they hold them already: for the requests the
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
    }
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
        };
        peer.stamp(&mut parts);
        assert_eq!(Peer::of(&parts), peer);
        // What the request carried already wins.
        Peer {
            addr: Some(([10, 0, 0, 2], 1).into()),
            tls: false,
        }
        .stamp(&mut parts);
        assert_eq!(Peer::of(&parts), peer);
        // Nothing to stamp: no map.
        let (mut bare, ()) = http::Request::new(()).into_parts();
        Peer::default().stamp(&mut bare);
        assert!(bare.extensions.is_empty());
    }
}
