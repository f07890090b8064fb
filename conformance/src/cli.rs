//! Command-line arguments of the `conformance` binary.

use std::time::Duration;

/// Usage text.
pub const USAGE: &str = "\
usage: conformance BASE_URL [--filter SUBSTRING] [--json FILE]
                   [--heartbeat-ms N] [--disconnect-ms N]
                   [--threads N] [--io-timeout-ms N] [--expect-fail NAME,...]
                   [--abort-rounds N] [--ca-cert PEM]
       conformance BASE_URL --hostile [--request-timeout-ms N] [--filter SUBSTRING]
       conformance --list [--filter SUBSTRING]

Runs the SockJS protocol checks against the server at BASE_URL (e.g.
http://127.0.0.1:8081, or https:// with --ca-cert), which must expose /echo
(response_limit 4096), /close, /disabled_websocket_echo and /cookie_needed_echo.

  --filter S         run only checks whose name contains S
  --json FILE        also write the results as JSON to FILE
  --heartbeat-ms N   the server's heartbeat delay; enables heartbeat checks
  --disconnect-ms N  the server's disconnect delay; enables expiry checks
  --threads N        checks run at the same time (default 8)
  --io-timeout-ms N  socket timeout (default 3000)
  --expect-fail N,.. checks that are known deviations of this server: the
                     failures they report are skips (a panic or a timeout
                     still fails; one that passes is noted) (repeatable)
  --abort-rounds N   rounds of each abort stress check (default 200); run
                     those checks alone with --filter s7_1_6_abort_stress
  --ca-cert PEM      trust the CA certificates in this PEM file (and no
                     other) for an https:// BASE_URL
  --list             print the checks (name, section, rule) and exit
  --hostile          instead of the protocol checks, send hostile input
                     (malformed, oversized, slowloris, vanishing clients) to
                     BASE_URL/echo while a control session measures latency
  --request-timeout-ms N
                     with --hostile: the server's request read / idle
                     timeout; enables the slowloris cases
";

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    /// Server base URL (absent with `--list`).
    pub base_url: Option<String>,
    /// `--filter`.
    pub filter: Option<String>,
    /// `--json`.
    pub json: Option<String>,
    /// `--heartbeat-ms`.
    pub heartbeat: Option<Duration>,
    /// `--disconnect-ms`.
    pub disconnect: Option<Duration>,
    /// `--threads`.
    pub threads: Option<usize>,
    /// `--io-timeout-ms`.
    pub io_timeout: Option<Duration>,
    /// `--expect-fail` names.
    pub expect_fail: Vec<String>,
    /// `--abort-rounds`.
    pub abort_rounds: Option<usize>,
    /// `--ca-cert`.
    pub ca_cert: Option<String>,
    /// `--list`.
    pub list: bool,
    /// `--hostile`.
    pub hostile: bool,
    /// `--request-timeout-ms` (with `--hostile`).
    pub request_timeout: Option<Duration>,
    /// `-h` / `--help`.
    pub help: bool,
}

/// Parses arguments (without the program name). `--opt=value` and `--opt value` both work.
pub fn parse<I, S>(args: I) -> Result<Args, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut out = Args::default();
    let mut it = args.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let value = |it: &mut dyn Iterator<Item = String>| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let ms = |v: String| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{name}: not a number of milliseconds: {v:?}"))
        };
        match name.as_str() {
            "--filter" => out.filter = Some(value(&mut it)?),
            "--json" => out.json = Some(value(&mut it)?),
            "--ca-cert" => out.ca_cert = Some(value(&mut it)?),
            "--heartbeat-ms" => out.heartbeat = Some(ms(value(&mut it)?)?),
            "--disconnect-ms" => out.disconnect = Some(ms(value(&mut it)?)?),
            "--io-timeout-ms" => out.io_timeout = Some(ms(value(&mut it)?)?),
            "--threads" | "--abort-rounds" => {
                let v = value(&mut it)?;
                let n = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name}: not a positive number: {v:?}"))?;
                if name == "--threads" {
                    out.threads = Some(n);
                } else {
                    out.abort_rounds = Some(n);
                }
            }
            "--expect-fail" => out.expect_fail.extend(
                value(&mut it)?
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(String::from),
            ),
            "--list" => out.list = true,
            "--hostile" => out.hostile = true,
            "--request-timeout-ms" => out.request_timeout = Some(ms(value(&mut it)?)?),
            "-h" | "--help" => out.help = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => {
                if out.base_url.is_some() {
                    return Err(format!("unexpected argument {arg:?}"));
                }
                out.base_url = Some(arg);
            }
        }
    }
    if out.base_url.is_none() && !out.list && !out.help {
        return Err("missing BASE_URL".into());
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn full_command_line() {
        let a = parse([
            "http://127.0.0.1:8081",
            "--filter",
            "s7_",
            "--json=out.json",
            "--heartbeat-ms",
            "1000",
            "--disconnect-ms=1500",
            "--threads",
            "4",
            "--expect-fail",
            "a,b",
            "--expect-fail=c",
            "--abort-rounds",
            "50",
        ])
        .unwrap();
        assert_eq!(a.base_url.as_deref(), Some("http://127.0.0.1:8081"));
        assert_eq!(a.filter.as_deref(), Some("s7_"));
        assert_eq!(a.json.as_deref(), Some("out.json"));
        assert_eq!(a.heartbeat, Some(Duration::from_millis(1000)));
        assert_eq!(a.disconnect, Some(Duration::from_millis(1500)));
        assert_eq!(a.threads, Some(4));
        assert_eq!(a.expect_fail, vec!["a", "b", "c"]);
        assert_eq!(a.abort_rounds, Some(50));
        assert!(!a.list);
    }

    #[test]
    fn hostile() {
        let a = parse(["http://x", "--hostile", "--request-timeout-ms=500"]).unwrap();
        assert!(a.hostile);
        assert_eq!(a.request_timeout, Some(Duration::from_millis(500)));
    }

    #[test]
    fn list_needs_no_url() {
        let a = parse(["--list"]).unwrap();
        assert!(a.list);
        assert_eq!(a.base_url, None);
    }

    #[test]
    fn errors() {
        assert!(parse(Vec::<String>::new()).is_err());
        assert!(parse(["http://x", "--heartbeat-ms"]).is_err());
        assert!(parse(["http://x", "--heartbeat-ms", "soon"]).is_err());
        assert!(parse(["http://x", "--threads", "0"]).is_err());
        assert!(parse(["http://x", "--abort-rounds", "0"]).is_err());
        assert!(parse(["http://x", "--bogus"]).is_err());
        assert!(parse(["http://x", "http://y"]).is_err());
    }
}
