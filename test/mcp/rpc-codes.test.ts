import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ErrorCode } from '@modelcontextprotocol/sdk/types.js';

import { RpcErrorCode } from '../../src/mcp/jsonrpc.js';

describe('JSON-RPC error codes', () => {
  it('uses the SDK’s own codes for a closed connection and a timeout, so hosts treat them alike', () => {
    assert.equal(RpcErrorCode.CONNECTION_CLOSED, ErrorCode.ConnectionClosed);
    assert.equal(RpcErrorCode.REQUEST_TIMEOUT, ErrorCode.RequestTimeout);
  });
});
