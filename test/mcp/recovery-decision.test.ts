/**
 * The recovery policy of McpConnection as a table: one row per (failure, state), the
 * decision it must give. Each branch of decideRecovery has a row, and each guard a row on
 * either side of it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { loginRequired } from '../../src/errors.js';
import {
  classifyFailure,
  type Decision,
  decideRecovery,
  type Failure,
  GARBAGE,
  type RecoveryState,
  retryDelayMs,
  SESSION_EXPIRED,
  waitMs,
} from '../../src/mcp/recovery.js';
import { MessageTooLargeError } from '../../src/mcp/sse.js';
import { HttpStatusError, StreamBrokenError } from '../../src/mcp/wire-errors.js';

/** A host's 2025-era tools/call on its first failure, nothing special about the connection. */
const BASE: RecoveryState = {
  round: 0,
  method: 'tools/call',
  modern: false,
  internal: false,
  loggedOut: false,
  canLogin: true,
  mayBridge: true,
  repeatable: false,
  relearned: false,
  sessionLost: false,
  aborted: false,
};

const MISMATCH = { code: -32020, message: 'header mismatch' };
const OTHER_RPC = { code: -32602, message: 'invalid params' };
const status = (code: number, extra: Partial<Extract<Failure, { kind: 'http-status' }>> = {}): Failure => ({
  kind: 'http-status',
  status: code,
  sessionExpired: false,
  ...extra,
});
const broken = (garbage: boolean, retryMs?: number): Failure => ({ kind: 'stream-broken', garbage, retryMs });

const FAIL: Decision = { action: 'fail', answer: 'failure' };
const BACKOFF: Decision = { action: 'retry', wait: 'backoff' };
const LOST: Decision = { action: 'fail', answer: 'lost-in-flight' };

type Row = [name: string, failure: Failure, state: Partial<RecoveryState>, expected: Decision];

const ROWS: Row[] = [
  // An answer over the size limit would only come again.
  [
    'too large',
    { kind: 'message-too-large', limit: 1 },
    { repeatable: true },
    { action: 'fail', answer: 'message-too-large' },
  ],
  // Login required: the host's request may start a login, within two rounds.
  ['login: host request', { kind: 'login-required' }, {}, { action: 'login' }],
  ['login: second round still may', { kind: 'login-required' }, { round: 1 }, { action: 'login' }],
  ['login: not after two rounds', { kind: 'login-required' }, { round: 2 }, FAIL],
  ['login: not after a logout', { kind: 'login-required' }, { loggedOut: true }, FAIL],
  ['login: no authorizer', { kind: 'login-required' }, { canLogin: false }, FAIL],
  ['login: never for latchkey’s own request', { kind: 'login-required' }, { internal: true }, FAIL],
  // A 2025-era initialize refused as a 2026-only server refuses it.
  [
    'bridge: initialize refused with HeaderMismatch',
    status(400, { rpc: MISMATCH }),
    { method: 'initialize' },
    { action: 'bridge' },
  ],
  [
    'bridge: not with protocol legacy',
    status(400, { rpc: MISMATCH }),
    { method: 'initialize', mayBridge: false },
    FAIL,
  ],
  [
    'bridge: not for a modern initialize',
    status(400, { rpc: MISMATCH }),
    { method: 'initialize', modern: true },
    { action: 'fail', answer: 'refusal' },
  ],
  ['bridge: not for a 400 without a JSON-RPC error', status(400), { method: 'initialize' }, FAIL],
  ['bridge: not for another method', status(400, { rpc: MISMATCH }), {}, FAIL],
  // 2026-07-28 refusals in words.
  [
    'modern: HeaderMismatch on tools/call relearns tools',
    status(400, { rpc: MISMATCH }),
    { modern: true },
    { action: 'retry', wait: 'now', relearnTools: true },
  ],
  [
    'modern: HeaderMismatch relearns once',
    status(400, { rpc: MISMATCH }),
    { modern: true, relearned: true },
    { action: 'fail', answer: 'refusal' },
  ],
  [
    'modern: HeaderMismatch on another method',
    status(400, { rpc: MISMATCH }),
    { modern: true, method: 'tools/list' },
    { action: 'fail', answer: 'refusal' },
  ],
  [
    'modern: another refusal is the host’s',
    status(404, { rpc: OTHER_RPC }),
    { modern: true },
    { action: 'fail', answer: 'refusal' },
  ],
  [
    'modern: 429 with an error body is waited out',
    status(429, { rpc: OTHER_RPC, retryAfterMs: 700 }),
    { modern: true },
    { action: 'retry', wait: { ms: 700 } },
  ],
  // Sessions.
  [
    'session expired: re-handshake',
    status(404, { sessionExpired: true }),
    {},
    { action: 're-handshake', reason: SESSION_EXPIRED },
  ],
  [
    'session expired on initialize: forget it and resend',
    status(404, { sessionExpired: true }),
    { method: 'initialize' },
    { action: 'retry', wait: 'now', dropSession: true },
  ],
  [
    '400 after our session was dropped: re-handshake',
    status(400),
    { sessionLost: true },
    { action: 're-handshake', reason: 'no session' },
  ],
  ['400 with a session: the host’s to see', status(400), {}, FAIL],
  // Busy servers.
  ['429 with Retry-After', status(429, { retryAfterMs: 2000 }), {}, { action: 'retry', wait: { ms: 2000 } }],
  ['503 without Retry-After', status(503), {}, BACKOFF],
  ['500, safe to run twice', status(500), { repeatable: true }, BACKOFF],
  ['500, not safe to run twice', status(500), {}, FAIL],
  ['404 without a session', status(404), { repeatable: true }, FAIL],
  ['401 (the auth fetch already tried)', status(401), { repeatable: true }, FAIL],
  // Broken response streams.
  ['modern stream broke: re-issue', broken(false), { modern: true }, BACKOFF],
  [
    'modern stream broke: the server’s retry hint',
    broken(false, 1500),
    { modern: true },
    { action: 'retry', wait: { ms: 1500 } },
  ],
  [
    'modern stream broke: the hint is capped',
    broken(false, 90_000),
    { modern: true },
    { action: 'retry', wait: { ms: 30_000 } },
  ],
  ['stream broke, not safe to resend', broken(false), {}, LOST],
  [
    'stream garbage, not safe to resend: new session too',
    broken(true),
    {},
    { ...LOST, renewSession: GARBAGE },
  ],
  ['stream broke, safe to resend', broken(false), { repeatable: true }, BACKOFF],
  [
    'stream garbage, safe to resend: new session',
    broken(true, 200),
    { repeatable: true },
    { action: 'retry', wait: { ms: 200 }, renewSession: GARBAGE },
  ],
  // The network.
  ['connection refused: nothing was sent', { kind: 'connect-refused' }, {}, BACKOFF],
  ['fetch failed, safe to resend', { kind: 'network' }, { repeatable: true }, BACKOFF],
  ['fetch failed, modern: re-issue', { kind: 'network' }, { modern: true }, BACKOFF],
  ['fetch failed, not safe to resend', { kind: 'network' }, {}, LOST],
  ['fetch failed, request cancelled', { kind: 'network' }, { repeatable: true, aborted: true }, FAIL],
  ['anything else', { kind: 'other' }, { repeatable: true, modern: true }, FAIL],
];

describe('decideRecovery', () => {
  for (const [name, failure, state, expected] of ROWS) {
    it(name, () => {
      assert.deepEqual(decideRecovery(failure, { ...BASE, ...state }), expected);
    });
  }

  it('every failure kind has a row', () => {
    const kinds = new Set(ROWS.map(([, failure]) => failure.kind));
    const all: Failure['kind'][] = [
      'message-too-large',
      'login-required',
      'http-status',
      'stream-broken',
      'connect-refused',
      'network',
      'other',
    ];
    assert.deepEqual([...kinds].sort(), [...all].sort());
  });
});

describe('classifyFailure', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  const rows: [string, unknown, Failure][] = [
    ['an oversized message', new MessageTooLargeError(10), { kind: 'message-too-large', limit: 10 }],
    ['LOGIN_REQUIRED', loginRequired('https://mcp.example.com', 'no credential'), { kind: 'login-required' }],
    [
      'an HTTP status',
      new HttpStatusError(429, false, 1000, 'slow down', MISMATCH),
      { kind: 'http-status', status: 429, sessionExpired: false, retryAfterMs: 1000, rpc: MISMATCH },
    ],
    [
      'a broken stream',
      new StreamBrokenError('broke', 'e1', 300, true),
      { kind: 'stream-broken', garbage: true, retryMs: 300 },
    ],
    ['a refused connection', new TypeError('fetch failed', { cause: refused }), { kind: 'connect-refused' }],
    ['a failed fetch', new TypeError('fetch failed'), { kind: 'network' }],
    ['anything else', new Error('?'), { kind: 'other' }],
  ];
  for (const [name, error, expected] of rows) {
    it(name, () => assert.deepEqual(classifyFailure(error), expected));
  }
});

describe('retry delays', () => {
  it('start at 50–100 ms, double, and stop growing at 2.5–5 s', () => {
    for (let i = 0; i < 50; i++) {
      const first = retryDelayMs(0);
      assert.ok(first >= 50 && first <= 100, `first ${first}`);
      const third = retryDelayMs(2);
      assert.ok(third >= 200 && third <= 400, `third ${third}`);
      const late = retryDelayMs(20);
      assert.ok(late >= 2500 && late <= 5000, `late ${late}`);
    }
  });

  it('follow the server’s hint, up to 30 s', () => {
    assert.equal(retryDelayMs(0, 1234), 1234);
    assert.equal(retryDelayMs(5, 120_000), 30_000);
  });

  it('turn a decision’s wait into milliseconds', () => {
    assert.equal(waitMs('now', 3), 0);
    assert.equal(waitMs({ ms: 700 }, 3), 700);
    const backoff = waitMs('backoff', 1);
    assert.ok(backoff >= 100 && backoff <= 200, `backoff ${backoff}`);
  });
});
