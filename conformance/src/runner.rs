//! Running checks concurrently and reporting the results.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::check::{Check, Ctx, Needs};
use crate::checks;

/// Default number of rounds of each abort stress check ([`Config::abort_rounds`]).
pub const DEFAULT_ABORT_ROUNDS: usize = 200;

/// Name prefix of the abort stress checks (§7.1.6), one per receiving transport.
pub const ABORT_STRESS: &str = "s7_1_6_abort_stress_";

/// Time limit added to an abort stress check for each of its rounds.
const PER_ABORT_ROUND: Duration = Duration::from_millis(100);

/// What to run and against which server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server base URL, e.g. `http://127.0.0.1:8081` (the services live under it).
    pub base_url: String,
    /// Run only checks whose name contains this substring.
    pub filter: Option<String>,
    /// Heartbeat delay the server is configured with; timing checks that need it are
    /// skipped when `None`.
    pub heartbeat: Option<Duration>,
    /// Disconnect delay the server is configured with; timing checks that need it are
    /// skipped when `None`.
    pub disconnect: Option<Duration>,
    /// Number of checks run at the same time.
    pub threads: usize,
    /// Timeout of each socket operation (connect, read, write).
    pub io_timeout: Duration,
    /// Time limit of one check (timing checks get the server delays added).
    pub check_timeout: Duration,
    /// Checks known to fail against this server (deliberate deviations): the failures
    /// they report are reported as skips with the failure reason, so they don't fail the
    /// run. A listed check that panics or times out still fails (no server deviation
    /// explains that), and one that passes is named by [`Report::unexpected_passes`].
    pub expect_fail: Vec<String>,
    /// Rounds of abort-then-reconnect made by each §7.1.6 abort stress check (one per
    /// receiving transport); each round is a fresh session.
    pub abort_rounds: usize,
    /// TLS client settings for an `https://` base URL (which CA to trust).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Config {
    /// Defaults: no filter, no delays (timing checks skipped), 8 threads, 3 s socket
    /// timeout, 30 s per check (plus 100 ms per round for the abort stress checks), 200
    /// abort stress rounds.
    pub fn new(base_url: impl Into<String>) -> Self {
        Config {
            base_url: base_url.into(),
            filter: None,
            heartbeat: None,
            disconnect: None,
            threads: 8,
            io_timeout: Duration::from_secs(3),
            check_timeout: Duration::from_secs(30),
            expect_fail: Vec::new(),
            abort_rounds: DEFAULT_ABORT_ROUNDS,
            tls: None,
        }
    }

    /// The TLS client settings for an `https://` base URL, e.g.
    /// [`tls::client_config_from_pem`](crate::tls::client_config_from_pem) with the
    /// server's CA.
    pub fn tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets how many abort-then-reconnect rounds each abort stress check makes.
    pub fn abort_rounds(mut self, n: usize) -> Self {
        self.abort_rounds = n;
        self
    }

    /// Sets the server's heartbeat delay (enables heartbeat checks).
    pub fn heartbeat(mut self, d: Duration) -> Self {
        self.heartbeat = Some(d);
        self
    }

    /// Sets the server's disconnect delay (enables expiry checks).
    pub fn disconnect(mut self, d: Duration) -> Self {
        self.disconnect = Some(d);
        self
    }

    /// Marks a check as a known deviation of the server under test (see
    /// [`Config::expect_fail`]).
    pub fn expect_fail(mut self, name: impl Into<String>) -> Self {
        self.expect_fail.push(name.into());
        self
    }

    /// Runs only checks whose name contains `s`.
    pub fn filter(mut self, s: impl Into<String>) -> Self {
        self.filter = Some(s.into());
        self
    }
}

/// Splits `http://host:port/prefix` (or `https://`) into `host:port` and the prefix (no
/// trailing `/`).
pub fn parse_base_url(url: &str) -> Result<(String, String), String> {
    let (rest, port) = match url.strip_prefix("https://") {
        Some(rest) => (rest, 443),
        None => (
            url.strip_prefix("http://").ok_or_else(|| {
                format!("base URL must start with http:// or https:// (got {url:?})")
            })?,
            80,
        ),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("bad host in base URL {url:?}"));
    }
    let host = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        let (_, port) = authority.rsplit_once(':').unwrap_or_default();
        port.parse::<u16>()
            .map_err(|_| format!("bad port in base URL {url:?}"))?;
        authority.to_string()
    } else {
        format!("{authority}:{port}")
    };
    if path.contains('?') || path.contains('#') {
        return Err(format!(
            "base URL must not have a query or fragment ({url:?})"
        ));
    }
    Ok((host, path.trim_end_matches('/').to_string()))
}

/// Result status of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The server follows the rule.
    Pass,
    /// The server breaks the rule; the reason shows what differed.
    Fail(String),
    /// Not run (e.g. a timing check without the delay given).
    Skip(String),
}

impl Status {
    /// `PASS`, `FAIL` or `SKIP`.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail(_) => "FAIL",
            Status::Skip(_) => "SKIP",
        }
    }

    /// The reason (empty for a pass).
    pub fn reason(&self) -> &str {
        match self {
            Status::Pass => "",
            Status::Fail(r) | Status::Skip(r) => r,
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// PROTOCOL.md section.
    pub section: &'static str,
    /// What happened.
    pub status: Status,
    /// How long it took.
    pub duration: Duration,
}

/// The results of a run, in check order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One entry per check run.
    pub results: Vec<CheckResult>,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
}

impl Report {
    /// Number of passed checks.
    pub fn passed(&self) -> usize {
        self.count(|s| matches!(s, Status::Pass))
    }

    /// Number of failed checks.
    pub fn failed(&self) -> usize {
        self.count(|s| matches!(s, Status::Fail(_)))
    }

    /// Number of skipped checks.
    pub fn skipped(&self) -> usize {
        self.count(|s| matches!(s, Status::Skip(_)))
    }

    fn count(&self, f: impl Fn(&Status) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.status)).count()
    }

    /// `true` when nothing failed.
    pub fn is_success(&self) -> bool {
        self.failed() == 0
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.status, Status::Fail(_)))
    }

    /// Checks listed as expected failures ([`Config::expect_fail`]) that passed: the
    /// server no longer deviates there (or not on this run), and the entry may go.
    pub fn unexpected_passes(&self, config: &Config) -> Vec<&str> {
        self.results
            .iter()
            .filter(|r| r.status == Status::Pass && config.expect_fail.contains(&r.name))
            .map(|r| r.name.as_str())
            .collect()
    }

    /// The result of the check with this name.
    pub fn get(&self, name: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// `N passed, M failed` (and `, K skipped` if any).
    pub fn summary(&self) -> String {
        let mut s = format!("{} passed, {} failed", self.passed(), self.failed());
        if self.skipped() > 0 {
            let _ = write!(s, ", {} skipped", self.skipped());
        }
        s
    }

    /// A readable table of all results (or only failures), without the summary line.
    pub fn table(&self, only_failures: bool) -> String {
        let rows: Vec<&CheckResult> = self
            .results
            .iter()
            .filter(|r| !only_failures || matches!(r.status, Status::Fail(_)))
            .collect();
        let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<w$}  {:<7}  {:<6}  REASON",
            "CHECK", "SECTION", "RESULT"
        );
        for r in rows {
            let _ = writeln!(
                out,
                "{:<w$}  {:<7}  {:<6}  {}",
                r.name,
                format!("§{}", r.section),
                r.status.label(),
                r.status.reason()
            );
        }
        out
    }

    /// Panics with the failure table unless every check passed (for tests).
    #[track_caller]
    pub fn assert_success(&self) {
        assert!(
            self.is_success(),
            "SockJS conformance: {}\n{}",
            self.summary(),
            self.table(true)
        );
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        let q = |s: &str| crate::util::json_quote(s);
        let mut out = String::from("{\n");
        let _ = writeln!(out, "  \"passed\": {},", self.passed());
        let _ = writeln!(out, "  \"failed\": {},", self.failed());
        let _ = writeln!(out, "  \"skipped\": {},", self.skipped());
        let _ = writeln!(out, "  \"elapsed_ms\": {},", self.elapsed.as_millis());
        out.push_str("  \"checks\": [\n");
        for (i, r) in self.results.iter().enumerate() {
            let _ = write!(
                out,
                "    {{\"name\": {}, \"section\": {}, \"status\": {}, \"reason\": {}, \"duration_ms\": {}}}",
                q(&r.name),
                q(r.section),
                q(r.status.label()),
                q(r.status.reason()),
                r.duration.as_millis()
            );
            out.push_str(if i + 1 < self.results.len() {
                ",\n"
            } else {
                "\n"
            });
        }
        out.push_str("  ]\n}\n");
        out
    }
}

/// Every check, in order.
pub fn all_checks() -> Vec<Check> {
    checks::all()
}

/// The checks `config` selects (by its filter).
pub fn selected_checks(config: &Config) -> Vec<Check> {
    all_checks()
        .into_iter()
        .filter(|c| config.filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect()
}

/// Runs the selected checks against the server and reports.
pub fn run(config: &Config) -> Report {
    run_checks(config, selected_checks(config))
}

/// Runs only the abort stress checks (§7.1.6: a receiver's client closes its connection
/// and a new receiving request follows at once, [`Config::abort_rounds`] times per
/// transport), still narrowed by the config's filter if it has one.
pub fn abort_stress(config: &Config) -> Report {
    let checks = selected_checks(config)
        .into_iter()
        .filter(|c| c.name.starts_with(ABORT_STRESS))
        .collect();
    run_checks(config, checks)
}

/// Runs the given checks against the server and reports.
pub fn run_checks(config: &Config, checks: Vec<Check>) -> Report {
    let start = Instant::now();
    let (host, prefix) = match parse_base_url(&config.base_url) {
        Ok(v) => v,
        Err(e) => {
            return Report {
                results: vec![CheckResult {
                    name: "base_url".into(),
                    section: "1",
                    status: Status::Fail(e),
                    duration: Duration::ZERO,
                }],
                elapsed: start.elapsed(),
            };
        }
    };
    let tls = match (config.base_url.starts_with("https://"), &config.tls) {
        (false, _) => None,
        (true, Some(tls)) => Some(tls.clone()),
        (true, None) => {
            return Report {
                results: vec![CheckResult {
                    name: "base_url".into(),
                    section: "1",
                    status: Status::Fail("an https:// URL needs TLS settings (--ca-cert)".into()),
                    duration: Duration::ZERO,
                }],
                elapsed: start.elapsed(),
            };
        }
    };
    let ctx = Arc::new(Ctx {
        host,
        prefix,
        tls,
        io_timeout: config.io_timeout,
        heartbeat: config.heartbeat,
        disconnect: config.disconnect,
        abort_rounds: config.abort_rounds,
    });
    let n = checks.len();
    let queue: Arc<Mutex<VecDeque<(usize, Check)>>> =
        Arc::new(Mutex::new(checks.into_iter().enumerate().collect()));
    let (tx, rx) = mpsc::channel::<(usize, (CheckResult, Verdict))>();
    let mut workers = Vec::new();
    for _ in 0..config.threads.clamp(1, 64).min(n.max(1)) {
        let queue = Arc::clone(&queue);
        let tx = tx.clone();
        let ctx = Arc::clone(&ctx);
        let base_timeout = config.check_timeout;
        workers.push(thread::spawn(move || {
            loop {
                let next = match queue.lock() {
                    Ok(mut q) => q.pop_front(),
                    Err(_) => None,
                };
                let Some((i, check)) = next else { break };
                let timeout = base_timeout + extra_time(&ctx, &check);
                let result = run_one(&ctx, check, timeout);
                if tx.send((i, result)).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let mut slots: Vec<Option<(CheckResult, Verdict)>> = vec![None; n];
    for (i, r) in rx {
        slots[i] = Some(r);
    }
    for w in workers {
        let _ = w.join();
    }
    let results = slots
        .into_iter()
        .flatten()
        .map(|(mut r, verdict)| {
            if let Status::Fail(reason) = &r.status {
                if config.expect_fail.contains(&r.name) {
                    r.status = match verdict {
                        // A known deviation is something the check saw the server do.
                        Verdict::Check => Status::Skip(format!("expected failure: {reason}")),
                        // A panic or a timeout is no deviation of the server's: it would
                        // hide whatever else the check would have found.
                        Verdict::Runner => Status::Fail(format!(
                            "{reason} (listed as an expected failure, which covers only \
                             what the check reports)"
                        )),
                    };
                }
            }
            r
        })
        .collect();
    Report {
        results,
        elapsed: start.elapsed(),
    }
}

fn extra_time(ctx: &Ctx, check: &Check) -> Duration {
    let rounds = if check.name.starts_with(ABORT_STRESS) {
        PER_ABORT_ROUND.saturating_mul(u32::try_from(ctx.abort_rounds).unwrap_or(u32::MAX))
    } else {
        Duration::ZERO
    };
    rounds
        + match check.needs {
            Needs::Nothing => Duration::ZERO,
            Needs::Heartbeat => ctx.heartbeat.unwrap_or_default() * 3,
            Needs::Disconnect => ctx.disconnect.unwrap_or_default() * 3,
        }
}

/// Who decided a check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The check itself, from what the server did.
    Check,
    /// The runner: the check panicked, timed out or could not start.
    Runner,
}

/// Runs one check on its own thread, bounded by `timeout`; a panic or a timeout is a fail.
fn run_one(ctx: &Arc<Ctx>, check: Check, timeout: Duration) -> (CheckResult, Verdict) {
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    let ctx = Arc::clone(ctx);
    let f = Arc::clone(&check.run);
    let spawned = thread::Builder::new()
        .name(check.name.clone())
        .spawn(move || {
            let _ = tx.send(f(&ctx));
        });
    let (status, verdict) = match spawned {
        Err(e) => (
            Status::Fail(format!("could not start the check: {e}")),
            Verdict::Runner,
        ),
        Ok(_) => match rx.recv_timeout(timeout) {
            Ok(Ok(())) => (Status::Pass, Verdict::Check),
            Ok(Err(f)) if f.skip => (Status::Skip(f.reason), Verdict::Check),
            Ok(Err(f)) => (Status::Fail(f.reason), Verdict::Check),
            Err(mpsc::RecvTimeoutError::Timeout) => (
                Status::Fail(format!("check timed out after {} s", timeout.as_secs())),
                Verdict::Runner,
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => (
                Status::Fail("check panicked (a bug in the check)".into()),
                Verdict::Runner,
            ),
        },
    };
    let result = CheckResult {
        name: check.name,
        section: check.section,
        status,
        duration: start.elapsed(),
    };
    (result, verdict)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::check::{Check, fail, skip};

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:8081").unwrap(),
            ("127.0.0.1:8081".into(), "".into())
        );
        assert_eq!(
            parse_base_url("http://localhost/a/b/").unwrap(),
            ("localhost:80".into(), "/a/b".into())
        );
        assert_eq!(
            parse_base_url("http://[::1]:9000/x").unwrap(),
            ("[::1]:9000".into(), "/x".into())
        );
        assert_eq!(
            parse_base_url("https://x").unwrap(),
            ("x:443".into(), "".into())
        );
        assert!(parse_base_url("ftp://x").is_err());
        assert!(parse_base_url("http://h:port").is_err());
        assert!(parse_base_url("http://").is_err());
    }

    #[test]
    fn check_names_are_unique_and_named_by_section() {
        let checks = all_checks();
        let mut names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate check names");
        for c in &checks {
            let prefix = format!("s{}_", c.section.replace('.', "_"));
            assert!(
                c.name.starts_with(&prefix)
                    || c.name
                        .starts_with(&format!("s{}_", c.section.split('.').next().unwrap())),
                "{} does not start with its section {}",
                c.name,
                c.section
            );
            assert!(!c.summary.is_empty());
        }
        assert!(checks.len() >= 100, "{}", checks.len());
    }

    #[test]
    fn readme_lists_every_check() {
        let readme = include_str!("../README.md");
        for c in all_checks() {
            assert!(
                readme.contains(&format!("| `{}` | {} |", c.name, c.section)),
                "README.md does not list {} (regenerate the table with --list)",
                c.name
            );
        }
    }

    #[test]
    fn runner_reports_pass_fail_skip_panic_timeout_and_bad_url() {
        let config = Config {
            // Generous: a panicking check must be reported as a panic even on a loaded
            // machine (unwinding and backtraces take time); only e_slow may time out.
            check_timeout: Duration::from_millis(2_000),
            ..Config::new("http://127.0.0.1:9")
                .expect_fail("f_known")
                .expect_fail("a_pass")
        };
        let checks = vec![
            Check::new("a_pass", "1", "p", |_: &Ctx| Ok(())),
            Check::new("b_fail", "1", "f", |_: &Ctx| Err(fail("nope"))),
            Check::new("c_skip", "1", "s", |_: &Ctx| Err(skip("later"))),
            Check::new("d_panic", "1", "x", |_: &Ctx| panic!("boom")),
            Check::new("e_slow", "1", "t", |_: &Ctx| {
                thread::sleep(Duration::from_secs(6));
                Ok(())
            }),
            Check::new("f_known", "1", "k", |_: &Ctx| Err(fail("deviation"))),
            Check::new("g_known_panic", "1", "x", |_: &Ctx| panic!("boom")),
        ];
        let config = config.expect_fail("g_known_panic");
        let r = run_checks(&config, checks);
        assert_eq!(r.results.len(), 7);
        // A listed check's panic (or timeout) is no deviation: still a failure.
        assert!(
            matches!(&r.results[6].status, Status::Fail(m) if m.contains("panicked") && m.contains("listed")),
            "{:?}",
            r.results[6].status
        );
        assert_eq!(r.unexpected_passes(&config), ["a_pass"]);
        assert_eq!(
            r.results[5].status,
            Status::Skip("expected failure: deviation".into())
        );
        assert_eq!(r.results[0].status, Status::Pass);
        assert_eq!(r.results[1].status, Status::Fail("nope".into()));
        assert_eq!(r.results[2].status, Status::Skip("later".into()));
        assert!(matches!(&r.results[3].status, Status::Fail(m) if m.contains("panicked")));
        assert!(matches!(&r.results[4].status, Status::Fail(m) if m.contains("timed out")));
        assert_eq!(r.summary(), "1 passed, 4 failed, 2 skipped");
        assert!(!r.is_success());
        assert!(r.table(true).contains("b_fail"));
        assert!(!r.table(true).contains("a_pass"));
        assert!(
            r.to_json()
                .contains("\"name\": \"b_fail\", \"section\": \"1\", \"status\": \"FAIL\"")
        );

        let bad = run(&Config::new("ftp://x"));
        assert_eq!(bad.failed(), 1);
    }

    #[test]
    fn unreachable_server_fails_without_panicking() {
        let config = Config {
            io_timeout: Duration::from_millis(200),
            ..Config::new("http://127.0.0.1:9").filter("s4_1_greeting")
        };
        let r = run(&config);
        assert_eq!(r.results.len(), 1);
        assert_eq!(r.failed(), 1, "{}", r.table(false));
    }
}
