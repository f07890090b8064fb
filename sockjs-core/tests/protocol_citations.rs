//! Keeps citations of PROTOCOL.md honest: every `§` section number written in the
//! repository's `.rs` and `.md` files (as in `PROTOCOL.md §7.1.6`, or bare in tests and
//! checks), and every conformance check's `section` string, must name a heading or a
//! numbered rule of PROTOCOL.md.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sockjs-core lives in the workspace root")
        .to_path_buf()
}

/// Reads a section number (`7`, `7.1`, `7.1.6`) at the start of `s`: digits, then any
/// number of `.digits`. A dot not followed by a digit (end of a sentence) is not part of it.
fn section_number(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut end = digits(0);
    if end == 0 {
        return None;
    }
    while bytes.get(end) == Some(&b'.') {
        let more = digits(end + 1);
        if more == 0 {
            break;
        }
        end += 1 + more;
    }
    Some((&s[..end], &s[end..]))
}

/// What PROTOCOL.md defines: the number of each numbered heading (`## 7. Sessions`,
/// `### 7.1 Lifecycle`) and, for an ordered-list item that starts with a bold name
/// (`6. **Abort.**`), the heading's number plus the item's (`7.1.6`).
fn defined_sections(text: &str) -> BTreeSet<String> {
    let mut defined = BTreeSet::new();
    let mut heading: Option<String> = None;
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if line.starts_with('#') {
            let title = line.trim_start_matches('#').trim_start();
            heading = section_number(title).map(|(n, _)| n.to_owned());
            defined.extend(heading.clone());
            continue;
        }
        if let (Some(heading), Some((item, rest))) = (&heading, section_number(line)) {
            if !item.contains('.') && rest.starts_with(". **") {
                defined.insert(format!("{heading}.{item}"));
            }
        }
    }
    defined
}

/// The `.rs` and `.md` files of the repository, build output and hidden directories aside.
fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                source_files(&path, out);
            }
        } else if name.ends_with(".rs") || name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// Every `§N(.N)*` in `text`, with its line number. A `§` right after `RFC <number>` cites
/// that RFC, not PROTOCOL.md, and is skipped.
fn citations(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices('§') {
            let Some((number, _)) = section_number(&line[at + '§'.len_utf8()..]) else {
                continue;
            };
            let mut words = line[..at].split_whitespace().rev();
            let rfc = matches!(
                (words.next(), words.next()),
                (Some(n), Some(w)) if w.ends_with("RFC") && n.bytes().all(|b| b.is_ascii_digit())
            );
            if !rfc {
                found.push((index + 1, number.to_owned()));
            }
        }
    }
    found
}

/// The second argument of every `Check::new(...)` call in `src`, with its line number;
/// `None` when it is not a string literal.
fn check_sections(src: &str) -> Vec<(usize, Option<String>)> {
    let bytes = src.as_bytes();
    let mut found = Vec::new();
    for (start, call) in src.match_indices("Check::new(") {
        let line = src[..start].matches('\n').count() + 1;
        // Skip the first argument: everything up to a comma outside brackets and strings.
        let mut i = start + call.len();
        let mut depth = 0usize;
        let mut comma = None;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth == 0 => break,
                b')' | b']' | b'}' => depth -= 1,
                b',' if depth == 0 => {
                    comma = Some(i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let section = comma.and_then(|c| {
            let rest = src[c + 1..].trim_start().strip_prefix('"')?;
            rest.split_once('"').map(|(s, _)| s.to_owned())
        });
        found.push((line, section));
    }
    found
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_protocol_citation_resolves() {
    let root = repo_root();
    let protocol = fs::read_to_string(root.join("PROTOCOL.md")).expect("PROTOCOL.md at the root");
    let defined = defined_sections(&protocol);
    for must in [
        "1", "2", "3.4", "4.3", "5.2", "6", "7.1", "7.1.8", "7.2", "9.3", "13",
    ] {
        assert!(defined.contains(must), "PROTOCOL.md lost §{must}");
    }

    let mut unresolved = Vec::new();
    let mut files = Vec::new();
    source_files(&root, &mut files);
    files.sort();
    let mut cited = 0;
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for (line, number) in citations(&text) {
            cited += 1;
            if !defined.contains(&number) {
                unresolved.push(format!("{}:{line}: §{number}", relative(file, &root)));
            }
        }
    }
    assert!(
        cited > 50,
        "only {cited} citations found: is the scan broken?"
    );

    let checks_dir = root.join("conformance/src/checks");
    let mut checks = 0;
    let mut modules: Vec<PathBuf> = fs::read_dir(&checks_dir)
        .expect("conformance checks")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    modules.sort();
    for module in &modules {
        let src = fs::read_to_string(module).expect("check module");
        for (line, section) in check_sections(&src) {
            checks += 1;
            let place = format!("{}:{line}", relative(module, &root));
            match section {
                Some(s) if defined.contains(&s) => {}
                Some(s) => unresolved.push(format!("{place}: check section \"{s}\"")),
                None => unresolved.push(format!("{place}: section is not a string literal")),
            }
        }
    }
    assert!(
        checks > 100,
        "only {checks} checks found: is the scan broken?"
    );

    assert!(
        unresolved.is_empty(),
        "citations with no heading or numbered rule in PROTOCOL.md:\n  {}",
        unresolved.join("\n  ")
    );
}

#[test]
fn the_scanners_read_what_they_should() {
    assert_eq!(section_number("7.1.6."), Some(("7.1.6", ".")));
    assert_eq!(section_number("10 HTTP"), Some(("10", " HTTP")));
    assert_eq!(section_number("x"), None);
    let defined = defined_sections(
        "## 7. S\n### 7.1 L\n1. **A.** a\n2. plain\n```\n### 8.1 code\n```\n## Notes\n3. **B.**\n",
    );
    let defined: Vec<&str> = defined.iter().map(String::as_str).collect();
    assert_eq!(defined, ["7", "7.1", "7.1.1"]);
    assert_eq!(
        citations("see §7.1.6, §2.\nRFC 6455 §5.5 and PROTOCOL.md §3.1/§4"),
        [
            (1, "7.1.6".to_owned()),
            (1, "2".to_owned()),
            (2, "3.1".to_owned()),
            (2, "4".to_owned()),
        ]
    );
    assert_eq!(
        check_sections("Check::new(format!(\"s{}\", a(b, c)), \"3.1\", x)\nCheck::new(n, s, x)"),
        [(1, Some("3.1".to_owned())), (2, None)]
    );
}
