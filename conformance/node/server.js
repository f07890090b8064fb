#!/usr/bin/env node
// Reference SockJS test server on sockjs-node, exposing the four services the SockJS
// protocol suite expects:
//
//   /echo                     echo, response_limit 4096 (raw websocket on /echo/websocket)
//   /close                    closes every session on open with 3000 "Go away!"
//   /disabled_websocket_echo  echo, websocket transport disabled
//   /cookie_needed_echo       echo, JSESSIONID cookie enabled
//
// Usage: node server.js [--port N | --port HOST:PORT] [--heartbeat-ms N]
//                       [--disconnect-ms N] [--sockjs-url URL]
'use strict';

const http = require('http');
const sockjs = require('sockjs');

function usage(message) {
  if (message) {
    process.stderr.write(message + '\n');
  }
  process.stderr.write(
    'usage: node server.js [--port N | --port HOST:PORT] [--heartbeat-ms N] ' +
      '[--disconnect-ms N] [--sockjs-url URL]\n'
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 8081, heartbeat: 25000, disconnect: 5000, sockjsUrl: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) {
        usage('missing value for ' + arg);
      }
      i += 1;
      return argv[i];
    };
    const int = (v) => {
      if (!/^[0-9]+$/.test(v)) {
        usage('not a number: ' + v);
      }
      return parseInt(v, 10);
    };
    switch (arg) {
      case '--port': {
        const v = next();
        const colon = v.lastIndexOf(':');
        if (colon >= 0) {
          opts.host = v.slice(0, colon);
          opts.port = int(v.slice(colon + 1));
        } else {
          opts.port = int(v);
        }
        break;
      }
      case '--heartbeat-ms':
        opts.heartbeat = int(next());
        break;
      case '--disconnect-ms':
        opts.disconnect = int(next());
        break;
      case '--sockjs-url':
        opts.sockjsUrl = next();
        break;
      case '-h':
      case '--help':
        usage();
        break;
      default:
        usage('unknown argument: ' + arg);
    }
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

const common = {
  heartbeat_delay: opts.heartbeat,
  disconnect_delay: opts.disconnect,
  log: (severity, line) => {
    if (severity === 'error') {
      process.stderr.write(line + '\n');
    }
  },
};
if (opts.sockjsUrl) {
  common.sockjs_url = opts.sockjsUrl;
}

// sockjs-node hands non-string JSON values (numbers, objects, null) to the application as
// they are; writing those back would throw, so echo their JSON text instead.
function echo(conn) {
  conn.on('data', (message) => {
    conn.write(typeof message === 'string' ? message : JSON.stringify(message));
  });
}

const services = [
  { prefix: '/echo', options: { response_limit: 4096 }, onConnection: echo },
  {
    prefix: '/close',
    options: {},
    onConnection: (conn) => conn.close(3000, 'Go away!'),
  },
  { prefix: '/disabled_websocket_echo', options: { websocket: false }, onConnection: echo },
  { prefix: '/cookie_needed_echo', options: { jsessionid: true }, onConnection: echo },
];

const server = http.createServer();
server.on('request', (req, res) => {
  // sockjs installs its own 'request' listener in front of this one and handles every
  // path under a service prefix; anything else ends here.
  if (!res.headersSent && !res.writableEnded) {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=UTF-8' });
    res.end('404 Error: Page not found\n');
  }
});

for (const service of services) {
  const sjs = sockjs.createServer(Object.assign({}, common, service.options));
  sjs.on('connection', (conn) => {
    if (conn) {
      service.onConnection(conn);
    }
  });
  sjs.installHandlers(server, { prefix: service.prefix });
}

server.on('clientError', (err, socket) => {
  socket.destroy();
});

server.listen(opts.port, opts.host, () => {
  const addr = server.address();
  process.stdout.write('listening on http://' + addr.address + ':' + addr.port + '\n');
});

function shutdown() {
  server.close();
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
