//! The static documents the protocol serves: greeting, iframe page, htmlfile prelude.

use crate::options::ProtocolVersion;

/// The greeting body (§4.1).
pub const GREETING: &str = "Welcome to SockJS!\n";

/// The iframe page (§4.3) for the given client URL, in the layout of the suite version.
///
/// ```
/// use sockjs_core::{pages::iframe_page, ProtocolVersion};
/// let page = iframe_page("/sockjs.js", ProtocolVersion::Current);
/// assert!(page.contains(r#"<script src="/sockjs.js"></script>"#));
/// ```
pub fn iframe_page(sockjs_url: &str, protocol: ProtocolVersion) -> String {
    let scripts = match protocol {
        ProtocolVersion::Current => format!(
            "  <script src=\"{sockjs_url}\"></script>\n  <script>\n    document.domain = document.domain;\n    SockJS.bootstrap_iframe();\n  </script>\n"
        ),
        ProtocolVersion::V0_3_3 => format!(
            "  <script>\n    document.domain = document.domain;\n    _sockjs_onload = function(){{SockJS.bootstrap_iframe();}};\n  </script>\n  <script src=\"{sockjs_url}\"></script>\n"
        ),
    };
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n{scripts}</head>\n<body>\n  <h2>Don't panic!</h2>\n  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n</body>\n</html>"
    )
}

/// The htmlfile prelude (§8): the page head with the callback substituted, padded with
/// spaces past 1024 bytes, then `CRLF CRLF`. Sent as one chunk.
pub fn htmlfile_prelude(callback: &str) -> Vec<u8> {
    let head = format!(
        "<!doctype html>\n<html><head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n</head><body><h2>Don't panic!</h2>\n  <script>\n    document.domain = document.domain;\n    var c = parent.{callback};\n    c.start();\n    function p(d) {{c.message(d);}};\n    window.onload = function() {{c.stop();}};\n  </script>"
    );
    let mut out = Vec::with_capacity(head.len().max(1024) + 8);
    out.extend_from_slice(head.as_bytes());
    out.push(b'\n');
    while out.len() < 1024 {
        out.push(b' ');
    }
    out.extend_from_slice(b"\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page head of §8 with `callback` substituted.
    fn head(callback: &str) -> String {
        [
            "<!doctype html>",
            "<html><head>",
            "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />",
            "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />",
            "</head><body><h2>Don't panic!</h2>",
            "  <script>",
            "    document.domain = document.domain;",
            &format!("    var c = parent.{callback};"),
            "    c.start();",
            "    function p(d) {c.message(d);};",
            "    window.onload = function() {c.stop();};",
            "  </script>",
        ]
        .join("\n")
    }

    /// §8 (sockjs-rs note): head + `␤` + spaces up to byte 1024 + `CRLF CRLF`, always 1028
    /// bytes, for any callback up to the 64-byte limit.
    #[test]
    fn s8_htmlfile_prelude_is_padded_past_1024() {
        let long = "a".repeat(64);
        for callback in ["", "cb", "_jp.a1b2c3d", long.as_str()] {
            let head = head(callback);
            let mut expected = head.clone().into_bytes();
            expected.push(b'\n');
            expected.resize(1024, b' ');
            expected.extend_from_slice(b"\r\n\r\n");
            let prelude = htmlfile_prelude(callback);
            assert_eq!(prelude, expected, "{callback}");
            assert_eq!(prelude.len(), 1028, "{callback}");
            let text = String::from_utf8(prelude).expect("utf8");
            assert_eq!(text.trim(), head, "the suite strips the chunk");
        }
    }

    /// §4.3: the page of the current suite with the URL substituted, ending at `</html>`
    /// with no final newline (sockjs-rs note).
    #[test]
    fn s4_3_iframe_page_exact_and_without_final_newline() {
        let page = iframe_page("/s.js", ProtocolVersion::Current);
        let expected = [
            "<!DOCTYPE html>",
            "<html>",
            "<head>",
            "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />",
            "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />",
            "  <script src=\"/s.js\"></script>",
            "  <script>",
            "    document.domain = document.domain;",
            "    SockJS.bootstrap_iframe();",
            "  </script>",
            "</head>",
            "<body>",
            "  <h2>Don't panic!</h2>",
            "  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>",
            "</body>",
            "</html>",
        ]
        .join("\n");
        assert_eq!(page, expected);
        assert!(page.ends_with("</html>"));
    }

    /// §4.3: 0.3.3 swaps the script elements: the inline `_sockjs_onload` block first.
    #[test]
    fn s4_3_iframe_layouts() {
        let old = iframe_page("http://x/s.js", ProtocolVersion::V0_3_3);
        let script_src = old.find("<script src").expect("src");
        let onload = old
            .find("    _sockjs_onload = function(){SockJS.bootstrap_iframe();};\n")
            .expect("onload");
        assert!(onload < script_src);
        assert!(old.ends_with("</body>\n</html>"));
    }
}
