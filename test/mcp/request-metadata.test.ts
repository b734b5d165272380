import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { JsonRpcRequest } from '../../src/mcp/jsonrpc.js';
import {
  encodeHeaderValue,
  modernRevision,
  PROTOCOL_VERSION_META,
  requestMetadataHeaders,
} from '../../src/mcp/request-metadata.js';
import { ToolHeaders } from '../../src/mcp/tool-headers.js';

const META = { [PROTOCOL_VERSION_META]: '2026-07-28' };

function call(method: string, params: Record<string, unknown>): JsonRpcRequest {
  return { jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: META } };
}

function toolsWith(...tools: unknown[]): ToolHeaders {
  const headers = new ToolHeaders();
  headers.learn({ tools }, true);
  return headers;
}

describe('2026-07-28 request metadata', () => {
  it('tells modern requests (a protocol version in _meta) from 2025-era ones', () => {
    assert.equal(modernRevision(call('tools/list', {})), '2026-07-28');
    assert.equal(modernRevision({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }), undefined);
    assert.equal(modernRevision({ jsonrpc: '2.0', id: 1, method: 'ping' }), undefined);
  });

  it('sets MCP-Protocol-Version and Mcp-Method on every request, Mcp-Name where the spec names one', () => {
    const none = new ToolHeaders();
    assert.deepEqual(requestMetadataHeaders(call('tools/list', {}), '2026-07-28', none), {
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/list',
    });
    assert.equal(requestMetadataHeaders(call('tools/call', { name: 'echo' }), 'v', none)['mcp-name'], 'echo');
    assert.equal(requestMetadataHeaders(call('prompts/get', { name: 'p' }), 'v', none)['mcp-name'], 'p');
    const uri = 'file:///projects/app/config.json';
    assert.equal(requestMetadataHeaders(call('resources/read', { uri }), 'v', none)['mcp-name'], uri);
  });

  it('encodes values as the spec’s examples do', () => {
    assert.equal(encodeHeaderValue('us-west1'), 'us-west1');
    assert.equal(encodeHeaderValue('Hello, 世界'), '=?base64?SGVsbG8sIOS4lueVjA==?=');
    assert.equal(encodeHeaderValue(' padded '), '=?base64?IHBhZGRlZCA=?=');
    assert.equal(encodeHeaderValue('line1\nline2'), '=?base64?bGluZTEKbGluZTI=?=');
    assert.equal(encodeHeaderValue('=?base64?literal?='), '=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=');
    assert.equal(encodeHeaderValue('us west 1'), 'us west 1');
    assert.equal(encodeHeaderValue('a\tb'), `=?base64?${Buffer.from('a\tb').toString('base64')}?=`);
    assert.equal(encodeHeaderValue(''), '=?base64??=', 'an empty value is still sent');
  });

  it('mirrors x-mcp-header parameters of tools/call, nested ones too, and omits absent and null values', () => {
    const tools = toolsWith({
      name: 'sql',
      inputSchema: {
        type: 'object',
        properties: {
          region: { type: 'string', 'x-mcp-header': 'Region' },
          shard: { type: 'integer', 'x-mcp-header': 'Shard' },
          dry: { type: 'boolean', 'x-mcp-header': 'Dry-Run' },
          target: { type: 'object', properties: { zone: { type: 'string', 'x-mcp-header': 'Zone' } } },
          query: { type: 'string' },
        },
      },
    });
    const headers = requestMetadataHeaders(
      call('tools/call', {
        name: 'sql',
        arguments: { region: 'Zürich', shard: 7, dry: false, target: { zone: 'b' }, query: 'x' },
      }),
      '2026-07-28',
      tools,
    );
    assert.equal(headers['mcp-param-region'], encodeHeaderValue('Zürich'));
    assert.equal(headers['mcp-param-shard'], '7');
    assert.equal(headers['mcp-param-dry-run'], 'false');
    assert.equal(headers['mcp-param-zone'], 'b');
    const sparse = requestMetadataHeaders(
      call('tools/call', { name: 'sql', arguments: { region: null, query: 'x' } }),
      '2026-07-28',
      tools,
    );
    assert.deepEqual(
      Object.keys(sparse).filter((h) => h.startsWith('mcp-param-')),
      [],
    );
  });
});

describe('x-mcp-header validation', () => {
  const valid = {
    name: 'ok',
    inputSchema: { type: 'object', properties: { a: { type: 'string', 'x-mcp-header': 'A' } } },
  };
  const cases: Array<[string, unknown, RegExp]> = [
    [
      'a number parameter',
      { a: { type: 'number', 'x-mcp-header': 'A' } },
      /not a string, integer or boolean/,
    ],
    ['an empty name', { a: { type: 'string', 'x-mcp-header': '' } }, /not an HTTP token/],
    ['a name with a space', { a: { type: 'string', 'x-mcp-header': 'A B' } }, /not an HTTP token/],
    ['a name with CR LF', { a: { type: 'string', 'x-mcp-header': 'A\r\nX' } }, /not an HTTP token/],
    [
      'a name used twice (case-insensitively)',
      { a: { type: 'string', 'x-mcp-header': 'Id' }, b: { type: 'string', 'x-mcp-header': 'ID' } },
      /used twice/,
    ],
    [
      'a parameter under items',
      { list: { type: 'array', items: { type: 'string', 'x-mcp-header': 'Item' } } },
      /not reachable through properties/,
    ],
    [
      'a parameter under oneOf',
      { a: { oneOf: [{ type: 'string', 'x-mcp-header': 'A' }] } },
      /not reachable through properties/,
    ],
  ];
  for (const [what, properties, reason] of cases) {
    it(`drops a tool with ${what}, keeps the others`, () => {
      const headers = new ToolHeaders();
      const bad = { name: 'bad', inputSchema: { type: 'object', properties } };
      const { result, rejected } = headers.learn({ tools: [valid, bad], nextCursor: 'c' }, true);
      assert.deepEqual(result, { tools: [valid], nextCursor: 'c' });
      assert.equal(rejected.length, 1);
      assert.equal(rejected[0]?.name, 'bad');
      assert.match(rejected[0]?.reason ?? '', reason);
    });
  }

  it('leaves a list without bad tools untouched, and a parameter may be called x-mcp-header', () => {
    const headers = new ToolHeaders();
    const odd = {
      name: 'odd',
      inputSchema: { type: 'object', properties: { 'x-mcp-header': { type: 'string' } } },
    };
    const page = { tools: [valid, odd] };
    assert.equal(headers.learn(page, true).result, page);
    assert.ok(headers.knows('odd'));
  });

  it('a first page forgets the tools of an older list', () => {
    const headers = new ToolHeaders();
    headers.learn({ tools: [valid] }, true);
    headers.learn({ tools: [{ name: 'other' }] }, true);
    assert.equal(headers.knows('ok'), false);
    headers.learn({ tools: [valid] }, false);
    assert.ok(headers.knows('other') && headers.knows('ok'));
  });
});
