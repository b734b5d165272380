// Time from the start of a login to the stored credential, per flow, with the harness's
// headless driver as the user, and the HTTP round trips latchkey itself made (counted by
// origin: the MCP server for resource metadata, the AS for everything else). The user's own
// page loads (login and consent forms) are not latchkey's and are not counted.
import { CredentialManager } from '../src/lifecycle/manager.js';
import { silentLogger } from '../src/log.js';
import { createLoginHook, type LoginOptions } from '../src/login/login.js';
import { createMemoryStore } from '../src/store/memory.js';
import {
  approveDevice,
  completeAuthorization,
  startAuthorizationServer,
  startMcpServer,
} from '../test/harness/index.js';

export async function benchLogin(runs = 5): Promise<Record<string, Record<string, number | string>>> {
  const as = await startAuthorizationServer({ accessTokenTtl: 300 });
  const mcp = await startMcpServer({ authorizationServer: as });
  const out: Record<string, Record<string, number | string>> = {};
  try {
    const flows: [string, (store: ReturnType<typeof createMemoryStore>) => Partial<LoginOptions>][] = [
      [
        'browser (code + PKCE, DCR)',
        () => ({
          flow: 'browser',
          openBrowser: async (url) =>
            void (await fetch(await completeAuthorization(url, { subject: 'bench' }))),
        }),
      ],
      [
        'device (RFC 8628, DCR)',
        () => ({
          flow: 'device',
          notify: (text) => {
            const code = /enter the code:\s+(\S+)/.exec(text)?.[1];
            const uri = /^\s+(http\S+)$/m.exec(text)?.[1];
            if (code !== undefined && uri !== undefined) void approveDevice(uri, code, { subject: 'bench' });
          },
        }),
      ],
      [
        'client credentials',
        () => ({
          flow: 'client-credentials',
          client: { clientId: as.serviceClient.clientId, clientSecret: as.serviceClient.clientSecret },
        }),
      ],
    ];
    for (const [name, configure] of flows) {
      const times: number[] = [];
      let asTrips = 0;
      let resourceTrips = 0;
      for (let i = 0; i < runs; i++) {
        const store = createMemoryStore();
        const counting: typeof fetch = (input, init) => {
          const url = new URL(input instanceof Request ? input.url : String(input));
          if (url.origin === new URL(mcp.url).origin) resourceTrips++;
          else asTrips++;
          return fetch(input, init);
        };
        const manager = new CredentialManager({
          store,
          logger: silentLogger,
          fetch: counting,
          acquire: createLoginHook({ store, fetch: counting, notify: () => undefined, ...configure(store) }),
        });
        const started = performance.now();
        await manager.getAccessToken(mcp.url);
        times.push(performance.now() - started);
        manager.close();
      }
      times.sort((a, b) => a - b);
      out[name] = {
        medianMs: Math.round(times[Math.floor(times.length / 2)] ?? NaN),
        asRoundTrips: asTrips / runs,
        resourceMetadataRoundTrips: resourceTrips / runs,
      };
    }
    return out;
  } finally {
    await mcp.close();
    await as.close();
  }
}
