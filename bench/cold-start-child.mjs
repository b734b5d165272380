// Spawned by cold-start.ts: import the built package, get one token, report timings.
// Only the time is printed; the token itself never leaves the process.
import { CredentialManager, openSqliteStore, silentLogger } from '../dist/index.js';

const store = await openSqliteStore();
const manager = new CredentialManager({ store, logger: silentLogger, watch: false, proactiveRefresh: false });
const token = await manager.getAccessToken(process.argv[2]);
const insideMs = performance.now();
if (token.length === 0) process.exit(1);
process.stdout.write(JSON.stringify({ insideMs }) + '\n');
manager.close();
await store.close();
