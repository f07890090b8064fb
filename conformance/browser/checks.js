// The per-transport checks. Runs unchanged in the browser (loaded by page.html next to
// sockjs.min.js, exported as `SockJSChecks`) and in node (required by run.js, driving
// sockjs-client's node build).
//
// runTransport(SockJS, base, transport, opts) forces one transport
// (`new SockJS(base + '/echo', null, {transports: [transport]})`) and resolves to
//   { status: 'pass' | 'fail' | 'n/a', checks: {name: {ok, detail}}, info, note }
// It never rejects. opts.extensions, for the websocket transport in the browser: 'deflate'
// (the socket must have negotiated permessage-deflate: the native WebSocket's `extensions`,
// which is the server's Sec-WebSocket-Extensions answer as the browser accepted it) or
// 'none' (it must have negotiated nothing).
(function (root, factory) {
  if (typeof module === 'object' && module.exports) {
    module.exports = factory();
  } else {
    root.SockJSChecks = factory();
  }
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  var CHECKS = ['open', 'ascii', 'unicode', '100KB', 'burst', 'close', '/close'];

  // Records, per SockJS instance, the /info answer and how many transports the client
  // itself considered usable for it (after the `transports` whitelist and each
  // transport's own `enabled()` test). sockjs-client binds `_receiveInfo` in its
  // constructor, so the prototype is wrapped once, before any instance exists.
  function installProbe(SockJS) {
    var proto = SockJS.prototype;
    if (proto.__checksProbe) return;
    var orig = proto._receiveInfo;
    if (typeof orig !== 'function') throw new Error('unexpected sockjs-client build: no _receiveInfo');
    proto._receiveInfo = function (info, rtt) {
      this.__info = info ? JSON.parse(JSON.stringify(info)) : null;
      var r = orig.apply(this, arguments);
      // _connect() has already moved the first candidate into _transport (or left it
      // queued while waiting for the document body).
      this.__offered = (this._transports ? this._transports.length : 0) + (this._transport ? 1 : 0);
      return r;
    };
    proto.__checksProbe = true;
  }

  // ---- payloads -------------------------------------------------------------------

  function asciiPayload() {
    var s = '';
    for (var i = 0; i < 128; i++) s += String.fromCharCode(i);
    return s;
  }

  var UNICODE = [
    // emoji: astral code points (surrogate pairs), skin tone modifier, ZWJ sequence, flag
    '\ud83d\ude00 \ud83d\udc4d\ud83c\udffd \ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67\u200d\ud83d\udc66 \ud83c\uddfa\ud83c\uddf3 \ud834\udd1e',
    // LINE SEPARATOR and PARAGRAPH SEPARATOR: legal in JSON, not in old JavaScript strings
    'a\u2028b\u2029c\u2028\u2029',
    // zero-width space / non-joiner / joiner, word joiner, BOM, soft hyphen
    '[\u200b][\u200c][\u200d][\u2060][\ufeff][\u00ad]',
    // combining characters, alone and stacked
    'e\u0301 a\u0308 n\u0303 Z\u0351\u0362\u0336 \u0301\u0302\u0303',
    // assorted scripts and specials
    '\u00e9\u00df\u03a9\u0436\u4e2d\u6587\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u00a0\ufffd\ufb01\uffef'
  ];

  function bigPayload(len) {
    // Position-stamped so a mismatch says where it went wrong.
    var parts = [];
    var n = 0;
    for (var k = 0; n < len; k++) {
      var p = '<' + k + ':abcdefghijklmnopqrstuvwxyz0123456789>';
      parts.push(p);
      n += p.length;
    }
    return parts.join('').slice(0, len);
  }

  function describeDiff(want, got) {
    if (typeof got !== 'string') return 'got non-string ' + typeof got;
    if (got.length !== want.length) {
      var i0 = firstDiff(want, got);
      return 'length ' + got.length + ' != ' + want.length + ', first difference at ' + i0 + ' (' + codeAt(want, i0) + ' vs ' + codeAt(got, i0) + ')';
    }
    var i = firstDiff(want, got);
    return 'differs at ' + i + ': sent ' + codeAt(want, i) + ', got ' + codeAt(got, i);
  }
  function firstDiff(a, b) {
    var n = Math.min(a.length, b.length);
    for (var i = 0; i < n; i++) if (a.charCodeAt(i) !== b.charCodeAt(i)) return i;
    return n;
  }
  function codeAt(s, i) {
    return i < s.length ? 'U+' + ('0000' + s.charCodeAt(i).toString(16).toUpperCase()).slice(-4) : 'end';
  }
  function short(s) {
    s = String(s);
    return s.length > 60 ? s.slice(0, 57) + '...' : s;
  }

  // ---- a connection with an awaitable message queue --------------------------------

  function Conn(SockJS, url, transport) {
    var self = this;
    this.queue = [];
    this.waiter = null;
    this.closed = null;
    this.errors = 0;
    this.sock = new SockJS(url, null, { transports: [transport] });
    this.opened = new Promise(function (resolve) {
      self.sock.onopen = function () {
        // Read now: a close frame in the same chunk as the open frame clears it.
        self.openTransport = self.sock.transport;
        // The native WebSocket under sockjs-client's websocket transport, if any.
        var t = self.sock._transport;
        self.wsExtensions = t && t.ws && typeof t.ws.extensions === 'string' ? t.ws.extensions : null;
        resolve(true);
      };
      self._resolveOpenOnClose = function () { resolve(false); };
    });
    this.sock.onmessage = function (e) {
      self.queue.push(e.data);
      self._wake();
    };
    this.sock.onerror = function () { self.errors++; };
    this.sock.onclose = function (e) {
      self.closed = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      self._resolveOpenOnClose();
      self._wake();
    };
  }
  Conn.prototype._wake = function () {
    if (this.waiter) {
      var w = this.waiter;
      this.waiter = null;
      w();
    }
  };
  Conn.prototype._wait = function (ms) {
    var self = this;
    return new Promise(function (resolve) {
      var t = setTimeout(function () { self.waiter = null; resolve(); }, ms);
      self.waiter = function () { clearTimeout(t); resolve(); };
    });
  };
  // Resolves to an array of `n` messages, or throws on close / timeout.
  Conn.prototype.take = async function (n, ms) {
    var deadline = Date.now() + ms;
    while (this.queue.length < n) {
      if (this.closed) throw new Error('socket closed (' + this.closed.code + ' ' + this.closed.reason + ') after ' + this.queue.length + '/' + n + ' messages');
      var left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out after ' + ms + ' ms with ' + this.queue.length + '/' + n + ' messages');
      await this._wait(left);
    }
    return this.queue.splice(0, n);
  };
  Conn.prototype.waitClosed = async function (ms) {
    var deadline = Date.now() + ms;
    while (!this.closed) {
      var left = deadline - Date.now();
      if (left <= 0) throw new Error('no close event within ' + ms + ' ms');
      await this._wait(left);
    }
    return this.closed;
  };
  Conn.prototype.waitOpen = async function (ms) {
    var t;
    var timeout = new Promise(function (resolve) { t = setTimeout(function () { resolve('timeout'); }, ms); });
    var r = await Promise.race([this.opened, timeout]);
    clearTimeout(t);
    return r;
  };
  Conn.prototype.abandon = function () {
    try {
      if (!this.closed && this.sock.readyState !== 3) this.sock.close();
    } catch (e) { /* already closing */ }
  };

  async function echo(conn, messages, ms) {
    for (var i = 0; i < messages.length; i++) conn.sock.send(messages[i]);
    var got = await conn.take(messages.length, ms);
    for (var j = 0; j < messages.length; j++) {
      if (got[j] !== messages[j]) {
        throw new Error((messages.length > 1 ? 'message ' + j + ': ' : '') + describeDiff(messages[j], got[j]));
      }
    }
    return got;
  }

  // ---- one transport ----------------------------------------------------------------

  async function runTransport(SockJS, base, transport, opts) {
    opts = opts || {};
    var stepMs = opts.stepTimeout || 15000;
    var bigLen = opts.bigLength || 100 * 1024;
    var burstN = opts.burst || 200;
    var result = { transport: transport, status: 'fail', checks: {}, info: null, note: '' };
    // Partial results stay reachable if the caller gives up on this row.
    api.last = result;
    var checks = result.checks;
    function pass(name, detail) { checks[name] = { ok: true, detail: detail || '' }; }
    function fail(name, detail) { checks[name] = { ok: false, detail: String(detail) }; }

    try {
      installProbe(SockJS);
    } catch (e) {
      fail('open', e.message);
      return result;
    }

    // Opens a connection and checks it really runs on `transport`. Resolves to the
    // Conn, to 'n/a' when the client offers no such transport here, or throws.
    async function open(url) {
      var conn = new Conn(SockJS, url, transport);
      var r = await conn.waitOpen(stepMs);
      if (r === 'timeout') {
        conn.abandon();
        throw new Error('not open after ' + stepMs + ' ms');
      }
      if (!r) {
        var c = conn.closed;
        if (conn.sock.__offered === 0 && c && c.code === 2000) {
          result.info = conn.sock.__info;
          return 'n/a';
        }
        throw new Error('closed before open: ' + c.code + ' ' + c.reason +
          (conn.sock.__offered === undefined ? ' (no /info answer)' : ''));
      }
      result.info = result.info || conn.sock.__info;
      if (conn.openTransport !== transport) {
        conn.abandon();
        throw new Error('opened on ' + conn.openTransport + ', not ' + transport);
      }
      return conn;
    }

    var conn = null;
    async function ensureOpen() {
      if (conn && !conn.closed && conn.queue.length === 0) return conn;
      if (conn) conn.abandon();
      conn = await open(base + '/echo');
      if (conn === 'n/a') throw new Error('transport stopped being offered');
      return conn;
    }

    // open
    try {
      conn = await open(base + '/echo');
      if (conn === 'n/a') {
        result.status = 'n/a';
        result.note = 'client offers no ' + transport + ' here';
        return result;
      }
      var detail = 'sock.transport = ' + conn.openTransport;
      if (opts.extensions) {
        var ext = conn.wsExtensions;
        var okExt = opts.extensions === 'deflate' ? /^permessage-deflate(;|$)/.test(ext || '') : ext === '';
        if (!okExt) {
          conn.abandon();
          fail('open', 'WebSocket extensions ' + JSON.stringify(ext) + ', expected ' +
            (opts.extensions === 'deflate' ? 'permessage-deflate' : 'none'));
          return result;
        }
        detail += ', extensions: ' + JSON.stringify(ext);
      }
      pass('open', detail);
    } catch (e) {
      fail('open', e.message);
      return result;
    }

    var steps = [
      ['ascii', async function () {
        await echo(await ensureOpen(), [asciiPayload()], stepMs);
      }],
      ['unicode', async function () {
        var c = await ensureOpen();
        await echo(c, UNICODE, stepMs);
        await echo(c, [UNICODE.join('|')], stepMs);
      }],
      ['100KB', async function () {
        await echo(await ensureOpen(), [bigPayload(bigLen)], stepMs);
      }],
      ['burst', async function () {
        var c = await ensureOpen();
        var msgs = [];
        for (var i = 0; i < burstN; i++) msgs.push('burst ' + i);
        for (var k = 0; k < msgs.length; k++) c.sock.send(msgs[k]);
        var got = [];
        try {
          got = await c.take(msgs.length, stepMs);
        } catch (e) {
          throw new Error(e.message + (c.queue.length ? ', last received ' + JSON.stringify(c.queue[c.queue.length - 1]) : ''));
        }
        for (var j = 0; j < msgs.length; j++) {
          if (got[j] !== msgs[j]) throw new Error('position ' + j + ': expected ' + JSON.stringify(msgs[j]) + ', got ' + JSON.stringify(short(got[j])));
        }
      }],
      ['close', async function () {
        var c = await ensureOpen();
        var errorsBefore = c.errors;
        c.sock.close();
        var e = await c.waitClosed(stepMs);
        if (e.code !== 1000 || e.reason !== 'Normal closure' || e.wasClean !== true) {
          throw new Error('close event ' + e.code + ' ' + JSON.stringify(e.reason) + ' wasClean=' + e.wasClean);
        }
        if (c.errors !== errorsBefore) throw new Error('error event while closing');
        if (c.sock.readyState !== 3) throw new Error('readyState ' + c.sock.readyState + ' after close');
        if (c.queue.length) throw new Error('unexpected message ' + JSON.stringify(short(c.queue[0])));
      }],
      ['/close', async function () {
        var c = await open(base + '/close');
        if (c === 'n/a') throw new Error('transport not offered for /close');
        var e = await c.waitClosed(stepMs);
        if (e.code !== 3000 || e.reason !== 'Go away!' || e.wasClean !== true) {
          throw new Error('close event ' + e.code + ' ' + JSON.stringify(e.reason) + ' wasClean=' + e.wasClean);
        }
        if (c.queue.length) throw new Error('unexpected message ' + JSON.stringify(short(c.queue[0])));
      }]
    ];

    for (var i = 0; i < steps.length; i++) {
      var name = steps[i][0];
      try {
        await steps[i][1]();
        pass(name);
      } catch (e) {
        fail(name, e && e.message ? e.message : e);
        // Later steps get a fresh connection (ensureOpen) so one failure doesn't
        // cascade through leftover messages.
        if (conn && conn !== 'n/a') conn.abandon();
        conn = null;
      }
    }
    if (conn && conn !== 'n/a') conn.abandon();

    var allOk = CHECKS.every(function (n) { return checks[n] && checks[n].ok; });
    result.status = allOk ? 'pass' : 'fail';
    return result;
  }

  var api = { CHECKS: CHECKS, runTransport: runTransport, installProbe: installProbe, last: null };
  return api;
});
