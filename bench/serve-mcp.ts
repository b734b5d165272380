// `npm run bench serve-mcp`: the MCP endpoint's tools/call overhead. The SDK Client calls the
// harness MCP server's `echo` two ways in the same run, interleaved so drift falls on both:
// through `latchkey serve` (/v1/subjects/{subject}/mcp/{upstream}, app key) and directly
// with the same user's token (taken from the token endpoint). Same AS, server and store.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { startMcpEnv } from '../test/serve/mcp-env.js';

type Figures = Record<string, unknown>;
export type Section = [title: string, figures: Figures];

export interface ServeMcpBenchOptions {
  /** Measured time per path, in ms, split into interleaved rounds. Default 4000. */
  ms?: number;
  /** Warm-up calls per path. Default 200. */
  warmup?: number;
}

interface Timing {
  calls: number;
  p50: number;
  p99: number;
}

export async function benchServeMcp(options: ServeMcpBenchOptions = {}): Promise<Section[]> {
  const ms = options.ms ?? 4000;
  const env = await startMcpEnv({ accessTokenTtl: 3600 });
  try {
    await env.connect('bench-user', 'bench-user-at-as');
    const gateway = await env.host('/v1/subjects/bench-user/mcp/demo', {
      authorization: `Bearer ${env.key}`,
    });
    const token = await fetch(`${env.serve.url}/v1/subjects/bench-user/connections/demo/token`, {
      headers: { authorization: `Bearer ${env.key}` },
    });
    const { access_token } = (await token.json()) as { access_token: string };
    const direct = new Client({ name: 'bench-direct', version: '1' });
    await direct.connect(
      new StreamableHTTPClientTransport(new URL(env.mcp.url), {
        requestInit: { headers: { authorization: `Bearer ${access_token}` } },
      }),
    );
    const [viaGateway, viaDirect] = await interleaved([gateway, direct], ms, options.warmup ?? 200);
    await direct.close();
    if (viaGateway === undefined || viaDirect === undefined) return [];
    return [
      [
        'MCP endpoint: tools/call (echo) through latchkey serve vs the SDK client direct, sequential',
        {
          'through the gateway': describe(viaGateway),
          direct: describe(viaDirect),
          'p50 overhead': `${(viaGateway.p50 - viaDirect.p50).toFixed(2)} ms`,
          'p50 ratio (gateway / direct)': (viaGateway.p50 / viaDirect.p50).toFixed(2),
        },
      ],
    ];
  } finally {
    await env.close();
  }
}

async function interleaved(clients: Client[], ms: number, warmup: number, rounds = 6): Promise<Timing[]> {
  const echo = (client: Client, text: string): Promise<unknown> =>
    client.callTool({ name: 'echo', arguments: { text } });
  for (const client of clients) for (let i = 0; i < warmup; i++) await echo(client, `w${i}`);
  const latencies = clients.map((): number[] => []);
  for (let round = 0; round < rounds; round++) {
    for (const [c, client] of clients.entries()) {
      const deadline = performance.now() + ms / rounds;
      for (let i = 0; performance.now() < deadline; i++) {
        const started = performance.now();
        await echo(client, `c${i}`);
        latencies[c]?.push(performance.now() - started);
      }
    }
  }
  return latencies.map((l) => {
    l.sort((a, b) => a - b);
    return { calls: l.length, p50: percentile(l, 0.5), p99: percentile(l, 0.99) };
  });
}

function describe(t: Timing): string {
  return `p50 ${t.p50.toFixed(2)} ms  p99 ${t.p99.toFixed(2)} ms  (${t.calls} calls)`;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}
