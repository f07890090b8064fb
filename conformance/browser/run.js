#!/usr/bin/env node
// Real-browser end-to-end checks of a SockJS server: sockjs-client 1.6.1 in Chromium
// (driven by playwright-core) and in node, one row per environment and transport.
// See README.md.
'use strict';

const path = require('path');
const net = require('net');
const http = require('http');
const { spawn } = require('child_process');
const servers = require('./servers');
const Checks = require('./checks');

const TRANSPORTS = [
  'websocket', 'xhr-streaming', 'xdr-streaming', 'eventsource', 'iframe-eventsource',
  'htmlfile', 'iframe-htmlfile', 'xhr-polling', 'xdr-polling', 'iframe-xhr-polling',
  'jsonp-polling',
];

// `deflate`: Chromium, cross-origin, websocket only, against a second server started with
// `--permessage-deflate` (RFC 7692): the socket must negotiate it and messages must flow.
// `https`: Chromium, cross-origin, websocket only, against a third server started with
// `--tls-cert PEM --tls-key PEM` (a throwaway self-signed certificate for 127.0.0.1):
// /info over https, then the socket over wss.
const ENVS = ['cross-origin', 'same-origin', 'node', 'deflate', 'https'];
// The transports each environment runs (all, unless listed).
const ENV_TRANSPORTS = { deflate: ['websocket'], https: ['websocket'] };

// Where sockjs-client itself offers no such transport. A row is n/a only when it is
// listed here AND the client, asked for that transport alone, really offers nothing.
// The client turning a transport down anywhere else is a failure (usually a wrong
// /info answer).
const XDR = 'XDomainRequest exists only in IE 8-10';
const NO_DOM = 'needs a DOM (the node build has no iframes or script tags)';
const EXPECTED_NA = {
  'cross-origin': { 'xdr-streaming': XDR, 'xdr-polling': XDR, htmlfile: 'the client offers htmlfile same-origin only' },
  'same-origin': { 'xdr-streaming': XDR, 'xdr-polling': XDR },
  node: {
    'xdr-streaming': XDR, 'xdr-polling': XDR, 'iframe-eventsource': NO_DOM, htmlfile: NO_DOM,
    'iframe-htmlfile': NO_DOM, 'iframe-xhr-polling': NO_DOM, 'jsonp-polling': NO_DOM,
  },
  deflate: {},
  https: {},
};

// What each transport must put on the wire (browser rows): session endpoints
// (`/PREFIX/SERVER/SESSION/ENDPOINT`) and whether the server's iframe page is loaded.
const WIRE = {
  websocket: { recv: 'websocket', send: null },
  'xhr-streaming': { recv: 'xhr_streaming', send: 'xhr_send' },
  eventsource: { recv: 'eventsource', send: 'xhr_send' },
  htmlfile: { recv: 'htmlfile', send: 'xhr_send' },
  'xhr-polling': { recv: 'xhr', send: 'xhr_send' },
  'jsonp-polling': { recv: 'jsonp', send: 'jsonp_send' },
  'xdr-streaming': { recv: 'xhr_streaming', send: 'xhr_send' },
  'xdr-polling': { recv: 'xhr', send: 'xhr_send' },
};
for (const t of ['eventsource', 'htmlfile', 'xhr-polling']) WIRE['iframe-' + t] = Object.assign({ iframe: true }, WIRE[t]);

const USAGE = `usage:
  node run.js --server URL [options]      check a running server
  node run.js [options] -- CMD [ARGS...]  start the server as
                                          CMD ARGS... 127.0.0.1:PORT --sockjs-url URL,
                                          wait for "listening on http://ADDR", check it;
                                          for the deflate row also a second one with
                                          --permessage-deflate after those, and for
                                          the https row a third one with --tls-cert
                                          PEM --tls-key PEM (a throwaway certificate
                                          made with openssl)

options:
  --filter LIST          comma-separated; a term selects a row when it equals its
                         transport, its environment (${ENVS.join(', ')}) or
                         ENV/TRANSPORT, or else is a substring of ENV/TRANSPORT
  --static-port N        port of the harness's static server, which serves the
                         sockjs-client build (default with --server: the port of the
                         server's own iframe page script URL; else any free port)
  --row-timeout SEC      bound on one row (default 60)
  --step-timeout SEC     bound on one step within a row (default 10)
  --total-timeout SEC    bound on all rows; rows not started by then fail (default 600)
  --startup-timeout SEC  wait this long for "listening on" (default 900, for builds)
  --deflate-server URL   with --server: a running server that offers permessage-deflate,
                         for the deflate row (without it that row is left out)
  --no-deflate           leave the deflate row out (for servers without the flag)
  --tls-server URL       with --server: a running https:// server, for the https row
                         (without it that row is left out)
  --no-tls               leave the https row out (for servers without the flags)
  --front 'CMD ARGS...'  reach every server only through a front started per server
                         (HAProxy, a bad link): {listen} and {upstream} in ARGS become
                         127.0.0.1:PORT (a free port) and the server's HOST:PORT
  --chromium PATH        Chromium binary (default $CHROMIUM_PATH or /usr/bin/chromium)
  --verbose              show the server's output and browser console messages
`;

function parseArgs(argv) {
  const o = {
    server: null, deflateServer: null, noDeflate: false, tlsServer: null, noTls: false, cmd: null, filter: [], staticPort: null, rowTimeout: 60, stepTimeout: 10,
    totalTimeout: 600, startupTimeout: 900, front: null, chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium', verbose: false,
  };
  const num = (v, name) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(name + ' wants a number, got ' + v);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(a + ' wants a value');
      return argv[++i];
    };
    if (a === '--') { o.cmd = argv.slice(i + 1); break; }
    else if (a === '--server') o.server = val().replace(/\/+$/, '');
    else if (a === '--deflate-server') o.deflateServer = val().replace(/\/+$/, '');
    else if (a === '--no-deflate') o.noDeflate = true;
    else if (a === '--tls-server') o.tlsServer = val().replace(/\/+$/, '');
    else if (a === '--no-tls') o.noTls = true;
    else if (a === '--filter') o.filter.push(...val().split(',').map((s) => s.trim()).filter(Boolean));
    else if (a === '--static-port') o.staticPort = num(val(), a);
    else if (a === '--row-timeout') o.rowTimeout = num(val(), a);
    else if (a === '--step-timeout') o.stepTimeout = num(val(), a);
    else if (a === '--total-timeout') o.totalTimeout = num(val(), a);
    else if (a === '--startup-timeout') o.startupTimeout = num(val(), a);
    else if (a === '--chromium') o.chromium = val();
    else if (a === '--front') o.front = val().split(/\s+/).filter(Boolean);
    else if (a === '--verbose') o.verbose = true;
    else if (a === '-h' || a === '--help') { process.stdout.write(USAGE); process.exit(0); }
    else throw new Error('unknown argument ' + a);
  }
  if (!o.server === !(o.cmd && o.cmd.length)) throw new Error('give exactly one of --server URL or -- CMD...');
  return o;
}

function selected(filter, env, transport) {
  if (!filter.length) return true;
  const id = env + '/' + transport;
  return filter.some((f) => f === transport || f === env || f === id ||
    (!TRANSPORTS.includes(f) && !ENVS.includes(f) && id.includes(f)));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function get(url, ms = 5000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.setTimeout(ms, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves once `host:port` accepts a TCP connection (polling), rejects after `ms`.
async function waitPort(hostPort, ms) {
  const [host, port] = [hostPort.slice(0, hostPort.lastIndexOf(':')), Number(hostPort.slice(hostPort.lastIndexOf(':') + 1))];
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, host, () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error('nothing listens on ' + hostPort + ' after ' + ms / 1000 + ' s');
    await sleep(100);
  }
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(what + ' timed out after ' + ms / 1000 + ' s')), ms); }),
  ]);
}

// A throwaway self-signed certificate for 127.0.0.1 and localhost, made with openssl, in a
// fresh temporary directory: { cert, key, remove }.
function certificate() {
  const fs = require('fs');
  const os = require('os');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockjs-browser-tls-'));
  const files = {
    cert: path.join(dir, 'cert.pem'),
    key: path.join(dir, 'key.pem'),
    remove: async () => fs.rmSync(dir, { recursive: true, force: true }),
  };
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', files.key, '-out', files.cert];
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', (e) => reject(new Error('openssl: ' + e.message)));
    child.on('exit', (code) => (code === 0 ? resolve(files) :
      reject(new Error('openssl exited with ' + code + ': ' + err.trim().split('\n').pop()))));
  });
}

// ---- the server under test, when we start it -------------------------------------

// A command we start and stop: the server under test, or a front (--front) before it.
class ServerProcess {
  constructor(argv, verbose, label = 'server') {
    this.tail = [];
    this.verbose = verbose;
    this.label = label;
    this.listening = false;
    process.stderr.write('starting ' + label + ': ' + argv.join(' ') + '\n');
    this.child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    // Last resort if run.js ends without stop(): the command has its own process group.
    process.on('exit', () => {
      try { process.kill(-this.child.pid, 'SIGKILL'); } catch (e) { /* gone */ }
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, sig) => resolve(sig ? 'signal ' + sig : 'exit code ' + code));
      this.child.on('error', (err) => resolve(err.message));
    });
    this.url = new Promise((resolve) => { this._resolveUrl = resolve; });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (d) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          this._line(buf.slice(0, nl).replace(/\r$/, ''));
          buf = buf.slice(nl + 1);
        }
      });
    }
  }

  _line(line) {
    this.tail.push(line);
    if (this.tail.length > 40) this.tail.shift();
    // Build output before the server is up is worth seeing; afterwards only on request.
    if (!this.listening || this.verbose) process.stderr.write('[' + this.label + '] ' + line + '\n');
    const m = /listening on (https?:\/\/\S+)/.exec(line);
    if (m && !this.listening) {
      this.listening = true;
      this._resolveUrl(m[1].replace(/\/+$/, '').replace('//0.0.0.0', '//127.0.0.1').replace('//[::]', '//[::1]'));
    }
  }

  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const kill = (sig) => {
      try { process.kill(-this.child.pid, sig); } catch (e) { /* gone */ }
    };
    kill('SIGTERM');
    const done = await Promise.race([this.exited.then(() => true), sleep(3000).then(() => false)]);
    if (!done) kill('SIGKILL');
    // Children of the command (cargo run's test server) share its process group.
    kill('SIGKILL');
  }
}

// ---- rows ---------------------------------------------------------------------------

function wireProblems(transport, seen) {
  const w = WIRE[transport];
  if (!w) return [];
  const endpoints = new Set();
  let iframe = false;
  for (const u of seen) {
    let p;
    try { p = new URL(u).pathname; } catch (e) { continue; }
    const m = /^\/(?:echo|close)\/[^/.]+\/[^/.]+\/([a-z_]+)$/.exec(p);
    if (m) endpoints.add(m[1]);
    if (/^\/(?:echo|close)\/iframe[0-9a-z._-]*\.html$/.test(p)) iframe = true;
  }
  const problems = [];
  problems.summary = [...endpoints].sort().join('+') + (iframe ? '+iframe.html' : '');
  if (!endpoints.has(w.recv)) problems.push('no ' + w.recv + ' request seen');
  const extra = [...endpoints].filter((e) => e !== w.recv && e !== w.send);
  if (extra.length) problems.push('unexpected ' + extra.join(', ') + ' requests');
  if (w.iframe && !iframe) problems.push('server iframe page never loaded');
  if (!w.iframe && iframe) problems.push('iframe page loaded');
  return problems;
}

async function browserRow(browser, pageOrigin, base, transport, o, log, extensions) {
  const context = await browser.newContext();
  const seen = [];
  const consoleLines = [];
  try {
    const page = await context.newPage();
    page.on('request', (r) => seen.push(r.url()));
    page.on('websocket', (ws) => seen.push(ws.url()));
    page.on('console', (m) => consoleLines.push(m.type() + ': ' + m.text()));
    page.on('pageerror', (e) => consoleLines.push('pageerror: ' + e.message));
    await page.goto(pageOrigin + '/page.html', { timeout: o.stepTimeout * 1000 });
    const opts = { stepTimeout: o.stepTimeout * 1000, extensions };
    let result;
    try {
      result = await withTimeout(
        page.evaluate(({ b, t, op }) => self.SockJSChecks.runTransport(self.SockJS, b, t, op), { b: base, t: transport, op: opts }),
        o.rowTimeout * 1000, 'row');
    } catch (e) {
      result = await page.evaluate(() => self.SockJSChecks.last).catch(() => null) ||
        { transport, status: 'fail', checks: {}, note: '' };
      result.status = 'fail';
      result.note = e.message.split('\n')[0];
    }
    if (result.status !== 'n/a' && result.checks.open && result.checks.open.ok) {
      const problems = wireProblems(transport, seen);
      if (problems.length) {
        result.checks.open = { ok: false, detail: 'wire (' + problems.summary + '): ' + problems.join('; ') };
        result.status = 'fail';
      } else {
        result.checks.open.detail += ', wire: ' + problems.summary;
      }
    }
    result.console = consoleLines;
    return result;
  } finally {
    if (o.verbose && consoleLines.length) log(consoleLines.map((l) => '    [console] ' + l).join('\n'));
    await context.close().catch(() => {});
  }
}

async function nodeRow(SockJS, base, transport, o) {
  try {
    return await withTimeout(
      Checks.runTransport(SockJS, base, transport, { stepTimeout: o.stepTimeout * 1000 }),
      o.rowTimeout * 1000, 'row');
  } catch (e) {
    const r = Checks.last || { transport, checks: {} };
    return Object.assign({}, r, { status: 'fail', note: e.message });
  }
}

// ---- table --------------------------------------------------------------------------

function table(rows) {
  const head = ['environment', 'transport', 'result', ...Checks.CHECKS, 'time'];
  const lines = rows.map((r) => {
    const cells = Checks.CHECKS.map((c) => {
      if (r.status === 'n/a') return 'n/a';
      const x = r.checks[c];
      return !x ? '-' : x.ok ? 'ok' : 'FAIL';
    });
    return [r.env, r.transport, r.status === 'n/a' ? 'n/a' : r.status.toUpperCase(), ...cells, r.secs.toFixed(1) + 's'];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [fmt(head), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}

// ---- main ---------------------------------------------------------------------------

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(e.message + '\n\n' + USAGE);
    return 2;
  }
  const log = (s) => process.stdout.write(s + '\n');
  const cleanups = [];
  let stopping = false;
  const cleanup = async () => {
    stopping = true;
    while (cleanups.length) await cleanups.pop()().catch(() => {});
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => { cleanup().then(() => process.exit(130)); });
  }
  // A reader that goes away (`| head`) must not leave the server running.
  process.stdout.on('error', () => { cleanup().then(() => process.exit(1)); });

  try {
    let base = o.server;
    let staticPort = o.staticPort;

    if (base && staticPort === null) {
      // Serve sockjs-client where the server's iframe page already looks for it.
      try {
        const r = await get(base + '/echo/iframe.html');
        const m = /<script src="http:\/\/(?:127\.0\.0\.1|localhost):(\d+)\/sockjs\.min\.js"/.exec(r.body);
        staticPort = m ? Number(m[1]) : 0;
      } catch (e) {
        staticPort = 0;
      }
    }
    const staticServer = await servers.start({ port: staticPort || 0 });
    cleanups.push(() => staticServer.shutdown());
    const sockjsUrl = staticServer.origin + '/sockjs.min.js';
    log('sockjs-client build served at ' + sockjsUrl + ' (the server\'s --sockjs-url)');

    // Starts `CMD ARGS... ADDR --sockjs-url URL EXTRA...`; resolves to its base URL.
    const startServer = async (extra) => {
      const port = await freePort();
      const argv = o.cmd.concat(['127.0.0.1:' + port, '--sockjs-url', sockjsUrl], extra);
      const proc = new ServerProcess(argv, o.verbose);
      cleanups.push(() => proc.stop());
      const r = await Promise.race([
        proc.url,
        proc.exited.then((why) => { throw new Error('server command ended (' + why + ') before printing "listening on"'); }),
        sleep(o.startupTimeout * 1000).then(() => { throw new Error('no "listening on" within ' + o.startupTimeout + ' s'); }),
      ]).catch((e) => {
        process.stderr.write(proc.tail.map((l) => '[server] ' + l).join('\n') + '\n');
        throw e;
      });
      proc.exited.then((why) => { if (!stopping) log('!! server exited: ' + why); });
      return r;
    };
    const started = !base;
    if (!base) base = await startServer([]);
    log('server under test: ' + base);
    // The deflate row's server: the same command with --permessage-deflate.
    let deflateBase = o.deflateServer;
    let deflateProblem = o.server && !deflateBase ? 'no --deflate-server given' : null;
    if (o.noDeflate) deflateProblem = '--no-deflate';
    if (started && !o.noDeflate && selected(o.filter, 'deflate', 'websocket')) {
      deflateBase = await startServer(['--permessage-deflate']).catch((e) => {
        deflateProblem = 'the server with --permessage-deflate did not start: ' + e.message;
        return null;
      });
    }
    if (deflateBase) log('server under test with --permessage-deflate: ' + deflateBase);
    // The https row's server: the same command with a throwaway certificate.
    let tlsBase = o.tlsServer;
    let tlsProblem = o.server && !tlsBase ? 'no --tls-server given' : null;
    if (o.noTls) tlsProblem = '--no-tls';
    if (started && !o.noTls && selected(o.filter, 'https', 'websocket')) {
      tlsBase = await certificate().then((files) => {
        cleanups.push(files.remove);
        return startServer(['--tls-cert', files.cert, '--tls-key', files.key]);
      }).catch((e) => {
        tlsProblem = 'the server with --tls-cert did not start: ' + e.message;
        return null;
      });
    }
    if (tlsBase) log('server under test with --tls-cert: ' + tlsBase);

    // --front: every server is reached only through its own instance of the front
    // command (HAProxy, the bad link), so every row's traffic crosses it.
    if (o.front) {
      const front = async (url) => {
        const u = new URL(url);
        const listen = '127.0.0.1:' + await freePort();
        const argv = o.front.map((a) => a.replace('{listen}', listen).replace('{upstream}', u.host));
        const proc = new ServerProcess(argv, o.verbose, 'front');
        cleanups.push(() => proc.stop());
        await Promise.race([
          waitPort(listen, o.startupTimeout * 1000),
          proc.exited.then((why) => { throw new Error('front command ended (' + why + ') before listening on ' + listen); }),
        ]).catch((e) => {
          process.stderr.write(proc.tail.map((l) => '[front] ' + l).join('\n') + '\n');
          throw e;
        });
        proc.listening = true;
        proc.exited.then((why) => { if (!stopping) log('!! front exited: ' + why); });
        const through = u.protocol + '//' + listen;
        log('front: ' + through + ' -> ' + url);
        return through;
      };
      base = await front(base);
      if (deflateBase) deflateBase = await front(deflateBase);
      if (tlsBase) tlsBase = await front(tlsBase);
    }

    // Preflight: the server answers and its iframe page loads our client build.
    const info = await get(base + '/echo/info').catch((e) => ({ status: 0, body: e.message }));
    log('GET /echo/info: ' + info.status + ' ' + info.body.trim());
    if (info.status !== 200) throw new Error('the server does not answer /echo/info');
    const iframe = await get(base + '/echo/iframe.html').catch((e) => ({ status: 0, body: e.message }));
    const src = (/<script src="([^"]*)"/.exec(iframe.body) || [])[1];
    log('GET /echo/iframe.html: ' + iframe.status + ', loads ' + (src || '(no script src)'));
    const iframeHint = src === sockjsUrl ? '' : 'the server\'s iframe page loads ' + (src || 'no script') + ', not ' + sockjsUrl;
    if (iframeHint) {
      log('!! the iframe page does not load ' + sockjsUrl + ': iframe-* rows will fail' +
        (o.server ? ' (start the server with --sockjs-url ' + sockjsUrl + ', or pass --static-port)' : ''));
    }

    const plan = [];
    for (const env of ENVS) {
      for (const t of ENV_TRANSPORTS[env] || TRANSPORTS) {
        if (!selected(o.filter, env, t)) continue;
        // Left out, not failed, when there is no server for it by choice (--no-deflate,
        // or --server without --deflate-server).
        if (env === 'deflate' && !deflateBase && (o.noDeflate || o.server)) {
          log('deflate/websocket left out: ' + deflateProblem);
          continue;
        }
        if (env === 'https' && !tlsBase && (o.noTls || o.server)) {
          log('https/websocket left out: ' + tlsProblem);
          continue;
        }
        plan.push([env, t]);
      }
    }
    if (!plan.length) throw new Error('--filter selects no rows');

    let browser = null;
    let proxy = null;
    if (plan.some(([env]) => env !== 'node')) {
      const { chromium } = require('playwright-core');
      // --ignore-certificate-errors: the https row's server has a throwaway self-signed
      // certificate for 127.0.0.1 (the other rows are plain http).
      const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--ignore-certificate-errors'];
      // playwright gives every launch a fresh temporary profile (--user-data-dir) and
      // removes it on close.
      browser = await chromium.launch({ executablePath: o.chromium, headless: true, args });
      cleanups.push(() => browser.close());
      log('browser: Chromium ' + browser.version());
    }
    if (plan.some(([env]) => env === 'same-origin')) {
      proxy = await servers.start({ upstream: base });
      cleanups.push(() => proxy.shutdown());
      log('same-origin proxy: ' + proxy.origin + ' -> ' + base);
    }
    let NodeSockJS = null;
    if (plan.some(([env]) => env === 'node')) NodeSockJS = require('sockjs-client');
    const version = require('sockjs-client/package.json').version;
    log('sockjs-client ' + version + '; ' + plan.length + ' rows\n');

    const deadline = Date.now() + o.totalTimeout * 1000;
    const rows = [];
    for (const [env, t] of plan) {
      const t0 = Date.now();
      let r;
      if (Date.now() > deadline) {
        r = { status: 'fail', checks: {}, note: 'not run: --total-timeout reached' };
      } else if (env === 'node') {
        r = await nodeRow(NodeSockJS, base, t, o);
      } else if (env === 'deflate' && !deflateBase) {
        r = { status: 'fail', checks: {}, note: deflateProblem };
      } else if (env === 'https' && !tlsBase) {
        r = { status: 'fail', checks: {}, note: tlsProblem };
      } else {
        const pageOrigin = env === 'same-origin' ? proxy.origin : staticServer.origin;
        const sockBase = env === 'same-origin' ? proxy.origin : env === 'deflate' ? deflateBase :
          env === 'https' ? tlsBase : base;
        // Which WebSocket extensions the page must see: deflate on the deflate server, none
        // on a server we started without the flag.
        const extensions = t !== 'websocket' ? undefined :
          env === 'deflate' ? 'deflate' : started ? 'none' : undefined;
        r = await browserRow(browser, pageOrigin, sockBase, t, o, log, extensions).catch((e) =>
          ({ status: 'fail', checks: {}, note: e.message.split('\n')[0] }));
      }
      r.env = env;
      r.transport = t;
      r.secs = (Date.now() - t0) / 1000;
      const na = EXPECTED_NA[env][t];
      if (r.status === 'n/a' && !na) {
        r.status = 'fail';
        r.note = 'the client did not offer ' + t + ' (/info: ' + JSON.stringify(r.info) + ')';
      } else if (r.status === 'n/a') {
        r.note = na;
      } else if (na) {
        r.note = (r.note ? r.note + '; ' : '') + 'expected n/a (' + na + ') but the client offered it';
      }
      const consoleErrors = (r.console || []).filter((l) => /^(error|pageerror):/.test(l) && !/Failed to load resource/.test(l));
      if (r.status === 'fail' && consoleErrors.length) {
        r.note = (r.note ? r.note + '; ' : '') + 'browser said: ' + consoleErrors[0].replace(/^\w+: /, '').slice(0, 240);
      }
      if (r.status === 'fail' && t.startsWith('iframe-') && iframeHint) {
        r.note = (r.note ? r.note + '; ' : '') + iframeHint;
      }
      rows.push(r);
      const failed = Checks.CHECKS.filter((c) => r.checks[c] && !r.checks[c].ok);
      const how = r.checks.open && r.checks.open.ok ? ' ' + r.checks.open.detail : '';
      log(`${env}/${t}: ${r.status === 'n/a' ? 'n/a' : r.status.toUpperCase()} (${r.secs.toFixed(1)}s)${how}` +
        (failed.length ? ' - ' + failed.map((c) => c + ': ' + r.checks[c].detail).join('; ') : '') +
        (r.note ? ' [' + r.note + ']' : ''));
      if (r.status === 'fail' && !o.verbose && r.console && r.console.length) {
        log(r.console.slice(-8).map((l) => '    [console] ' + l).join('\n'));
      }
    }

    log('\n' + table(rows) + '\n');
    const pass = rows.filter((r) => r.status === 'pass').length;
    const fail = rows.filter((r) => r.status === 'fail').length;
    const na = rows.filter((r) => r.status === 'n/a').length;
    if (fail) {
      log('failures:');
      for (const r of rows.filter((x) => x.status === 'fail')) {
        const bad = Checks.CHECKS.filter((c) => r.checks[c] && !r.checks[c].ok);
        log(`  ${r.env}/${r.transport}: ` + [...bad.map((c) => c + ': ' + r.checks[c].detail), r.note].filter(Boolean).join('; '));
      }
      log('');
    }
    log(`${pass} passed, ${fail} failed, ${na} n/a`);
    return fail ? 1 : 0;
  } catch (e) {
    process.stderr.write('error: ' + (e && e.message ? e.message : e) + '\n');
    return 2;
  } finally {
    await cleanup();
  }
}

main().then((code) => process.exit(code));
