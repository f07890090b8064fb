//! A session's opening request head, packed small until the application asks for it.

use std::sync::{Mutex, OnceLock, PoisonError};

/// A session's opening request head, kept small while the application does not look at
/// it: the header fields packed into one buffer of their own (not slices of the
/// connection's read buffer, which a long-lived session would otherwise keep alive), the
/// URIs as text, the extensions every adapter sets as plain fields (so that a head with
/// no others keeps no extension map), and the `HeaderMap` built the first time
/// [`Session::request`] is called.
///
/// [`Session::request`]: crate::driver::Session::request
pub(crate) struct Head {
    built: OnceLock<Box<http::request::Parts>>,
    packed: Mutex<Option<Packed>>,
}

struct Packed {
    /// The head without its header fields.
    method: http::Method,
    uri: PackedUri,
    version: http::Version,
    /// The extensions other than the three below (usually none: no map then).
    extensions: http::Extensions,
    peer: Option<crate::PeerAddr>,
    original: Option<PackedUri>,
    tls: bool,
    /// Per field: name length, name, value length, sensitive (u8), value; a length is a
    /// u16, or `u16::MAX` and a u32 (a field beyond 64 KiB, which hyper's heads may hold).
    fields: Box<[u8]>,
}

impl Head {
    pub(crate) fn new(mut parts: http::request::Parts) -> Head {
        let extensions = &mut parts.extensions;
        // The driver's own extension is for the driver.
        extensions.remove::<crate::driver::ConnectionProbe>();
        let peer = extensions.remove::<crate::PeerAddr>();
        let original = extensions
            .remove::<crate::OriginalUri>()
            .map(|original| PackedUri::new(&original.0));
        let tls = extensions.remove::<crate::Tls>().is_some();
        if extensions.is_empty() {
            // Emptied, the map would keep its allocation.
            *extensions = http::Extensions::new();
        }
        let mut fields = Vec::with_capacity(
            parts
                .headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 5)
                .sum(),
        );
        for (name, value) in &parts.headers {
            let (name, sensitive, value) = (name.as_str(), value.is_sensitive(), value.as_bytes());
            if u32::try_from(name.len().max(value.len())).is_err() {
                // Four gigabytes in one field: no server reads such a head.
                continue;
            }
            put_length(&mut fields, name.len());
            fields.extend_from_slice(name.as_bytes());
            put_length(&mut fields, value.len());
            fields.push(u8::from(sensitive));
            fields.extend_from_slice(value);
        }
        Head {
            built: OnceLock::new(),
            packed: Mutex::new(Some(Packed {
                method: parts.method,
                uri: PackedUri::new(&parts.uri),
                version: parts.version,
                extensions: parts.extensions,
                peer,
                original,
                tls,
                fields: fields.into_boxed_slice(),
            })),
        }
    }

    pub(crate) fn parts(&self) -> &http::request::Parts {
        self.built.get_or_init(|| {
            let packed = self
                .packed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let mut parts = http::Request::new(()).into_parts().0;
            if let Some(packed) = packed {
                parts.method = packed.method;
                parts.uri = packed.uri.unpack();
                parts.version = packed.version;
                parts.extensions = packed.extensions;
                if let Some(peer) = packed.peer {
                    parts.extensions.insert(peer);
                }
                if let Some(original) = packed.original {
                    parts
                        .extensions
                        .insert(crate::OriginalUri(original.unpack()));
                }
                if packed.tls {
                    parts.extensions.insert(crate::Tls);
                }
                parts.headers = unpack(&packed.fields);
            }
            Box::new(parts)
        })
    }
}

/// Appends a field's length as [`Packed::fields`] stores it (at most `u32::MAX`).
fn put_length(fields: &mut Vec<u8>, n: usize) {
    match u16::try_from(n) {
        Ok(short) if short != u16::MAX => fields.extend_from_slice(&short.to_le_bytes()),
        _ => {
            fields.extend_from_slice(&u16::MAX.to_le_bytes());
            fields.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
        }
    }
}

/// The header fields [`Head::new`] packed.
fn unpack(mut fields: &[u8]) -> http::HeaderMap {
    fn take<'a>(fields: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = fields.split_at_checked(n)?;
        *fields = rest;
        Some(head)
    }
    fn length(fields: &mut &[u8]) -> Option<usize> {
        let bytes = take(fields, 2)?;
        match u16::from_le_bytes([bytes[0], bytes[1]]) {
            u16::MAX => {
                let bytes = take(fields, 4)?;
                usize::try_from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])).ok()
            }
            short => Some(usize::from(short)),
        }
    }
    let mut headers = http::HeaderMap::new();
    while !fields.is_empty() {
        let field = (|| {
            let n = length(&mut fields)?;
            let name = take(&mut fields, n)?;
            let n = length(&mut fields)?;
            let sensitive = take(&mut fields, 1)?[0] != 0;
            let value = take(&mut fields, n)?;
            Some((name, sensitive, value))
        })();
        let Some((name, sensitive, value)) = field else {
            break;
        };
        let (Ok(name), Ok(mut value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        value.set_sensitive(sensitive);
        headers.append(name, value);
    }
    headers
}

/// A URI as its text (a fifth of an `http::Uri`'s size, and no slice of a larger buffer),
/// parsed again when asked for.
enum PackedUri {
    Text(Box<str>),
    /// A URI whose text does not parse back the same (none is known to exist).
    Kept(Box<http::Uri>),
}

impl PackedUri {
    fn new(uri: &http::Uri) -> PackedUri {
        let text = uri.to_string();
        match http::Uri::try_from(text.as_str()) {
            Ok(parsed) if parsed == *uri => PackedUri::Text(text.into_boxed_str()),
            _ => PackedUri::Kept(Box::new(uri.clone())),
        }
    }

    fn unpack(self) -> http::Uri {
        match self {
            PackedUri::Text(text) => http::Uri::try_from(&*text).unwrap_or_default(),
            PackedUri::Kept(uri) => *uri,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_head_comes_back_whole() {
        let mut request = http::Request::get("/echo/0/a/websocket?x=1")
            .header("host", "example.com")
            .header("x-custom", "one")
            .header("x-custom", "two")
            .header("cookie", "JSESSIONID=abc")
            .body(())
            .expect("request");
        request
            .headers_mut()
            .get_mut("cookie")
            .expect("cookie")
            .set_sensitive(true);
        request
            .extensions_mut()
            .insert(crate::driver::ConnectionProbe::new(|| false));
        request.extensions_mut().insert(7u32);
        request
            .extensions_mut()
            .insert(crate::PeerAddr(([127, 0, 0, 1], 9).into()));
        request.extensions_mut().insert(crate::OriginalUri(
            "/prefix/echo/0/a/websocket?x=1".parse().expect("uri"),
        ));
        let (parts, ()) = request.into_parts();
        let head = Head::new(parts.clone());
        let built = head.parts();
        assert_eq!(built.method, parts.method);
        assert_eq!(built.uri, parts.uri);
        assert_eq!(built.headers, parts.headers);
        assert!(built.headers["cookie"].is_sensitive());
        assert_eq!(built.extensions.get::<u32>(), Some(&7));
        assert_eq!(
            built.extensions.get::<crate::PeerAddr>(),
            parts.extensions.get::<crate::PeerAddr>()
        );
        assert_eq!(
            built.extensions.get::<crate::OriginalUri>(),
            parts.extensions.get::<crate::OriginalUri>()
        );
        assert!(built.extensions.get::<crate::Tls>().is_none());
        assert!(
            built
                .extensions
                .get::<crate::driver::ConnectionProbe>()
                .is_none()
        );
        // Built once.
        assert!(std::ptr::eq(built, head.parts()));
    }

    #[test]
    fn fields_of_any_length_come_back_whole() {
        let mut request = http::Request::get("/echo/info");
        for (name, n) in [
            ("x-empty", 0),
            ("x-short", 10),
            ("x-edge", 65_534),
            ("x-marker", 65_535),
            ("x-long", 65_536),
            ("x-huge", 300_000),
        ] {
            request = request.header(name, "v".repeat(n));
        }
        // The longest name `http` takes: its length is the marker.
        let long_name = "n".repeat(65_535);
        request = request.header(long_name.as_str(), "long name");
        let (parts, ()) = request.body(()).expect("request").into_parts();
        let head = Head::new(parts.clone());
        assert_eq!(head.parts().headers, parts.headers);
    }
}
