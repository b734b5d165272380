// Fuzz: newline-delimited JSON-RPC framing in the proxy, both directions. From the host:
// any line is either relayed as a JSON-RPC message or dropped with a warning; nothing throws.
// To the host: every message from the server becomes exactly one line that parses back to it,
// so no string content (newlines, U+2028, lone surrogates) can split or forge a frame.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { silentLogger } from '../../src/log.js';
import type { McpConnection } from '../../src/mcp/connection.js';
import { asMessage, type JsonRpcMessage, parseMessages } from '../../src/mcp/jsonrpc.js';
import { runStdioRelay } from '../../src/proxy/stdio.js';
import {
  fuzzParameters,
  fuzzTimeoutMs,
  hostileJson,
  hostileString,
  mutatedObject,
  toJsonText,
} from './hostile.js';

const REQUEST = {
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text: 'hi' } },
};
const message = fc.oneof(
  mutatedObject(REQUEST),
  mutatedObject({ jsonrpc: '2.0', id: 'a', result: { content: [{ type: 'text', text: 'x' }] } }),
  mutatedObject({ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1 } }),
);
const line = fc.oneof(
  { weight: 3, arbitrary: message.map(toJsonText) },
  { weight: 1, arbitrary: fc.array(message, { maxLength: 3 }).map(toJsonText) },
  { weight: 1, arbitrary: hostileJson.map(toJsonText) },
  { weight: 1, arbitrary: hostileString.map((s) => s.replace(/[\r\n]/g, ' ')) },
);

/** A stand-in connection that records what the relay hands it. */
function recorder(): { connection: McpConnection; sent: JsonRpcMessage[] } {
  const sent: JsonRpcMessage[] = [];
  const connection = {
    onmessage: undefined,
    send: (m: JsonRpcMessage) => void sent.push(m),
    close: async () => undefined,
  } as unknown as McpConnection;
  return { connection, sent };
}

describe('fuzz: JSON-RPC framing in the proxy', () => {
  it(
    'host lines: JSON-RPC objects are relayed as sent, anything else is dropped, nothing throws',
    { timeout: fuzzTimeoutMs(3) },
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(line, { maxLength: 8 }),
          fc.constantFrom('\n', '\r\n'),
          async (lines, eol) => {
            const stdin = new PassThrough();
            const stdout = new PassThrough();
            const { connection, sent } = recorder();
            const relay = runStdioRelay({ connection, logger: silentLogger, stdin, stdout });
            stdin.end(lines.map((l) => l + eol).join(''));
            await relay;
            const expected = lines.flatMap((l) => {
              if (l.trim() === '') return [];
              try {
                const value: unknown = JSON.parse(l);
                const ok =
                  typeof value === 'object' &&
                  value !== null &&
                  !Array.isArray(value) &&
                  (value as { jsonrpc?: unknown }).jsonrpc === '2.0';
                return ok ? [value] : [];
              } catch {
                return [];
              }
            });
            assert.deepEqual(sent, expected);
            assert.equal(stdout.read(), null, 'nothing written to the host');
          },
        ),
        fuzzParameters(),
      );
    },
  );

  it(
    'server messages: each becomes exactly one line that parses back to it',
    { timeout: fuzzTimeoutMs(3) },
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(message.map(toJsonText), { minLength: 1, maxLength: 6 }), async (texts) => {
          // As the wire reads them: parsed from the server's bytes, shape-checked.
          const messages = texts.flatMap((t) => {
            try {
              return parseMessages(t);
            } catch {
              return [];
            }
          });
          const stdin = new PassThrough();
          const stdout = new PassThrough();
          const { connection } = recorder();
          const relay = runStdioRelay({ connection, logger: silentLogger, stdin, stdout });
          for (const m of messages) connection.onmessage?.(m);
          await new Promise((resolve) => setImmediate(resolve));
          stdin.end();
          await relay;
          const out = String(stdout.read() ?? '');
          const frames = out === '' ? [] : out.replace(/\n$/, '').split('\n');
          assert.equal(frames.length, messages.length);
          frames.forEach((frame, i) => {
            const back = asMessage(JSON.parse(frame));
            assert.deepEqual(back, JSON.parse(JSON.stringify(messages[i])));
          });
        }),
        fuzzParameters(),
      );
    },
  );
});
