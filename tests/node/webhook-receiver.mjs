// A webhook receiver as the platform's backend would write one: every message is verified with
// the npm `standardwebhooks` package (another implementation, in another language, than the
// server's signer). Driven by crates/wakili-server/tests/webhooks.rs and the crash test of
// crates/wakili over HTTP:
//   POST /hook        the endpoint: verifies, records, answers with the current mode's status
//   POST /control     {"status": 500, "retryAfter": "2"} sets how /hook answers from now on
//   GET  /received    {"received": [...], "rejected": n}: every message, in arrival order
// Secrets come from WEBHOOK_SECRETS (a JSON array); a message verifies when any of them does.
// Prints "LISTENING <port>" once it accepts connections.
import http from 'node:http';
import { Webhook } from 'standardwebhooks';

const secrets = JSON.parse(process.env.WEBHOOK_SECRETS ?? '[]');
const verifiers = secrets.map((s) => ({ secret: s, hook: new Webhook(s) }));
let mode = { status: 200, retryAfter: null };
const received = [];
let rejected = 0;

function body(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function reply(res, status, json, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(json === undefined ? '' : JSON.stringify(json));
}

const server = http.createServer(async (req, res) => {
  try {
    const text = await body(req);
    if (req.method === 'POST' && req.url === '/hook') {
      const headers = {
        'webhook-id': req.headers['webhook-id'],
        'webhook-timestamp': req.headers['webhook-timestamp'],
        'webhook-signature': req.headers['webhook-signature'],
      };
      const verifiedWith = [];
      let payload = null;
      for (const { secret, hook } of verifiers) {
        try {
          payload = hook.verify(text, headers);
          verifiedWith.push(secret);
        } catch {
          // Not this secret.
        }
      }
      if (verifiedWith.length === 0) {
        rejected += 1;
        reply(res, 401, { error: 'bad signature' });
        return;
      }
      received.push({
        id: headers['webhook-id'],
        type: payload.type,
        timestamp: payload.timestamp,
        data: payload.data,
        signatures: headers['webhook-signature'].split(' ').length,
        verifiedWith,
        answered: mode.status,
        at: Date.now(),
      });
      const extra = mode.retryAfter ? { 'retry-after': mode.retryAfter } : {};
      reply(res, mode.status, { ok: mode.status < 300 }, extra);
    } else if (req.method === 'POST' && req.url === '/control') {
      mode = { status: 200, retryAfter: null, ...JSON.parse(text) };
      reply(res, 200, mode);
    } else if (req.method === 'GET' && req.url === '/received') {
      reply(res, 200, { received, rejected });
    } else {
      reply(res, 404, { error: 'not found' });
    }
  } catch (e) {
    reply(res, 500, { error: String(e) });
  }
});

const port = Number(process.env.WEBHOOK_PORT ?? 0);
server.listen(port, '127.0.0.1', () => {
  console.log(`LISTENING ${server.address().port}`);
});
