//! Incoming payloads, client to server (PROTOCOL.md §5.2, §6 and §9.2).

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::swar;

/// Why a send payload was refused. Each maps to the protocol's own error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// Empty body, missing or empty `d` field, or JSON that is not an array: 500
    /// `Payload expected.`
    Expected,
    /// The body is not JSON: 500 `Broken JSON encoding.`
    BrokenJson,
}

impl PayloadError {
    /// The response body the protocol prescribes.
    pub fn message(self) -> &'static str {
        match self {
            PayloadError::Expected => "Payload expected.",
            PayloadError::BrokenJson => "Broken JSON encoding.",
        }
    }
}

/// What a decoded message weighs beyond its text: the bookkeeping each one costs where it is
/// queued, so that a flood of empty or tiny messages counts too.
pub(crate) const MESSAGE_OVERHEAD: usize = 32;

/// Most that the messages of one input (a WebSocket message, an `xhr_send` or `jsonp_send`
/// body) may weigh, each its length and [`MESSAGE_OVERHEAD`], for an input bound of
/// `bound` bytes: twice it and one overhead (so one message within the bound always
/// fits). Messages of a few bytes each weigh up to 16.5 times the bytes that carry them
/// (`0,` is one message); past this, the input is refused whole.
pub(crate) fn carried_bound(bound: usize) -> usize {
    bound.saturating_mul(2).saturating_add(MESSAGE_OVERHEAD)
}

/// Decodes an `xhr_send` body or a `jsonp_send` payload: a JSON array whose elements are
/// the messages, in order (§6 steps 2–4).
///
/// Policy for elements that are not strings (the client never sends them): each is
/// delivered as its JSON text, exactly as the client wrote it, so `[1,{"a":2}]` yields `1`
/// and `{"a":2}`. Lone UTF-16
/// surrogate escapes, which a JavaScript string may hold, become U+FFFD instead of failing
/// the whole batch.
///
/// ```
/// use sockjs_core::payload::{decode_messages, PayloadError};
/// assert_eq!(decode_messages(br#" ["a","\u00e9"] "#), Ok(vec!["a".into(), "é".into()]));
/// assert_eq!(decode_messages(b""), Err(PayloadError::Expected));
/// assert_eq!(decode_messages(b"[\"x"), Err(PayloadError::BrokenJson));
/// assert_eq!(decode_messages(b"{}"), Err(PayloadError::Expected));
/// ```
pub fn decode_messages(body: &[u8]) -> Result<Vec<String>, PayloadError> {
    let mut messages = Vec::new();
    decode_messages_each(body, |message| messages.push(message))?;
    Ok(messages)
}

/// [`decode_messages`], handing each message to `f` in order instead of collecting them:
/// nothing is handed over unless the whole payload is valid.
pub fn decode_messages_each(body: &[u8], mut f: impl FnMut(String)) -> Result<(), PayloadError> {
    if body.is_empty() {
        return Err(PayloadError::Expected);
    }
    // Fast path: what every real client sends.
    if string_array(Input::Bytes(body), &mut f).is_some() {
        return Ok(());
    }
    with_fixed_surrogates(body, |body| match parse(body)? {
        Parsed::Array(items) => each_message(&items, &mut f),
        Parsed::Value(_) => Err(PayloadError::Expected),
    })
}

/// Decodes one SockJS WebSocket text message (§9.2): empty means no message, an array is a
/// batch, any other JSON value is one message (its string value, or its JSON text).
///
/// ```
/// use sockjs_core::payload::decode_ws_message;
/// assert_eq!(decode_ws_message(""), Ok(vec![]));
/// assert_eq!(decode_ws_message("[]"), Ok(vec![]));
/// assert_eq!(decode_ws_message(r#"["a","b"]"#), Ok(vec!["a".into(), "b".into()]));
/// assert_eq!(decode_ws_message(r#""a""#), Ok(vec!["a".into()]));
/// assert!(decode_ws_message("[\"a").is_err());
/// // Only text that starts with `[` is a batch.
/// assert_eq!(decode_ws_message(r#" ["a","b"]"#), Ok(vec![r#"["a","b"]"#.into()]));
/// ```
pub fn decode_ws_message(text: &str) -> Result<Vec<String>, PayloadError> {
    let mut messages = Vec::new();
    decode_ws_message_each(text, |message| messages.push(message))?;
    Ok(messages)
}

/// [`decode_ws_message`], handing each message to `f` in order instead of collecting them:
/// nothing is handed over unless the whole message is valid.
pub fn decode_ws_message_each(text: &str, mut f: impl FnMut(String)) -> Result<(), PayloadError> {
    if text.is_empty() {
        return Ok(());
    }
    if !text.starts_with('[') {
        // §9.2: a batch is text that starts with `[`; anything else is one JSON value,
        // whitespace around it or not (` ["a"]` is the one message `["a"]`, as sockjs-node
        // has it).
        return with_fixed_surrogates(text.as_bytes(), |body| {
            let value =
                serde_json::from_slice::<&RawValue>(body).map_err(|_| PayloadError::BrokenJson)?;
            each_message(&[value], &mut f)
        });
    }
    if string_array(Input::Text(text), &mut f).is_some() {
        return Ok(());
    }
    with_fixed_surrogates(text.as_bytes(), |body| match parse(body)? {
        Parsed::Array(items) => each_message(&items, &mut f),
        Parsed::Value(value) => each_message(&[value], &mut f),
    })
}

/// What a payload is decoded from.
#[derive(Clone, Copy)]
enum Input<'a> {
    /// A WebSocket message: already checked to be UTF-8.
    Text(&'a str),
    /// An HTTP body: checked here, run by run.
    Bytes(&'a [u8]),
}

impl<'a> Input<'a> {
    fn bytes(self) -> &'a [u8] {
        match self {
            Input::Text(text) => text.as_bytes(),
            Input::Bytes(bytes) => bytes,
        }
    }

    /// The bytes `from..to` as text. Runs start and end at ASCII bytes, so a run of text is
    /// sliced without checking it again.
    fn run(self, from: usize, to: usize) -> Option<&'a str> {
        match self {
            Input::Text(text) => text.get(from..to),
            Input::Bytes(bytes) => std::str::from_utf8(bytes.get(from..to)?).ok(),
        }
    }
}

/// The shape clients send, `["...", ...]` (JSON whitespace around the tokens allowed),
/// decoded by hand in one pass: one allocation per message (a `Vec` too, past the first)
/// and nothing else. `None`, with nothing handed to `f`, for anything else (other JSON
/// values, lone surrogates, invalid UTF-8, broken input): the general path decides those.
fn string_array(input: Input<'_>, mut f: impl FnMut(String)) -> Option<()> {
    let bytes = input.bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_space(bytes, at + 1);
    if bytes.get(at) == Some(&b']') {
        return (skip_space(bytes, at + 1) == bytes.len()).then_some(());
    }
    // Everything is decoded before anything is handed over, so that a late surprise hands
    // nothing over.
    let mut first = None;
    let mut rest = Vec::new();
    loop {
        let (message, end) = string_at(input, at)?;
        if first.is_none() {
            first = Some(message);
        } else {
            rest.push(message);
        }
        at = skip_space(bytes, end);
        match bytes.get(at)? {
            b',' => at = skip_space(bytes, at + 1),
            b']' if skip_space(bytes, at + 1) == bytes.len() => break,
            _ => return None,
        }
    }
    f(first?);
    rest.into_iter().for_each(f);
    Some(())
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// Where the run of plain string bytes starting at `at` ends: the index of the first `"`,
/// `\\` or control character (or the end of `bytes`). Eight bytes at a time.
fn plain_run(bytes: &[u8], at: usize) -> usize {
    let stop = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let at = swar::skip_clean_blocks(bytes, at, stop);
    swar::position(
        bytes,
        at,
        |word| swar::below(word, 0x20) | swar::equal(word, b'"') | swar::equal(word, b'\\'),
        stop,
    )
    .unwrap_or(bytes.len().max(at))
}

/// The character of the escape at `at` (a backslash) and where it ends.
fn escape(bytes: &[u8], at: usize) -> Option<(char, usize)> {
    let c = match *bytes.get(at + 1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let unit = hex4(bytes.get(at + 2..)?)?;
            return match unit {
                0xD800..=0xDBFF => {
                    if bytes.get(at + 6..at + 8)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(bytes.get(at + 8..)?)?;
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return None;
                    }
                    let c =
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    Some((char::from_u32(c)?, at + 12))
                }
                0xDC00..=0xDFFF => None,
                unit => Some((char::from_u32(u32::from(unit))?, at + 6)),
            };
        }
        _ => return None,
    };
    Some((c, at + 2))
}

/// Decodes the JSON string at `at` (its opening quote): the string and where it ends,
/// just past its closing quote. `None` for raw control characters, invalid escapes, lone
/// surrogates and invalid UTF-8.
fn string_at(input: Input<'_>, at: usize) -> Option<(String, usize)> {
    let bytes = input.bytes();
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let mut run = at + 1;
    let mut stop = plain_run(bytes, run);
    if bytes.get(stop) == Some(&b'"') {
        // No escapes: what the client sends almost always.
        return Some((input.run(run, stop)?.to_owned(), stop + 1));
    }
    let mut out = String::with_capacity(stop - run + 16);
    loop {
        // Runs end at ASCII bytes, so each is whole UTF-8 on its own.
        out.push_str(input.run(run, stop)?);
        match *bytes.get(stop)? {
            b'"' => return Some((out, stop + 1)),
            b'\\' => {
                let (c, next) = escape(bytes, stop)?;
                out.push(c);
                run = next;
            }
            _ => return None,
        }
        stop = plain_run(bytes, run);
    }
}

/// A payload the fast path did not take, checked whole: an array's elements, or one value,
/// each as its source text.
enum Parsed<'a> {
    Array(Vec<&'a RawValue>),
    Value(&'a RawValue),
}

fn parse(body: &[u8]) -> Result<Parsed<'_>, PayloadError> {
    let value = serde_json::from_slice::<&RawValue>(body).map_err(|_| PayloadError::BrokenJson)?;
    if !value.get().starts_with('[') {
        return Ok(Parsed::Value(value));
    }
    serde_json::from_str(value.get())
        .map(Parsed::Array)
        .map_err(|_| PayloadError::BrokenJson)
}

/// Hands each element over, only once all are decoded: a string as its value, anything
/// else as its JSON text exactly as the client wrote it (key order, number spelling).
fn each_message(items: &[&RawValue], f: &mut impl FnMut(String)) -> Result<(), PayloadError> {
    let mut messages = Vec::with_capacity(items.len());
    for item in items {
        let text = item.get();
        messages.push(if text.starts_with('"') {
            serde_json::from_str::<String>(text).map_err(|_| PayloadError::BrokenJson)?
        } else {
            text.to_owned()
        });
    }
    messages.into_iter().for_each(f);
    Ok(())
}

/// `decode(body)`, or, if it fails, `decode` of `body` with its lone UTF-16 surrogate
/// escapes (which a JavaScript string may hold and JSON parsers refuse) made U+FFFD.
fn with_fixed_surrogates(
    body: &[u8],
    mut decode: impl FnMut(&[u8]) -> Result<(), PayloadError>,
) -> Result<(), PayloadError> {
    match decode(body) {
        Err(PayloadError::BrokenJson) => match replace_lone_surrogates(body) {
            Some(fixed) => decode(&fixed),
            None => Err(PayloadError::BrokenJson),
        },
        result => result,
    }
}

/// Four hex digits, exactly (no sign, which `from_str_radix` would take).
fn hex4(bytes: &[u8]) -> Option<u16> {
    hex_digits(bytes, 4).and_then(|n| u16::try_from(n).ok())
}

/// The value of the first `n` bytes of `bytes` (at most 8) as hex digits, exactly: no sign,
/// which `from_str_radix` would take.
fn hex_digits(bytes: &[u8], n: usize) -> Option<u32> {
    let digits = bytes.get(..n)?;
    if n > 8 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// Rewrites `\uD800`–`\uDFFF` escapes that are not part of a valid pair as `\ufffd`.
/// Returns `None` when there is nothing to rewrite (the input is broken for another reason).
fn replace_lone_surrogates(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut changed = false;
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            out.push(body[i]);
            i += 1;
            continue;
        }
        match body.get(i + 1) {
            Some(b'u') => {}
            Some(&next) => {
                out.extend_from_slice(&[b'\\', next]);
                i += 2;
                continue;
            }
            None => {
                out.push(b'\\');
                i += 1;
                continue;
            }
        }
        let Some(unit) = hex4(&body[i + 2..]) else {
            out.extend_from_slice(b"\\u");
            i += 2;
            continue;
        };
        let escape = &body[i..i + 6];
        match unit {
            0xD800..=0xDBFF => {
                let low = (body.get(i + 6) == Some(&b'\\') && body.get(i + 7) == Some(&b'u'))
                    .then(|| hex4(&body[(i + 8).min(body.len())..]))
                    .flatten();
                if let Some(0xDC00..=0xDFFF) = low {
                    out.extend_from_slice(&body[i..i + 12]);
                    i += 12;
                } else {
                    out.extend_from_slice(b"\\ufffd");
                    changed = true;
                    i += 6;
                }
            }
            0xDC00..=0xDFFF => {
                out.extend_from_slice(b"\\ufffd");
                changed = true;
                i += 6;
            }
            _ => {
                out.extend_from_slice(escape);
                i += 6;
            }
        }
    }
    changed.then_some(out)
}

/// Extracts the payload of a `jsonp_send` request (§6 step 1): the form field `d` of an
/// `application/x-www-form-urlencoded` body, form-decoded; otherwise the raw body, not
/// URL-decoded. A form without `d` yields an empty payload.
///
/// ```
/// use sockjs_core::payload::jsonp_payload;
/// let form = jsonp_payload(Some("application/x-www-form-urlencoded"), b"d=%5B%22x%22%5D");
/// assert_eq!(&*form, br#"["x"]"#);
/// assert_eq!(&*jsonp_payload(Some("text/plain"), br#"["%61bc"]"#), br#"["%61bc"]"#);
/// ```
pub fn jsonp_payload<'a>(content_type: Option<&str>, body: &'a [u8]) -> Cow<'a, [u8]> {
    let is_form = content_type
        .map(|ct| ct.split(';').next().unwrap_or("").trim())
        .is_some_and(|mime| mime.eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Cow::Borrowed(body);
    }
    for pair in body.split(|&b| b == b'&') {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &[][..]),
        };
        if form_decode(key).as_ref() == b"d" {
            return Cow::Owned(form_decode(value).into_owned());
        }
    }
    Cow::Borrowed(&[])
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte. A `%`
/// not followed by two hex digits stays as it is.
pub fn form_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                // Two hex digits exactly: `%+1` stays literal.
                let byte = input
                    .get(i + 1..)
                    .and_then(|rest| hex_digits(rest, 2))
                    .and_then(|n| u8::try_from(n).ok());
                match byte {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// Finds a query parameter by name and returns it form-decoded.
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<Cow<'a, [u8]>> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(key.as_bytes()).as_ref() == name.as_bytes())
            .then(|| form_decode(value.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// JSON-ish text: arrays of strings with every kind of escape, broken pieces and other
    /// values mixed in.
    fn jsonish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(" ".to_owned()),
            Just("\n".to_owned()),
            Just("\"".to_owned()),
            Just("\"a\"".to_owned()),
            Just("\"\\u00e9\\n\\\"\\/\"".to_owned()),
            Just("\\ud83d\\ude00".to_owned()),
            Just("\\ud800".to_owned()),
            Just("\\u+abc".to_owned()),
            Just("\\x".to_owned()),
            Just("\u{1}".to_owned()),
            Just("1".to_owned()),
            Just("null".to_owned()),
            Just("{}".to_owned()),
            "[ -~é€😀]{0,8}",
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
    }

    /// JSON values of every kind, nested a few levels: numbers serde can hold, strings with
    /// anything in them.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[\"\\\\\u{0}-\u{1f}\u{2028}é😀 ]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 24, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z\"]{0,3}", inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_fast_path_agrees_with_serde(text in jsonish()) {
            let mut fast = Vec::new();
            let took = string_array(Input::Bytes(text.as_bytes()), |m| fast.push(m)).is_some();
            // Text the WebSocket layer checked decodes exactly as the same bytes do.
            let mut from_text = Vec::new();
            let took_text = string_array(Input::Text(&text), |m| from_text.push(m)).is_some();
            prop_assert_eq!((took_text, &from_text), (took, &fast));
            if took {
                let serde: Vec<String> = serde_json::from_str(&text).expect("serde takes what the fast path takes");
                prop_assert_eq!(fast, serde);
            } else {
                prop_assert!(fast.is_empty(), "nothing handed over on a refusal");
            }
            // And the whole decoder still answers as serde's general path would.
            let wrapped = format!("[{text}]");
            let _ = decode_messages(wrapped.as_bytes());
        }

        /// The whole decoder against an independent reading, serde_json's `Value`: an array
        /// gives one message per element (a string its value, anything else text that reads
        /// back as the same value), any other value "Payload expected.", anything that is
        /// not JSON "Broken JSON encoding.", and nothing is delivered on a refusal. Values
        /// of every kind, nested, spaced, and cut anywhere.
        #[test]
        fn s6_decode_messages_reads_as_serde_reads(value in json_value(), pretty in any::<bool>(), cut in any::<prop::sample::Index>(), whole in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            }
            .expect("encodes");
            let bytes = if whole { text.as_bytes() } else { &text.as_bytes()[..cut.index(text.len() + 1)] };
            let got = decode_messages(bytes);
            let expected = if bytes.is_empty() {
                Err(PayloadError::Expected)
            } else {
                match serde_json::from_slice::<serde_json::Value>(bytes) {
                    Err(_) => Err(PayloadError::BrokenJson),
                    Ok(serde_json::Value::Array(items)) => Ok(items),
                    Ok(_) => Err(PayloadError::Expected),
                }
            };
            match (got, expected) {
                (Ok(messages), Ok(items)) => {
                    prop_assert_eq!(messages.len(), items.len());
                    for (message, item) in messages.iter().zip(&items) {
                        match item {
                            serde_json::Value::String(s) => prop_assert_eq!(message, s),
                            other => {
                                let back: serde_json::Value = serde_json::from_str(message).expect("JSON text");
                                prop_assert_eq!(&back, other);
                            }
                        }
                    }
                }
                (got, expected) => prop_assert_eq!(got, expected.map(|_| Vec::new())),
            }
        }

        /// Lone surrogates in `\uXXXX` escapes (a JavaScript string may hold them) become
        /// U+FFFD, pairs the character they make: as `String::from_utf16_lossy` reads them.
        #[test]
        fn s5_2_escaped_utf16_reads_as_from_utf16_lossy(units in proptest::collection::vec(prop_oneof![0xd800u16..0xe000, 0x20u16..0x7f, any::<u16>()], 0..12), raw in any::<bool>()) {
            let escaped: String = units
                .iter()
                .map(|u| match char::from_u32(u32::from(*u)) {
                    Some(c) if raw && c.is_ascii_alphanumeric() => c.to_string(),
                    _ => format!("\\u{u:04x}"),
                })
                .collect();
            let body = format!("[\"{escaped}\",\"x\"]");
            prop_assert_eq!(
                decode_messages(body.as_bytes()),
                Ok(vec![String::from_utf16_lossy(&units), "x".to_owned()]),
                "{}", body
            );
        }

        #[test]
        fn strings_serde_writes_take_the_fast_path(messages in proptest::collection::vec(any::<String>(), 0..5)) {
            let text = serde_json::to_string(&messages).expect("encodes");
            let mut fast = Vec::new();
            prop_assert!(string_array(Input::Bytes(text.as_bytes()), |m| fast.push(m)).is_some(), "{}", text);
            prop_assert_eq!(fast, messages);
        }
    }

    /// The block and eight-byte scans must stop at every special byte wherever it is, in
    /// strings long and short, and agree with serde on what it decodes or refuses.
    #[test]
    fn s5_2_every_special_at_every_position() {
        let specials = [
            r#"\""#,
            r#"\\"#,
            r#"\n"#,
            r#"\u00e9"#,
            r#"\ud83d\ude00"#,
            r#"\ud800"#,
            "\u{1}",
            "é",
            "\u{2028}",
            "\u{7f}",
        ];
        for special in specials {
            for pos in 0..150 {
                let text = format!(
                    "[\"{}{special}{}\"]",
                    "a".repeat(pos),
                    "b".repeat(150 - pos)
                );
                let mut fast = Vec::new();
                let took = string_array(Input::Bytes(text.as_bytes()), |m| fast.push(m)).is_some();
                match serde_json::from_str::<Vec<String>>(&text) {
                    Ok(serde) if took => assert_eq!(fast, serde, "{text}"),
                    // Lone surrogates go to the general path, which serde refuses here.
                    Err(_) if !took => assert!(fast.is_empty()),
                    other => panic!("{text}: fast path {took}, serde {other:?}"),
                }
            }
        }
    }

    #[test]
    fn s5_2_invalid_utf8_leaves_the_fast_path() {
        assert!(string_array(Input::Bytes(b"[\"abcdefgh\xff\"]"), |_| ()).is_none());
        assert!(string_array(Input::Bytes(b"[\"\\n\xc3\"]"), |_| ()).is_none());
        assert_eq!(
            decode_messages(b"[\"abcdefgh\xff\"]"),
            Err(PayloadError::BrokenJson)
        );
    }

    #[test]
    fn s6_empty_and_non_array_are_payload_expected() {
        for body in [&b""[..], b"null", b"{}", b"\"a\"", b"1"] {
            assert_eq!(
                decode_messages(body),
                Err(PayloadError::Expected),
                "{body:?}"
            );
        }
    }

    #[test]
    fn s6_broken_json() {
        for body in [&b"[\"x"[..], b"  ", b"[", b"\xff", b"[\"a\" \"b\"]"] {
            assert_eq!(
                decode_messages(body),
                Err(PayloadError::BrokenJson),
                "{body:?}"
            );
        }
    }

    #[test]
    fn s6_empty_array_is_valid() {
        assert_eq!(decode_messages(b"[]"), Ok(vec![]));
        assert_eq!(decode_messages(b" \n[ ] "), Ok(vec![]));
    }

    #[test]
    fn s6_non_string_elements_are_delivered_as_json_text() {
        assert_eq!(
            decode_messages(br#"["a",1,null,{"k":[true]}]"#),
            Ok(vec![
                "a".into(),
                "1".into(),
                "null".into(),
                r#"{"k":[true]}"#.into()
            ])
        );
    }

    /// Exactly as written: key order, duplicate keys, number spelling, numbers no float
    /// holds, whitespace around elements (not inside them).
    #[test]
    fn s6_non_string_elements_are_their_source_text() {
        let body = br#"[ {"b":1,"a":2} ,{"a":1,"a":2}, 1e2,1e400 , -0.50,"s" ]"#;
        let expected = [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            "1e2",
            "1e400",
            "-0.50",
            "s",
        ];
        assert_eq!(
            decode_messages(body),
            Ok(expected.map(String::from).to_vec())
        );
        let text = std::str::from_utf8(body).expect("text");
        assert_eq!(
            decode_ws_message(text),
            Ok(expected.map(String::from).to_vec())
        );
        assert_eq!(
            decode_ws_message(r#" {"z":0,"a":1} "#),
            Ok(vec![r#"{"z":0,"a":1}"#.into()])
        );
        assert_eq!(decode_ws_message(" 7 "), Ok(vec!["7".into()]));
        // A lone surrogate in one string still leaves the others exact.
        assert_eq!(
            decode_messages(br#"["\ud800", {"k": 1}]"#),
            Ok(vec!["\u{fffd}".into(), r#"{"k": 1}"#.into()])
        );
        // Nothing handed over from a batch that is broken further on.
        let mut seen = Vec::new();
        assert_eq!(
            decode_messages_each(br#"[{"a":1}, "x", tru]"#, |m| seen.push(m)),
            Err(PayloadError::BrokenJson)
        );
        assert!(seen.is_empty());
    }

    #[test]
    fn s5_2_client_escapes_are_decoded() {
        assert_eq!(
            decode_messages(br#"["\u0000\u00ad\u0600\u2028\ufeff\ud83d\ude00"]"#),
            Ok(vec!["\u{0}\u{ad}\u{600}\u{2028}\u{feff}😀".into()])
        );
    }

    #[test]
    fn s5_2_lone_surrogates_become_replacement_char() {
        assert_eq!(
            decode_messages(br#"["a\ud800b","\udc00","\ud83d\ude00","\\ud800"]"#),
            Ok(vec![
                "a\u{fffd}b".into(),
                "\u{fffd}".into(),
                "😀".into(),
                "\\ud800".into()
            ])
        );
        assert_eq!(
            decode_ws_message(r#"["\ud800"]"#),
            Ok(vec!["\u{fffd}".into()])
        );
    }

    #[test]
    fn s9_2_ws_any_json_value_is_one_message() {
        assert_eq!(decode_ws_message("1"), Ok(vec!["1".into()]));
        assert_eq!(decode_ws_message("{\"a\":1}"), Ok(vec!["{\"a\":1}".into()]));
        assert_eq!(decode_ws_message("x"), Err(PayloadError::BrokenJson));
    }

    #[test]
    fn s6_jsonp_form_field_d() {
        let ct = Some("application/x-www-form-urlencoded; charset=UTF-8");
        assert_eq!(&*jsonp_payload(ct, b"d=%5B%22a+b%22%5D"), br#"["a b"]"#);
        assert_eq!(&*jsonp_payload(ct, b"x=1&d=&y=2"), b"");
        assert_eq!(&*jsonp_payload(ct, b"x=1"), b"");
        assert_eq!(&*jsonp_payload(None, b"d=1"), b"d=1");
    }

    /// §6 (sockjs-rs note): the form media type is matched case-insensitively, with or
    /// without parameters and spaces around it; anything else is the raw body.
    #[test]
    fn s6_jsonp_form_media_type_is_case_insensitive() {
        for ct in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-URLEncoded",
            "APPLICATION/X-WWW-FORM-URLENCODED; charset=UTF-8",
            " application/x-www-form-urlencoded ;charset=utf-8",
        ] {
            assert_eq!(
                &*jsonp_payload(Some(ct), b"d=%5B%22x%22%5D"),
                br#"["x"]"#,
                "{ct}"
            );
        }
        for ct in [
            "text/plain",
            "application/x-www-form-urlencodedx",
            "multipart/form-data",
            "",
        ] {
            assert_eq!(
                &*jsonp_payload(Some(ct), b"d=%5B%22x%22%5D"),
                b"d=%5B%22x%22%5D",
                "{ct}"
            );
        }
    }

    /// §6 (sockjs-rs note): the first `d` field wins, also when it is empty; a form-encoded
    /// name (`%64`) is the same field.
    #[test]
    fn s6_jsonp_first_d_field_wins() {
        let ct = Some("application/x-www-form-urlencoded");
        assert_eq!(&*jsonp_payload(ct, br#"d=["a"]&d=["b"]"#), br#"["a"]"#);
        assert_eq!(&*jsonp_payload(ct, br#"x=1&d=["a"]&d=["b"]"#), br#"["a"]"#);
        assert_eq!(&*jsonp_payload(ct, br#"d=&d=["b"]"#), b"");
        assert_eq!(&*jsonp_payload(ct, br#"%64=["a"]&d=["b"]"#), br#"["a"]"#);
        assert_eq!(&*jsonp_payload(ct, br#"dd=["a"]&d=["b"]"#), br#"["b"]"#);
    }

    #[test]
    fn form_decode_keeps_bad_escapes() {
        assert_eq!(&*form_decode(b"%zz%4"), b"%zz%4");
        assert_eq!(&*form_decode(b"%41%42"), b"AB");
        // A sign is not a hex digit (`from_str_radix` would take it): the `%` stays and
        // the `+` is a space.
        assert_eq!(&*form_decode(b"%+1%+a%-1"), b"% 1% a%-1");
        assert_eq!(&*form_decode(b"%0a%0A%fF"), b"\n\n\xff");
    }

    #[test]
    fn query_param_lookup() {
        assert_eq!(
            query_param(Some("a=1&c=cb%2e1"), "c").as_deref(),
            Some(&b"cb.1"[..])
        );
        assert_eq!(query_param(Some("c"), "c").as_deref(), Some(&b""[..]));
        assert_eq!(query_param(None, "c"), None);
    }
}
