#!/usr/bin/env node
// The README's demo in Chromium: the chat page (examples/chat/page.html) with the real
// sockjs-client against a chat example, through a node's graceful shutdown and restart.
//
//   node chat.js [--chromium PATH] [--transports ANN,BOB] -- CMD [ARGS...]
//
// Starts `CMD ARGS... 127.0.0.1:PORT --sockjs-file <sockjs-client's sockjs.min.js>` (a
// built chat example: it is stopped with SIGTERM and started again on the same port, so
// not `cargo run`), opens the page twice (ann over websocket, bob over xhr-polling, or the
// two transports given) and checks, in order:
//   1. both join, and what ann says reaches bob;
//   2. the node shuts down: both pages see the close (1001 "Server shutting down" where
//      ann is on websocket) and wait to reconnect, the Join button still disabled;
//   3. the node comes back: both pages reconnect by themselves, and talk again;
//   4. Leave while a reconnection waits cancels it: that page stays out when the node is
//      back;
//   5. a name refused by the server (nothing visible in it: 4002) is not tried again.
// Prints one line per step and exits 0 when all passed, 1 when one failed, 2 when the run
// could not be set up.
'use strict';

const net = require('net');
const path = require('path');
const { spawn } = require('child_process');

const STEP_TIMEOUT = 45000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function usage(problem) {
  process.stderr.write('usage: node chat.js [--chromium PATH] [--transports ANN,BOB] -- CMD [ARGS...] (' +
    problem + ')\n');
  process.exit(2);
}

function parse(argv) {
  const o = {
    chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    transports: ['websocket', 'xhr-polling'],
    cmd: [],
  };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') {
      o.cmd = argv.slice(i + 1);
      break;
    } else if (argv[i] === '--chromium') {
      o.chromium = argv[++i] || usage('--chromium needs a path');
    } else if (argv[i] === '--transports') {
      o.transports = (argv[++i] || '').split(',');
      if (o.transports.length !== 2 || o.transports.some((t) => !t)) usage('--transports wants two');
    } else {
      usage('unknown argument ' + argv[i]);
    }
  }
  if (!o.cmd.length) usage('no command');
  return o;
}

/** A free loopback port (the chat comes back on the same one). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The chat, started; `ready` resolves once it prints where it serves. */
class Chat {
  constructor(argv) {
    process.stderr.write('starting: ' + argv.join(' ') + '\n');
    this.child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    process.on('exit', () => {
      try { this.child.kill('SIGKILL'); } catch (e) { /* gone */ }
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, sig) => resolve(sig ? 'signal ' + sig : 'exit code ' + code));
      this.child.on('error', (err) => resolve(err.message));
    });
    this.ready = new Promise((resolve, reject) => {
      this.exited.then((why) => reject(new Error('the chat ended (' + why + ') before serving')));
      let out = '';
      this.child.stdout.setEncoding('utf8');
      this.child.stdout.on('data', (d) => {
        out += d;
        if (/chat on http:\/\//.test(out)) resolve();
      });
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', () => {});
  }

  /** SIGTERM (a graceful shutdown), then waits for the process to end. */
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const ended = await Promise.race([this.exited.then(() => true), sleep(20000).then(() => false)]);
    if (!ended) {
      this.child.kill('SIGKILL');
      throw new Error('the chat did not end within 20 s of SIGTERM');
    }
  }
}

async function main() {
  const o = parse(process.argv.slice(2));
  const script = path.join(path.dirname(require.resolve('sockjs-client/package.json')), 'dist', 'sockjs.min.js');
  const port = await freePort();
  const origin = 'http://127.0.0.1:' + port;
  const argv = [...o.cmd, '127.0.0.1:' + port, '--sockjs-file', script];
  let chat = new Chat(argv);
  await chat.ready;

  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({
    executablePath: o.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let failed = 0;
  const step = async (name, body) => {
    const t0 = Date.now();
    try {
      await body();
      process.stdout.write('ok    ' + name + ' (' + (Date.now() - t0) + ' ms)\n');
    } catch (e) {
      failed++;
      process.stdout.write('FAIL  ' + name + ': ' + e.message.split('\n')[0] + '\n');
    }
  };
  // Each page in a context of its own (its own localStorage).
  const open = async (nick, transport) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const query = new URLSearchParams({ nick, transport, join: '1' });
    await page.goto(origin + '/?' + query, { waitUntil: 'load' });
    return page;
  };
  const state = (page) => page.$eval('#state', (e) => e.textContent);
  const stateMatches = (page, pattern) => page.waitForFunction(
    (source) => new RegExp(source).test(document.getElementById('state').textContent),
    pattern.source, { timeout: STEP_TIMEOUT, polling: 100 });
  const say = async (page, text) => {
    await page.fill('#say', text);
    await page.click('#send');
  };
  const heard = (page, text) => page.waitForFunction(
    (t) => [...document.querySelectorAll('#log .msg')].some((m) => m.textContent.endsWith(t)),
    text, { timeout: STEP_TIMEOUT, polling: 100 });
  const joinDisabled = (page) => page.$eval('#connect', (b) => b.disabled);
  // Lines of the page's log that say `text` (a join: the server tells every member of the
  // room, the one who joined too, so a page's own join line shows that it is in the room).
  const count = (page, text) => page.evaluate(
    (t) => [...document.querySelectorAll('#log .sys')].filter((l) => l.textContent.startsWith(t)).length, text);
  const counts = (page, text, n) => page.waitForFunction(
    ([t, n]) => [...document.querySelectorAll('#log .sys')].filter((l) => l.textContent.startsWith(t)).length >= n,
    [text, n], { timeout: STEP_TIMEOUT, polling: 100 });
  const [annVia, bobVia] = o.transports;
  // What the server calls a client's transport: the iframe ones by the transport inside
  // the iframe, the xdr ones by the requests they make.
  const served = (t) => t.replace(/^iframe-/, '').replace(/^xdr-/, 'xhr-');
  const inRoom = async (n) => {
    await counts(ann, 'ann joined via ' + served(annVia), n);
    await counts(bob, 'bob joined via ' + served(bobVia), n);
  };

  let ann, bob;
  try {
    await step('both join over ' + annVia + ' and ' + bobVia + ', and talk', async () => {
      ann = await open('ann', annVia);
      bob = await open('bob', bobVia);
      await inRoom(1);
      await say(ann, 'hello from ann');
      await heard(bob, 'hello from ann');
    });

    await step('a node shutting down: both pages see the close and wait to reconnect', async () => {
      const stopping = chat.stop();
      try {
        await stateMatches(ann, annVia === 'websocket' ?
          /^disconnected \(1001 Server shutting down\); reconnecting in/ : /reconnecting in/);
        await stateMatches(bob, /reconnecting in/);
        if (!(await joinDisabled(ann)) || !(await joinDisabled(bob))) {
          throw new Error('the Join button is enabled while reconnecting');
        }
      } finally {
        await stopping;
      }
    });

    await step('the node back: both pages reconnect by themselves and talk again', async () => {
      chat = new Chat(argv);
      await chat.ready;
      await inRoom(2);
      await say(bob, 'bob is back');
      await heard(ann, 'bob is back');
    });

    await step('Leave while a reconnection waits cancels it, through the node\'s restart', async () => {
      const annJoins = await count(bob, 'ann joined');
      const stopping = chat.stop();
      try {
        await stateMatches(ann, /reconnecting in/);
        await ann.click('#leave');
        await stateMatches(ann, /^disconnected$/);
      } finally {
        await stopping;
      }
      chat = new Chat(argv);
      await chat.ready;
      await counts(bob, 'bob joined via ' + served(bobVia), 3);
      await sleep(2000);
      const s = await state(ann);
      if (s !== 'disconnected') throw new Error('ann: ' + s);
      if (await joinDisabled(ann)) throw new Error('ann cannot join again');
      const joins = await count(bob, 'ann joined');
      if (joins !== annJoins) throw new Error('ann joined again (' + joins + ' joins seen)');
    });

    await step('a name with nothing visible (4002) is not tried again', async () => {
      const ghost = await open('\u200b', 'websocket');
      await stateMatches(ghost, /^disconnected \(4002 A name needs a visible character\)$/);
      await sleep(2000);
      const s = await state(ghost);
      if (s !== 'disconnected (4002 A name needs a visible character)') throw new Error('then: ' + s);
    });
  } finally {
    await browser.close().catch(() => {});
    await chat.stop().catch(() => {});
  }
  process.stdout.write(failed ? failed + ' failed\n' : 'all passed\n');
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  process.stderr.write('chat.js: ' + (e.stack || e.message) + '\n');
  process.exit(2);
});
