// The process `npm run bench crash` kills. It opens the shared SQLite store (LATCHKEY_HOME),
// says {"type":"ready"}, then obeys JSON commands on stdin:
//   {"cmd":"arm"}      read the stored credential's access token (the one it will refuse)
//   {"cmd":"refresh"}  refresh it now, as a server's 401 would make it; answers {"type":"refreshed"}
// The token request's timeline is reported for calibration: when the answer's headers came
// (`answeredAt`) and when the refreshed credential was back from the store (`storedAt`).
import { createInterface } from 'node:readline';

import { CredentialManager } from '../src/lifecycle/manager.js';
import { silentLogger } from '../src/log.js';
import { openSqliteStore } from '../src/store/sqlite.js';

const server = process.env['LK_SERVER'] ?? '';
const store = await openSqliteStore({});
let answeredAt = 0;
const timedFetch: typeof fetch = async (input, init) => {
  const response = await fetch(input, init);
  if (init?.method === 'POST') answeredAt = Date.now();
  return response;
};
const manager = new CredentialManager({
  store,
  logger: silentLogger,
  fetch: timedFetch,
  watch: false,
  proactiveRefresh: false,
});
let token: string | undefined;

function say(msg: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const { cmd } = JSON.parse(line) as { cmd: string };
  if (cmd === 'arm') {
    void manager.getAccessToken(server).then((t) => {
      token = t;
      say({ type: 'armed' });
    });
  }
  if (cmd === 'refresh') {
    void manager.getToken(server, token === undefined ? {} : { rejectedToken: token }).then(
      () => say({ type: 'refreshed', answeredAt, storedAt: Date.now() }),
      (error: unknown) => say({ type: 'failed', message: String(error) }),
    );
  }
});

say({ type: 'ready', pid: process.pid });
