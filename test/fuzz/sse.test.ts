// Fuzz: Server-Sent Events framing from an MCP server, alone (readSse) and as the proxy meets
// it (McpConnection answering a host request from a hostile event stream).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { CredentialManager } from '../../src/lifecycle/manager.js';
import { silentLogger } from '../../src/log.js';
import { McpConnection } from '../../src/mcp/connection.js';
import type { JsonRpcMessage, JsonRpcResponse } from '../../src/mcp/jsonrpc.js';
import { isLatchkeyError } from '../../src/errors.js';
import { readSse, SseGarbageError, type SseEvent } from '../../src/mcp/sse.js';
import { LegacySseWire } from '../../src/mcp/legacy-sse.js';
import { StreamableHttpWire } from '../../src/mcp/streamable-http.js';
import { StreamBrokenError } from '../../src/mcp/wire-errors.js';
import { createMemoryStore } from '../../src/store/memory.js';
import {
  fuzzParameters,
  fuzzRuns,
  fuzzTimeoutMs,
  hostileJson,
  hostileString,
  mutatedObject,
  toJsonText,
} from './hostile.js';

const encoder = new TextEncoder();

/** One SSE line: a field the MCP transport uses, an unknown one, a comment or raw text. */
function sseLine(data: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: data.map((d) => `data: ${d}`) },
    { weight: 1, arbitrary: hostileString.map((s) => `data:${s}`) },
    { weight: 1, arbitrary: fc.oneof(fc.constant('message'), hostileString).map((s) => `event: ${s}`) },
    { weight: 1, arbitrary: hostileString.map((s) => `id: ${s}`) },
    {
      weight: 1,
      arbitrary: fc
        .oneof(fc.constantFrom('1000', '-1', '1e400', 'x', '99999999999999999999'))
        .map((s) => `retry: ${s}`),
    },
    { weight: 1, arbitrary: hostileString.map((s) => `: ${s}`) },
    { weight: 1, arbitrary: hostileString },
    { weight: 2, arbitrary: fc.constant('') },
  );
}
const EOL = fc.constantFrom('\n', '\r\n', '\r');

/** A stream: lines joined by any line ending, with the bytes cut into random chunks. */
function sseStream(data: fc.Arbitrary<string>): fc.Arbitrary<{ text: string; cuts: number[] }> {
  return fc
    .array(fc.tuple(sseLine(data), EOL), { maxLength: 16 })
    .map((lines) => lines.map(([line, eol]) => line + eol).join(''))
    .chain((text) =>
      fc.record({
        text: fc.constant(text),
        cuts: fc.uniqueArray(fc.nat({ max: Math.max(0, encoder.encode(text).length) }), { maxLength: 6 }),
      }),
    );
}

function body(text: string, cuts: readonly number[]): ReadableStream<Uint8Array> {
  const bytes = encoder.encode(text);
  const points = [...new Set([0, ...cuts, bytes.length])].sort((a, b) => a - b);
  const chunks = points.slice(1).map((end, i) => bytes.subarray(points[i], end));
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

async function events(stream: ReadableStream<Uint8Array>): Promise<SseEvent[] | 'garbage'> {
  const seen: SseEvent[] = [];
  try {
    await readSse(stream, { onEvent: (e) => seen.push(e) });
    return seen;
  } catch (error) {
    assert.ok(error instanceof SseGarbageError, `not an SseGarbageError: ${String(error)}`);
    assert.ok(isLatchkeyError(error), 'a typed LatchkeyError');
    return 'garbage';
  }
}

const REQUEST = { jsonrpc: '2.0' as const, id: 7, method: 'tools/list', params: {} };
const RESULT = { jsonrpc: '2.0', id: 7, result: { tools: [] } };
/** Event data: the awaited answer (often mangled), other JSON, or not JSON at all. */
const eventData = fc.oneof(
  { weight: 3, arbitrary: mutatedObject(RESULT).map(toJsonText) },
  { weight: 1, arbitrary: fc.array(mutatedObject(RESULT), { maxLength: 3 }).map(toJsonText) },
  {
    weight: 1,
    arbitrary: mutatedObject({
      jsonrpc: '2.0',
      method: 'notifications/message',
      params: { level: 'info' },
    }).map(toJsonText),
  },
  { weight: 1, arbitrary: hostileJson.map(toJsonText) },
  { weight: 1, arbitrary: hostileString },
);

describe('fuzz: SSE framing', () => {
  it(
    'readSse fails only as garbage, and chunk boundaries never change the events',
    { timeout: fuzzTimeoutMs(2) },
    async () => {
      await fc.assert(
        fc.asyncProperty(sseStream(fc.oneof(eventData, hostileString)), async ({ text, cuts }) => {
          const whole = await events(body(text, []));
          const split = await events(body(text, cuts));
          assert.deepEqual(split, whole);
          if (whole !== 'garbage') for (const e of whole) assert.equal(typeof e.data, 'string');
        }),
        fuzzParameters(),
      );
    },
  );

  it(
    'the Streamable HTTP wire fails only with its typed wire errors and delivers only JSON-RPC',
    { timeout: fuzzTimeoutMs(3) },
    async () => {
      let answered = 0;
      await fc.assert(
        fc.asyncProperty(sseStream(eventData), async ({ text, cuts }) => {
          const wire = new StreamableHttpWire({ url: new URL(SERVER), fetch: serving(text, cuts) });
          const delivered: JsonRpcMessage[] = [];
          try {
            await wire.post(REQUEST, (m) => delivered.push(m), AbortSignal.timeout(5000));
            answered++;
          } catch (error) {
            // McpConnection turns exactly these into JSON-RPC errors for the host (or a retry).
            assert.ok(error instanceof StreamBrokenError, `not a wire error: ${String(error)}`);
          }
          for (const m of delivered) {
            assert.equal(typeof m, 'object');
            assert.equal(m.jsonrpc, '2.0');
          }
        }),
        fuzzParameters(),
      );
      assert.ok(answered > 0, 'some streams carried the answer');
    },
  );

  // Each stream that lacks the answer costs the request timeout here (the connection retries
  // until then), so this end-to-end property runs a hundredth of the cases.
  it(
    'the proxy answers a host request exactly once from any event stream, never throwing',
    { timeout: fuzzTimeoutMs(5) },
    async () => {
      const store = createMemoryStore();
      const manager = new CredentialManager({
        store,
        logger: silentLogger,
        watch: false,
        proactiveRefresh: false,
      });
      try {
        await fc.assert(
          fc.asyncProperty(sseStream(eventData), async ({ text, cuts }) => {
            const connection = new McpConnection({
              server: SERVER,
              manager,
              authenticate: false,
              transport: 'streamable-http',
              protocol: 'legacy',
              fetch: serving(text, cuts),
              logger: silentLogger,
              requestTimeoutMs: 300,
              connectTimeoutMs: 300,
            });
            const toHost: JsonRpcMessage[] = [];
            const answered = new Promise<JsonRpcResponse>((resolve) => {
              connection.onmessage = (message) => {
                toHost.push(message);
                if (isAnswer(message)) resolve(message);
              };
            });
            try {
              connection.send(REQUEST);
              const answer = await answered;
              // What reaches the host is JSON-RPC: a result or a well-formed error.
              if (answer.error !== undefined) {
                assert.equal(typeof answer.error.code, 'number');
                assert.equal(typeof answer.error.message, 'string');
              } else assert.ok('result' in answer);
              for (const m of toHost) assert.equal(m.jsonrpc, '2.0');
              await new Promise((resolve) => setImmediate(resolve));
              assert.equal(toHost.filter(isAnswer).length, 1, 'exactly one answer');
            } finally {
              await connection.close();
            }
          }),
          { ...fuzzParameters(), numRuns: Math.max(20, Math.floor(fuzzRuns() / 100)) },
        );
      } finally {
        manager.close();
        await store.close();
      }
    },
  );
});

const SERVER = 'https://mcp.example.com/mcp';

/** `event: endpoint` data of the 2024-11-05 transport: paths, other origins, not URLs at all. */
const endpointData = fc.oneof(
  fc.constantFrom(
    '/messages?sessionId=1',
    'https://mcp.example.com/m',
    'https://evil.example/m',
    '//evil.example/m',
    'http://[',
    'https://:0',
    ' ',
  ),
  hostileString,
);

describe('fuzz: SSE framing of the 2024-11-05 transport', () => {
  it(
    'the legacy wire fails only with its typed wire errors; an unusable endpoint is garbage',
    { timeout: fuzzTimeoutMs(3) },
    async () => {
      let opened = 0;
      await fc.assert(
        fc.asyncProperty(endpointData, sseStream(eventData), async (endpoint, { text, cuts }) => {
          const stream = `event: endpoint\ndata: ${endpoint.replace(/[\r\n]/g, '')}\n\n${text}`;
          const fetch = (async () =>
            new Response(
              body(
                stream,
                cuts.map((c) => c + stream.length - text.length),
              ),
              {
                status: 200,
                headers: { 'content-type': 'text/event-stream' },
              },
            )) as typeof globalThis.fetch;
          const wire = new LegacySseWire({ url: new URL(SERVER), fetch });
          try {
            const { closed } = await wire.open(() => undefined, 2000);
            opened++;
            await closed.then(
              () => assert.fail('a stream that ends is reported as broken'),
              (error: unknown) => assert.ok(error instanceof StreamBrokenError, String(error)),
            );
          } catch (error) {
            assert.ok(error instanceof StreamBrokenError, `not a wire error: ${String(error)}`);
            // The stream was well formed up to the endpoint: a refusal there is the server's data.
            const cause = (error as { cause?: unknown }).cause;
            if (cause !== undefined && !(cause instanceof SseGarbageError))
              assert.fail(`cause ${String(cause)}`);
          } finally {
            wire.close();
          }
        }),
        fuzzParameters(),
      );
      assert.ok(opened > 0, 'some endpoints were usable');
    },
  );
});

function isAnswer(message: JsonRpcMessage): message is JsonRpcResponse {
  return 'id' in message && message.id === REQUEST.id && !('method' in message);
}

/** A server that answers every POST of a request with the stream (notifications with 202). */
function serving(text: string, cuts: readonly number[]): typeof fetch {
  return (async (_input: string | URL | Request, init?: RequestInit) => {
    if (init?.method !== 'POST') return new Response(null, { status: 405 });
    const sent = JSON.parse(String(init.body)) as { id?: unknown };
    if (sent.id === undefined) return new Response(null, { status: 202 });
    return new Response(body(text, cuts), { status: 200, headers: { 'content-type': 'text/event-stream' } });
  }) as typeof fetch;
}
