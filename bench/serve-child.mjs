// `npm run bench serve`'s processes, plain JavaScript on dist/ so that the RSS figure is the
// service's and not a TypeScript loader's. The store is SQLite in LATCHKEY_HOME under the data
// key in LATCHKEY_KEY (both set by bench/serve.ts).
//   serve-child.mjs seed <count>  writes <count> connected users through the store API (tokens
//                                 valid an hour or more, so nothing comes due) and an app key;
//                                 prints { key } and exits.
//   serve-child.mjs serve         runs the service with its refresher, as a deployment does, in
//                                 a process that never held the seeding's memory; prints { url }
//                                 when it listens. SIGTERM stops it.
import { randomBytes } from 'node:crypto';

const dist = new URL('../dist/', import.meta.url);
const { openSqliteStore } = await import(new URL('store/sqlite.js', dist).href);
const { startServe } = await import(new URL('serve/server.js', dist).href);
const { createAppKey } = await import(new URL('serve/app-keys.js', dist).href);
const { createLogger } = await import(new URL('log.js', dist).href);

const server = 'https://mcp.example.com/mcp';
const issuer = 'https://as.example.com';
const store = await openSqliteStore({ home: process.env.LATCHKEY_HOME, env: process.env });

if (process.argv[2] === 'seed') {
  await seed(Number(process.argv[3] ?? 0));
  const { key } = await createAppKey(store, 'bench');
  await store.close();
  process.stdout.write(`${JSON.stringify({ key })}\n`);
} else {
  const serve = await startServe({
    store,
    upstreams: [{ id: 'demo', url: server }],
    listen: { host: '127.0.0.1', port: 0 },
    logger: createLogger({ level: 'silent' }),
  });
  process.stdout.write(`${JSON.stringify({ url: serve.url })}\n`);
  process.once('SIGTERM', async () => {
    await serve.close();
    await store.close();
    process.exit(0);
  });
}

async function seed(count) {
  const now = Date.now();
  for (let n = 0; n < count; n++) {
    const key = { server, issuer, subject: `user-${n}` };
    const record = {
      key,
      // An access token the size of a small JWT, an opaque refresh token.
      secrets: {
        accessToken: randomBytes(300).toString('base64url'),
        refreshToken: randomBytes(48).toString('base64url'),
      },
      tokenType: 'Bearer',
      scopes: ['mcp:tools'],
      clientId: 'bench-client',
      obtainedAt: now,
      expiresAt: now + 3_600_000 + (n % 3_600) * 1_000,
      expirySource: 'expires_in',
      owned: true,
    };
    const result = await store.writeCredential(
      record,
      { expectedGeneration: 0 },
      { type: 'acquired', ...key },
    );
    if (!result.ok) throw new Error(`seeding user-${n} was refused`);
  }
}
