//! Request field names: the ones browsers and proxies send on every request that `http` has
//! no constant for, made once.
//!
//! `HeaderName::from_bytes` copies a name it has no constant for into an allocation of its
//! own, on every request: Chromium's `xhr_send` carries seven such fields (`sec-ch-ua`,
//! `sec-ch-ua-mobile`, `sec-ch-ua-platform`, `sec-fetch-site`, `sec-fetch-mode`,
//! `sec-fetch-dest`, `priority`), and a request through a proxy the `x-forwarded-*` ones.
//! Matched here first (by length, then without regard to case), they are clones of static
//! names, which allocate nothing.

use http::HeaderName;
use http::header::InvalidHeaderName;

static LEN_7: [HeaderName; 1] = [HeaderName::from_static("sec-gpc")];
static LEN_8: [HeaderName; 1] = [HeaderName::from_static("priority")];
static LEN_9: [HeaderName; 2] = [
    HeaderName::from_static("sec-ch-ua"),
    HeaderName::from_static("x-real-ip"),
];
static LEN_14: [HeaderName; 4] = [
    HeaderName::from_static("sec-fetch-site"),
    HeaderName::from_static("sec-fetch-mode"),
    HeaderName::from_static("sec-fetch-dest"),
    HeaderName::from_static("sec-fetch-user"),
];
static LEN_15: [HeaderName; 1] = [HeaderName::from_static("x-forwarded-for")];
static LEN_16: [HeaderName; 4] = [
    HeaderName::from_static("sec-ch-ua-mobile"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-requested-with"),
];
static LEN_17: [HeaderName; 1] = [HeaderName::from_static("x-forwarded-proto")];
static LEN_18: [HeaderName; 1] = [HeaderName::from_static("sec-ch-ua-platform")];

/// The common names without a constant in `http`, by length.
fn of_length(len: usize) -> &'static [HeaderName] {
    match len {
        7 => &LEN_7,
        8 => &LEN_8,
        9 => &LEN_9,
        14 => &LEN_14,
        15 => &LEN_15,
        16 => &LEN_16,
        17 => &LEN_17,
        18 => &LEN_18,
        _ => &[],
    }
}

/// The name of a request field, as `HeaderName::from_bytes` gives it (lowercase), without
/// an allocation for the common names `http` has no constant for.
pub(crate) fn field_name(name: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    // Every name in the table starts with `s`, `p` or `x`; most standard ones do not.
    if let Some(b's' | b'p' | b'x') = name.first().map(u8::to_ascii_lowercase) {
        let mut known = of_length(name.len()).iter();
        if let Some(known) = known.find(|k| k.as_str().as_bytes().eq_ignore_ascii_case(name)) {
            return Ok(known.clone());
        }
    }
    HeaderName::from_bytes(name)
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::{field_name, of_length};

    /// Every name in the table, in any case, is the name `http` would have made.
    #[test]
    fn common_names_are_the_ones_http_makes() {
        for len in 0..=64 {
            for known in of_length(len) {
                let lower = known.as_str();
                assert!(matches!(lower.as_bytes()[0], b's' | b'p' | b'x'), "{lower}");
                assert_eq!(lower.len(), len, "{lower} is filed under its length");
                let title: String = lower
                    .split('-')
                    .map(|w| {
                        let mut w = w.to_owned();
                        w[..1].make_ascii_uppercase();
                        w
                    })
                    .collect::<Vec<_>>()
                    .join("-");
                for spelled in [lower.to_owned(), lower.to_ascii_uppercase(), title] {
                    let parsed = field_name(spelled.as_bytes()).expect("a valid name");
                    let made = HeaderName::from_bytes(spelled.as_bytes()).expect("valid");
                    assert_eq!(parsed, made);
                    assert_eq!(parsed.as_str(), lower);
                }
            }
        }
    }

    /// Other names, standard or not, and invalid ones, go to `http` as before.
    #[test]
    fn other_names_are_parsed_by_http() {
        for name in [
            "host",
            "Content-Length",
            "x-custom",
            "sec-fetch-xxxx",
            "x-real-iq",
        ] {
            assert_eq!(
                field_name(name.as_bytes()).expect("valid"),
                HeaderName::from_bytes(name.as_bytes()).expect("valid")
            );
        }
        assert!(field_name(b"bad name").is_err());
        assert!(field_name(b"").is_err());
    }

    proptest::proptest! {
        /// Any bytes at all: the table's names with their case flipped and bytes changed,
        /// added or taken away, and anything else, give what `http` gives (the same name,
        /// or an error for both).
        #[test]
        fn any_name_is_what_http_makes(
            base in proptest::sample::select(
                (0..=64).flat_map(of_length).map(|k| k.as_str().to_owned()).collect::<Vec<_>>()
            ),
            flips in proptest::collection::vec(proptest::bool::ANY, 0..20),
            edit in proptest::option::of((0usize..20, proptest::num::u8::ANY)),
            cut in proptest::option::of(0usize..20),
            other in proptest::collection::vec(proptest::num::u8::ANY, 0..20),
        ) {
            let mut name = base.into_bytes();
            for (b, flip) in name.iter_mut().zip(flips) {
                if flip {
                    *b = b.to_ascii_uppercase();
                }
            }
            if let Some((at, byte)) = edit {
                match name.get_mut(at) {
                    Some(b) => *b = byte,
                    None => name.push(byte),
                }
            }
            if let Some(len) = cut {
                name.truncate(len);
            }
            for candidate in [name, other] {
                let ours = field_name(&candidate).ok();
                let http = HeaderName::from_bytes(&candidate).ok();
                proptest::prop_assert_eq!(ours, http, "{:?}", candidate);
            }
        }
    }
}
