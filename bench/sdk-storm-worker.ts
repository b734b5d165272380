// The peer in the storm benchmark: what an MCP SDK 1.x client process does when its access
// token has expired and several requests are in flight. The SDK has no single-flight, so every
// request that gets a 401 runs its own refresh with the same stored refresh token
// (spec.md §3.5). This worker runs `callers` of the SDK's own refreshAuthorization at once and
// reports how many succeeded. No token is printed.
import { refreshAuthorization } from '@modelcontextprotocol/sdk/client/auth.js';

const [issuer, clientId, resource, callers] = [
  process.env['LK_ISSUER'] ?? '',
  process.env['LK_CLIENT_ID'] ?? '',
  process.env['LK_SERVER'] ?? '',
  Number(process.env['LK_CALLERS'] ?? '25'),
];

// The refresh token arrives on stdin (the "go" line), never in argv or the environment.
process.stdin.once('data', (chunk: Buffer) => {
  const refreshToken = chunk.toString().trim();
  void (async () => {
    const startedAt = Date.now();
    const outcomes = await Promise.allSettled(
      Array.from({ length: callers }, async () => {
        await refreshAuthorization(issuer, {
          clientInformation: { client_id: clientId },
          refreshToken,
          resource,
        });
        return Date.now() - startedAt;
      }),
    );
    process.stdout.write(
      JSON.stringify({
        ok: outcomes.filter((o) => o.status === 'fulfilled').length,
        failed: outcomes.filter((o) => o.status === 'rejected').length,
        doneMs: outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : [])),
      }) + '\n',
    );
    process.exit(0);
  })();
});
process.stdout.write('ready\n');
