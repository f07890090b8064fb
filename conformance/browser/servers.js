// The harness's own HTTP servers, both on 127.0.0.1:
//
// - the static server: serves the test page, checks.js and the sockjs-client browser
//   build (also the `--sockjs-url` the SockJS server's iframe page must load). A page
//   loaded from here talks to the SockJS server cross-origin.
// - the same-origin proxy: serves the same files, and forwards every request under the
//   test services' prefixes to the SockJS server unchanged — streaming responses are
//   piped chunk by chunk, WebSocket upgrades are spliced as raw TCP — so a page loaded
//   from here talks to an unmodified SockJS server same-origin.
//
// Both record the paths they see (`server.seen`), for diagnostics.
'use strict';

const http = require('http');
const net = require('net');
const fs = require('fs');
const path = require('path');

const CLIENT_DIST = path.join(path.dirname(require.resolve('sockjs-client/package.json')), 'dist');

const FILES = {
  '/': [path.join(__dirname, 'page.html'), 'text/html; charset=UTF-8'],
  '/page.html': [path.join(__dirname, 'page.html'), 'text/html; charset=UTF-8'],
  '/checks.js': [path.join(__dirname, 'checks.js'), 'application/javascript; charset=UTF-8'],
  '/sockjs.min.js': [path.join(CLIENT_DIST, 'sockjs.min.js'), 'application/javascript; charset=UTF-8'],
  '/sockjs.min.js.map': [path.join(CLIENT_DIST, 'sockjs.min.js.map'), 'application/json'],
  '/sockjs.js': [path.join(CLIENT_DIST, 'sockjs.js'), 'application/javascript; charset=UTF-8'],
  '/sockjs.js.map': [path.join(CLIENT_DIST, 'sockjs.js.map'), 'application/json'],
};

// The services of the test-server contract.
const PROXIED = /^\/(echo|close|disabled_websocket_echo|cookie_needed_echo)(\/|\?|$)/;

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);

function serveStatic(req, res) {
  const p = req.url.split('?')[0];
  const f = FILES[p];
  if (!f || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found\n');
    return;
  }
  fs.readFile(f[0], (err, body) => {
    if (err) {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(String(err));
      return;
    }
    res.writeHead(200, {
      'Content-Type': f[1],
      'Content-Length': body.length,
      'Cache-Control': 'no-store',
      'Access-Control-Allow-Origin': '*',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
}

function proxyHttp(upstream, req, res) {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (!HOP_BY_HOP.has(k)) headers[k] = v;
  }
  const up = http.request({
    host: upstream.hostname,
    port: upstream.port,
    method: req.method,
    path: req.url,
    headers,
    agent: false,
  });
  up.setNoDelay(true);
  up.on('response', (ur) => {
    const raw = [];
    for (let i = 0; i < ur.rawHeaders.length; i += 2) {
      if (!HOP_BY_HOP.has(ur.rawHeaders[i].toLowerCase())) raw.push(ur.rawHeaders[i], ur.rawHeaders[i + 1]);
    }
    res.writeHead(ur.statusCode, ur.statusMessage, raw);
    res.flushHeaders();
    // Forward each chunk as it arrives: streaming transports depend on it.
    ur.on('data', (chunk) => res.write(chunk));
    ur.on('end', () => res.end());
    ur.on('error', () => res.destroy());
  });
  up.on('error', (err) => {
    if (!res.headersSent) {
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end('proxy: ' + err.message + '\n');
    } else {
      res.destroy();
    }
  });
  // The browser going away (closed iframe, aborted xhr) must reach the server too.
  res.on('close', () => up.destroy());
  req.pipe(up);
}

function proxyUpgrade(upstream, req, socket, head) {
  const up = net.connect(upstream.port, upstream.hostname);
  up.setNoDelay(true);
  socket.setNoDelay(true);
  let lines = req.method + ' ' + req.url + ' HTTP/' + req.httpVersion + '\r\n';
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    lines += req.rawHeaders[i] + ': ' + req.rawHeaders[i + 1] + '\r\n';
  }
  up.write(lines + '\r\n');
  if (head && head.length) up.write(head);
  up.pipe(socket);
  socket.pipe(up);
  const kill = () => {
    up.destroy();
    socket.destroy();
  };
  up.on('error', kill);
  socket.on('error', kill);
  up.on('close', kill);
  socket.on('close', kill);
}

// Starts a server on 127.0.0.1:`port` (0 = any free port). With `upstream` (a URL
// string), requests under the test services' prefixes are forwarded there.
function start({ port = 0, upstream = null } = {}) {
  const up = upstream ? new URL(upstream) : null;
  const server = http.createServer({ noDelay: true, keepAliveTimeout: 1000 });
  server.seen = [];
  server.on('request', (req, res) => {
    server.seen.push(req.method + ' ' + req.url);
    if (up && PROXIED.test(req.url)) proxyHttp(up, req, res);
    else serveStatic(req, res);
  });
  server.on('upgrade', (req, socket, head) => {
    server.seen.push('UPGRADE ' + req.url);
    if (up && PROXIED.test(req.url)) proxyUpgrade(up, req, socket, head);
    else socket.destroy();
  });
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.shutdown = () => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.origin = 'http://127.0.0.1:' + server.address().port;
      resolve(server);
    });
  });
}

module.exports = { start, FILES };
