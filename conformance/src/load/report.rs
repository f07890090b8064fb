//! Summaries of many runs: Markdown tables of medians and ratios, from `RESULT` lines
//! tagged `server=NAME` and `cell=NAME` (and optionally `desc=TEXT`).

use std::fmt::Write as _;

use crate::json::{self, Json};

/// One run, as read back from its RESULT line.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// `server` tag.
    pub server: String,
    /// `cell` tag.
    pub cell: String,
    /// `desc` tag (human description of the cell), if any.
    pub desc: Option<String>,
    /// Idle mode.
    pub idle: bool,
    /// Sessions asked for.
    pub sessions: f64,
    /// Sessions opened.
    pub opened: f64,
    /// Verified echoes per second.
    pub msgs_per_s: Option<f64>,
    /// Verified echoes per server CPU-second.
    pub msgs_per_cpu_s: Option<f64>,
    /// Server CPU seconds over the interval.
    pub server_cpu_s: Option<f64>,
    /// Their user-mode part.
    pub server_user_s: Option<f64>,
    /// The load generator's own CPU seconds over the interval.
    pub client_cpu_s: Option<f64>,
    /// Measured interval.
    pub duration_s: Option<f64>,
    /// Round-trip percentiles (µs).
    pub rtt_p50_us: Option<f64>,
    /// 99th percentile round trip (µs).
    pub rtt_p99_us: Option<f64>,
    /// Largest round trip (µs).
    pub rtt_max_us: Option<f64>,
    /// Errors counted.
    pub errors: f64,
    /// Server RSS at the end (kB).
    pub rss_kb: Option<f64>,
    /// Server memory per idle session (bytes).
    pub rss_per_session_bytes: Option<f64>,
    /// Bytes on the wire per echo, client to server (`--permessage-deflate` runs).
    pub wire_out_per_msg: Option<f64>,
    /// Bytes on the wire per echo, server to client (`--permessage-deflate` runs).
    pub wire_in_per_msg: Option<f64>,
    /// Sessions that negotiated permessage-deflate (`--permessage-deflate` runs).
    pub deflated: Option<f64>,
}

fn num(v: Option<&Json>) -> Option<f64> {
    match v {
        Some(Json::Number(n)) => n.parse().ok(),
        _ => None,
    }
}

/// Parses the JSON of one RESULT line; `None` when it is not tagged with server and cell.
pub fn parse_result(text: &str) -> Result<Option<Run>, String> {
    let v = json::parse(text)?;
    let tags = v.get("tags");
    let tag = |k: &str| {
        tags.and_then(|t| t.get(k))
            .and_then(Json::as_str)
            .map(str::to_owned)
    };
    let (Some(server), Some(cell)) = (tag("server"), tag("cell")) else {
        return Ok(None);
    };
    Ok(Some(Run {
        server,
        cell,
        desc: tag("desc"),
        idle: matches!(v.get("idle"), Some(Json::Bool(true))),
        sessions: num(v.get("sessions")).unwrap_or(0.0),
        opened: num(v.get("opened")).unwrap_or(0.0),
        msgs_per_s: num(v.get("msgs_per_s")),
        msgs_per_cpu_s: num(v.get("msgs_per_cpu_s")),
        server_cpu_s: num(v.get("server_cpu_s")),
        server_user_s: num(v.get("server_user_s")),
        client_cpu_s: num(v.get("client_cpu_s")),
        duration_s: num(v.get("duration_s")),
        rtt_p50_us: num(v.get("rtt_p50_us")),
        rtt_p99_us: num(v.get("rtt_p99_us")),
        rtt_max_us: num(v.get("rtt_max_us")),
        errors: num(v.get("errors")).unwrap_or(0.0),
        rss_kb: num(v.get("rss_kb")),
        rss_per_session_bytes: num(v.get("rss_per_session_bytes")),
        wire_out_per_msg: num(v.get("wire_out_per_msg")),
        wire_in_per_msg: num(v.get("wire_in_per_msg")),
        deflated: num(v.get("deflated")),
    }))
}

/// The runs in `text`: every line holding `RESULT {...}` tagged with server and cell.
pub fn parse_results(text: &str) -> Result<Vec<Run>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(at) = line.find("RESULT {") {
            let json = &line[at + "RESULT ".len()..];
            if let Some(run) = parse_result(json).map_err(|e| format!("line {}: {e}", i + 1))? {
                out.push(run);
            }
        }
    }
    Ok(out)
}

/// Median of the values present (`None` if none).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn order(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

struct Table<'a> {
    runs: &'a [Run],
}

impl Table<'_> {
    fn of(&self, cell: &str, server: &str) -> Vec<&Run> {
        self.runs
            .iter()
            .filter(|r| r.cell == cell && r.server == server)
            .collect()
    }

    /// Median of `f` over the runs of a cell and server that opened any session (a run
    /// that opened none measured nothing; its errors are still counted).
    fn med(&self, cell: &str, server: &str, f: impl Fn(&Run) -> Option<f64>) -> Option<f64> {
        median(
            self.of(cell, server)
                .into_iter()
                .filter(|r| r.opened > 0.0)
                .filter_map(f)
                .collect(),
        )
    }
}

fn fmt_int(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| {
        let n = v.round() as i64;
        let s = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    })
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}×"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// The ratio columns of [`summarize`]'s tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compare {
    /// Servers every other server gets a ratio column against.
    pub vs: Vec<String>,
    /// Servers the best of ours gets one ratio column against, each.
    pub best_vs: Vec<String>,
    /// Single ratio columns `server / base`.
    pub pairs: Vec<(String, String)>,
}

/// Markdown tables for `runs`, with ratio columns against each server in `vs`, for each
/// server in `best_vs` one column "best of ours / it", and one for each of `pairs`; ours
/// are the servers named as none of those.
pub fn summarize(runs: &[Run], compare: &Compare) -> String {
    let Compare {
        vs,
        best_vs,
        pairs: extra_pairs,
    } = compare;
    let t = Table { runs };
    let servers = order(runs.iter().map(|r| r.server.clone()));
    let ours: Vec<&String> = servers
        .iter()
        .filter(|s| {
            !vs.contains(s) && !best_vs.contains(s) && !extra_pairs.iter().any(|(_, b)| b == *s)
        })
        .collect();
    // The highest median of msgs per CPU-second among ours, in a cell.
    let best_of_ours = |c: &str| {
        ours.iter()
            .filter_map(|s| t.med(c, s, |r| r.msgs_per_cpu_s))
            .max_by(f64::total_cmp)
    };
    let load_cells = order(runs.iter().filter(|r| !r.idle).map(|r| r.cell.clone()));
    let idle_cells = order(runs.iter().filter(|r| r.idle).map(|r| r.cell.clone()));
    let desc = |cell: &str| {
        runs.iter()
            .find(|r| r.cell == cell)
            .and_then(|r| r.desc.clone())
            .unwrap_or_else(|| cell.to_owned())
    };
    let mut o = String::new();

    if !load_cells.is_empty() {
        // Ratio columns: S / V for each V in vs, skipping pairs already shown reversed.
        let mut pairs = Vec::new();
        for (i, v) in vs.iter().enumerate() {
            for s in &servers {
                if s == v || vs[..i].contains(s) {
                    continue;
                }
                let any = load_cells.iter().any(|c| {
                    t.med(c, s, |r| r.msgs_per_cpu_s).is_some()
                        && t.med(c, v, |r| r.msgs_per_cpu_s).is_some()
                });
                if any {
                    pairs.push((s.clone(), v.clone()));
                }
            }
        }
        for (s, v) in extra_pairs {
            let any = load_cells.iter().any(|c| {
                t.med(c, s, |r| r.msgs_per_cpu_s).is_some()
                    && t.med(c, v, |r| r.msgs_per_cpu_s).is_some()
            });
            if any && !pairs.contains(&(s.clone(), v.clone())) {
                pairs.push((s.clone(), v.clone()));
            }
        }
        let bests: Vec<&String> = best_vs
            .iter()
            .filter(|b| {
                load_cells.iter().any(|c| {
                    best_of_ours(c).is_some() && t.med(c, b, |r| r.msgs_per_cpu_s).is_some()
                })
            })
            .collect();
        let _ = writeln!(
            o,
            "### Messages per server CPU-second (median; higher is better)\n"
        );
        let mut head = String::from("| cell |");
        let mut rule = String::from("| --- |");
        for s in &servers {
            let _ = write!(head, " {s} |");
            rule.push_str(" ---: |");
        }
        for (s, v) in &pairs {
            let _ = write!(head, " {s} / {v} |");
            rule.push_str(" ---: |");
        }
        for b in &bests {
            let _ = write!(head, " best of ours / {b} |");
            rule.push_str(" ---: |");
        }
        let _ = writeln!(o, "{head}\n{rule}");
        for c in &load_cells {
            let _ = write!(o, "| {} |", desc(c));
            for s in &servers {
                let _ = write!(o, " {} |", fmt_int(t.med(c, s, |r| r.msgs_per_cpu_s)));
            }
            for (s, v) in &pairs {
                let r = ratio(
                    t.med(c, s, |r| r.msgs_per_cpu_s),
                    t.med(c, v, |r| r.msgs_per_cpu_s),
                );
                let _ = write!(o, " {} |", fmt_ratio(r));
            }
            for b in &bests {
                let r = ratio(best_of_ours(c), t.med(c, b, |r| r.msgs_per_cpu_s));
                let _ = write!(o, " {} |", fmt_ratio(r));
            }
            o.push('\n');
        }

        let _ = writeln!(o, "\n### Details (medians over rounds)\n");
        let _ = writeln!(
            o,
            "| cell | server | runs | msgs/s | msgs per CPU-s | server CPU | load gen CPU | p50 ms | p99 ms | max ms | RSS MiB | errors |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for c in &load_cells {
            for s in &servers {
                let rs = t.of(c, s);
                if rs.is_empty() {
                    continue;
                }
                let share = |cpu: fn(&Run) -> Option<f64>| {
                    t.med(c, s, |r| {
                        Some(100.0 * cpu(r)? / r.duration_s.filter(|d| *d > 0.0)?)
                    })
                    .map_or("–".into(), |p| format!("{p:.0}%"))
                };
                let errors: f64 = rs.iter().map(|r| r.errors).sum();
                let _ = writeln!(
                    o,
                    "| {} | {s} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    desc(c),
                    rs.len(),
                    fmt_int(t.med(c, s, |r| r.msgs_per_s)),
                    fmt_int(t.med(c, s, |r| r.msgs_per_cpu_s)),
                    share(|r| r.server_cpu_s),
                    share(|r| r.client_cpu_s),
                    fmt(t.med(c, s, |r| r.rtt_p50_us).map(|u| u / 1000.0), 2),
                    fmt(t.med(c, s, |r| r.rtt_p99_us).map(|u| u / 1000.0), 2),
                    fmt(t.med(c, s, |r| r.rtt_max_us).map(|u| u / 1000.0), 1),
                    fmt(t.med(c, s, |r| r.rss_kb).map(|k| k / 1024.0), 1),
                    errors,
                );
            }
        }
    }

    // Per echo, split into user and kernel time: the kernel part (sockets, wakeups) is
    // the floor every server on this machine shares; the user part is the server's own.
    let split: Vec<(String, String)> = load_cells
        .iter()
        .flat_map(|c| servers.iter().map(move |s| (c.clone(), s.clone())))
        .filter(|(c, s)| t.med(c, s, user_us_per_msg).is_some())
        .collect();
    if !split.is_empty() {
        let _ = writeln!(
            o,
            "\n### Server CPU per echo, user and kernel (median µs; lower is better)\n\n\
             | cell | server | CPU µs per echo | user µs | kernel µs | user share |\n\
             | --- | --- | ---: | ---: | ---: | ---: |"
        );
        for (c, s) in &split {
            let total = t.med(c, s, |r| r.msgs_per_cpu_s.map(|m| 1e6 / m));
            let user = t.med(c, s, user_us_per_msg);
            let share = t.med(c, s, |r| {
                Some(r.server_user_s? / r.server_cpu_s.filter(|c| *c > 0.0)?)
            });
            let _ = writeln!(
                o,
                "| {} | {s} | {} | {} | {} | {} |",
                desc(c),
                fmt(total, 1),
                fmt(user, 1),
                fmt(
                    t.med(c, s, |r| Some(
                        1e6 / r.msgs_per_cpu_s? - user_us_per_msg(r)?
                    )),
                    1
                ),
                share.map_or("–".into(), |p| format!("{:.0}%", 100.0 * p)),
            );
        }
    }

    let wire: Vec<(String, String)> = load_cells
        .iter()
        .flat_map(|c| servers.iter().map(move |s| (c.clone(), s.clone())))
        .filter(|(c, s)| t.med(c, s, |r| r.wire_in_per_msg).is_some())
        .collect();
    if !wire.is_empty() {
        let _ = writeln!(
            o,
            "\n### Bytes on the wire and server CPU per message (`--permessage-deflate` runs; median)\n\n\
             | cell | server | sessions compressed | B per message to the server | B per echo back | \
             server CPU µs per message |\n| --- | --- | ---: | ---: | ---: | ---: |"
        );
        for (c, s) in &wire {
            let _ = writeln!(
                o,
                "| {} | {s} | {} of {} | {} | {} | {} |",
                desc(c),
                fmt_int(t.med(c, s, |r| r.deflated)),
                fmt_int(t.med(c, s, |r| Some(r.opened))),
                fmt(t.med(c, s, |r| r.wire_out_per_msg), 0),
                fmt(t.med(c, s, |r| r.wire_in_per_msg), 0),
                fmt(t.med(c, s, |r| r.msgs_per_cpu_s.map(|m| 1e6 / m)), 1),
            );
        }
    }

    if !idle_cells.is_empty() {
        // Memory ratios against the first --vs server, and each --best-vs one that ran.
        let bases = order(
            vs.iter()
                .take(1)
                .chain(best_vs.iter().filter(|b| servers.contains(b)))
                .cloned(),
        );
        let _ = writeln!(
            o,
            "\n### Idle sessions: server memory (median; lower is better)\n"
        );
        let _ = write!(
            o,
            "| cell | server | runs | sessions open | RSS per session KiB | RSS MiB |"
        );
        let mut rule = "| --- | --- | ---: | ---: | ---: | ---: |".to_owned();
        for b in &bases {
            let _ = write!(o, " vs {b} |");
            rule.push_str(" ---: |");
        }
        let _ = writeln!(o, "\n{rule}");
        for c in &idle_cells {
            for s in &servers {
                let rs = t.of(c, s);
                if rs.is_empty() {
                    continue;
                }
                let per = t.med(c, s, |r| r.rss_per_session_bytes);
                let _ = write!(
                    o,
                    "| {} | {s} | {} | {} | {} | {} |",
                    desc(c),
                    rs.len(),
                    fmt_int(t.med(c, s, |r| Some(r.opened))),
                    fmt(per.map(|b| b / 1024.0), 1),
                    fmt(t.med(c, s, |r| r.rss_kb).map(|k| k / 1024.0), 1),
                );
                for b in &bases {
                    let r = ratio(per, t.med(c, b, |r| r.rss_per_session_bytes));
                    let _ = write!(o, " {} |", fmt_ratio(r));
                }
                o.push('\n');
            }
        }
    }
    o
}

/// User-mode server CPU per verified echo (µs).
fn user_us_per_msg(r: &Run) -> Option<f64> {
    let cpu = r.server_cpu_s.filter(|c| *c > 0.0)?;
    Some(1e6 / r.msgs_per_cpu_s.filter(|m| *m > 0.0)? * (r.server_user_s? / cpu))
}

/// Reads the files and summarizes their runs.
pub fn summarize_files(files: &[String], compare: &Compare) -> Result<String, String> {
    let mut runs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
        runs.extend(parse_results(&text).map_err(|e| format!("{f}: {e}"))?);
    }
    if runs.is_empty() {
        return Err("no RESULT lines tagged with server and cell".into());
    }
    Ok(summarize(&runs, compare))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compare(vs: &[&str], best_vs: &[&str]) -> Compare {
        Compare {
            vs: vs.iter().map(|s| s.to_string()).collect(),
            best_vs: best_vs.iter().map(|s| s.to_string()).collect(),
            pairs: Vec::new(),
        }
    }

    fn line(server: &str, cell: &str, mpc: f64, idle: bool) -> String {
        format!(
            "RESULT {{\"transport\":\"websocket\",\"idle\":{idle},\"sessions\":10,\"opened\":10,\
             \"duration_s\":2.000,\"msgs_per_s\":{mpc},\"rtt_p50_us\":1000,\"rtt_p99_us\":2000,\
             \"rtt_max_us\":3000,\"errors\":0,\"server_cpu_s\":1.000,\"client_cpu_s\":1.900,\"msgs_per_cpu_s\":{mpc},\
             \"rss_kb\":2048,\"rss_per_session_bytes\":{},\"tags\":{{\"server\":\"{server}\",\
             \"cell\":\"{cell}\",\"desc\":\"Cell {cell}\"}}}}",
            if idle { "4096.0" } else { "null" }
        )
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(fmt_int(Some(1234567.4)), "1,234,567");
        assert_eq!(fmt_int(Some(999.0)), "999");
    }

    #[test]
    fn tables_with_ratios() {
        let text = [
            line("node", "ws", 100.0, false),
            line("ours", "ws", 300.0, false),
            line("raw", "ws", 600.0, false),
            line("node", "ws", 120.0, false),
            line("ours", "ws", 360.0, false),
            line("raw", "ws", 600.0, false),
            line("node", "xhr", 50.0, false),
            line("node", "xhr", 0.0, false).replace("\"opened\":10", "\"opened\":0"),
            line("ours", "xhr", 100.0, false),
            "noise RESULT line without json".to_owned(),
            "RESULT {\"untagged\":true}".to_owned(),
            line("node", "idle", 0.0, true),
            line("ours", "idle", 0.0, true),
            line("ours", "dfl", 50.0, false).replace(
                "\"tags\"",
                "\"deflated\":10,\"wire_out_per_msg\":400.5,\"wire_in_per_msg\":450.2,\"tags\"",
            ),
        ]
        .join("\n");
        let runs = parse_results(&text).expect("parses");
        assert_eq!(runs.len(), 12);
        let md = summarize(&runs, &compare(&["node", "raw"], &[]));
        assert!(
            md.contains("| cell | node | ours | raw | ours / node | raw / node | ours / raw |")
        );
        // ws: node median 110, ours 330 -> 3.00x; raw 600 -> 5.45x; ours/raw 0.55x.
        assert!(
            md.contains("| Cell ws | 110 | 330 | 600 | 3.00× | 5.45× | 0.55× |"),
            "{md}"
        );
        assert!(
            md.contains("| Cell xhr | 50 | 100 | – | 2.00× | – | – |"),
            "{md}"
        );
        assert!(
            md.contains("| Cell idle | ours | 1 | 10 | 4.0 | 2.0 | 1.00× |"),
            "{md}"
        );
        assert!(md.contains("| Cell ws | node | 2 |"), "{md}");
        // Server and load generator CPU over the 2 s interval: 1 s and 1.9 s.
        assert!(md.contains(" | 50% | 95% | 1.00 | 2.00 | 3.0 |"), "{md}");
        assert!(
            md.contains("| Cell dfl | ours | 10 of 10 | 400 | 450 | 20000.0 |"),
            "{md}"
        );
        // No user/kernel split in these lines: no such table.
        assert!(!md.contains("user share"), "{md}");
    }

    #[test]
    fn user_and_kernel_cpu_per_echo() {
        // 1 s of server CPU, 0.25 s of it in user mode, 200 echoes per CPU-second:
        // 5000 µs per echo, 1250 user, 3750 kernel.
        let text = line("ours", "ws", 200.0, false).replace(
            "\"msgs_per_cpu_s\"",
            "\"server_user_s\":0.250,\"msgs_per_cpu_s\"",
        );
        let runs = parse_results(&text).expect("parses");
        let md = summarize(&runs, &Compare::default());
        assert!(
            md.contains("| Cell ws | ours | 5000.0 | 1250.0 | 3750.0 | 25% |"),
            "{md}"
        );
    }

    #[test]
    fn best_of_ours_against_go() {
        let text = [
            line("node", "ws", 100.0, false),
            line("go", "ws", 200.0, false),
            line("tokio", "ws", 300.0, false),
            line("smol", "ws", 500.0, false),
            line("raw", "ws", 600.0, false),
            line("node", "xhr", 50.0, false),
            line("tokio", "xhr", 150.0, false),
            line("go", "idle", 0.0, true).replace("4096.0", "8192.0"),
            line("tokio", "idle", 0.0, true),
            line("node", "idle", 0.0, true).replace("4096.0", "2048.0"),
        ]
        .join("\n");
        let runs = parse_results(&text).expect("parses");
        let md = summarize(&runs, &compare(&["node", "raw"], &["go"]));
        // Ours are tokio and smol: best 500 against go's 200; no go figure for xhr.
        assert!(
            md.contains(
                "| cell | node | go | tokio | smol | raw | go / node | tokio / node | smol / node \
                 | raw / node | go / raw | tokio / raw | smol / raw | best of ours / go |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| Cell ws | 100 | 200 | 300 | 500 | 600 | 2.00× | 3.00× | 5.00× | 6.00× \
                 | 0.33× | 0.50× | 0.83× | 2.50× |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| Cell xhr | 50 | – | 150 | – | – | – | 3.00× | – | – | – | – | – | – |"),
            "{md}"
        );
        assert!(md.contains("| RSS MiB | vs node | vs go |"), "{md}");
        assert!(
            md.contains("| Cell idle | tokio | 1 | 10 | 4.0 | 2.0 | 2.00× | 0.50× |"),
            "{md}"
        );
        // Without --best-vs the tables are as before.
        let plain = summarize(&runs, &compare(&["node", "raw"], &[]));
        assert!(!plain.contains("best of ours") && !plain.contains("vs go"));
    }

    #[test]
    fn a_pair_is_one_column_and_its_base_is_not_ours() {
        let text = [
            line("go", "ws", 200.0, false),
            line("tokio", "ws", 300.0, false),
            line("smol", "ws", 400.0, false),
            line("raw-smol", "ws", 500.0, false),
        ]
        .join("\n");
        let runs = parse_results(&text).expect("parses");
        let mut with_pair = compare(&[], &["go"]);
        with_pair.pairs = vec![("smol".into(), "raw-smol".into())];
        let md = summarize(&runs, &with_pair);
        assert!(
            md.contains("| go | tokio | smol | raw-smol | smol / raw-smol | best of ours / go |"),
            "{md}"
        );
        // The best of ours is smol's 400, not raw-smol's 500.
        assert!(
            md.contains("| 200 | 300 | 400 | 500 | 0.80× | 2.00× |"),
            "{md}"
        );
    }

    #[test]
    fn bad_json_is_reported() {
        assert!(parse_results("RESULT {\"tags\":").is_err());
        assert!(summarize_files(&["/nonexistent/x".into()], &Compare::default()).is_err());
    }
}
