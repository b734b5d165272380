import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  effectiveSkewMs,
  isUsable,
  mandatoryRefreshAt,
  proactiveRefreshAt,
  refreshTokenUsable,
} from '../../src/credential/expiry.js';
import { canonicalServer, keyId } from '../../src/credential/key.js';
import { jwtAccount, jwtExpiry } from '../../src/credential/jwt.js';
import type { CredentialRecord } from '../../src/credential/model.js';
import { credentialFromTokenResponse } from '../../src/credential/token-response.js';
import { isLatchkeyError } from '../../src/errors.js';

const key = { server: 'https://mcp.example.com/mcp', issuer: 'https://as.example.com', subject: 'local' };

function jwt(payload: Record<string, unknown>): string {
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${enc({ alg: 'RS256' })}.${enc(payload)}.c2lnbmF0dXJl`;
}

describe('token response → credential', () => {
  it('computes expiry from the time the request was sent, not received', () => {
    const cred = credentialFromTokenResponse(
      { access_token: 'at-1', token_type: 'bearer', expires_in: 3600, refresh_token: 'rt-1', scope: 'a b' },
      { key, clientId: 'c', requestedAt: 1_000_000 },
    );
    assert.equal(cred.expiresAt, 1_000_000 + 3_600_000);
    assert.equal(cred.obtainedAt, 1_000_000);
    assert.equal(cred.expirySource, 'expires_in');
    assert.equal(cred.tokenType, 'Bearer');
    assert.deepEqual(cred.scopes, ['a', 'b']);
    assert.equal(cred.secrets.refreshToken, 'rt-1');
  });

  it('falls back to the JWT exp claim when expires_in is missing', () => {
    const exp = 2_000_000_000;
    const cred = credentialFromTokenResponse(
      { access_token: jwt({ exp }) },
      { key, clientId: 'c', requestedAt: 5 },
    );
    assert.equal(cred.expiresAt, exp * 1000);
    assert.equal(cred.expirySource, 'jwt');
  });

  it('treats an opaque token without expires_in as valid until rejected', () => {
    const cred = credentialFromTokenResponse(
      { access_token: 'opaque' },
      { key, clientId: 'c', requestedAt: 5 },
    );
    assert.equal(cred.expiresAt, undefined);
    assert.equal(cred.expirySource, 'none');
    assert.equal(isUsable(cred, Date.now() + 10 * 365 * 86_400_000), true);
    assert.equal(mandatoryRefreshAt(cred), Number.POSITIVE_INFINITY);
  });

  it('keeps the old refresh token (and its expiry) when the AS does not rotate', () => {
    const previous = credentialFromTokenResponse(
      {
        access_token: 'at-1',
        expires_in: 60,
        refresh_token: 'rt-1',
        refresh_token_expires_in: 86_400,
        id_token: 'idt',
      },
      { key, clientId: 'c', requestedAt: 1000 },
    );
    assert.equal(previous.refreshTokenExpiresAt, 1000 + 86_400_000);
    const next = credentialFromTokenResponse(
      { access_token: 'at-2', expires_in: 60 },
      {
        key,
        clientId: 'c',
        requestedAt: 50_000,
        previous,
      },
    );
    assert.equal(next.secrets.refreshToken, 'rt-1');
    assert.equal(next.refreshTokenExpiresAt, previous.refreshTokenExpiresAt);
    assert.equal(next.secrets.idToken, 'idt');
    assert.deepEqual(next.scopes, previous.scopes);
  });

  it('takes a rotated refresh token and never the old one', () => {
    const previous = credentialFromTokenResponse(
      { access_token: 'at-1', refresh_token: 'rt-1', refresh_token_expires_in: 100 },
      { key, clientId: 'c', requestedAt: 0 },
    );
    const next = credentialFromTokenResponse(
      { access_token: 'at-2', refresh_token: 'rt-2' },
      { key, clientId: 'c', requestedAt: 10, previous },
    );
    assert.equal(next.secrets.refreshToken, 'rt-2');
    assert.equal(
      next.refreshTokenExpiresAt,
      undefined,
      'a new refresh token does not inherit the old expiry',
    );
  });

  it('uses the requested scopes when the response omits scope (RFC 6749 5.1)', () => {
    const cred = credentialFromTokenResponse(
      { access_token: 'x' },
      { key, clientId: 'c', requestedAt: 0, requestedScopes: ['mcp:tools'] },
    );
    assert.deepEqual(cred.scopes, ['mcp:tools']);
  });
});

describe('expiry and skew', () => {
  const hour: Pick<CredentialRecord, 'obtainedAt' | 'expiresAt'> = { obtainedAt: 0, expiresAt: 3_600_000 };
  const short: Pick<CredentialRecord, 'obtainedAt' | 'expiresAt'> = { obtainedAt: 0, expiresAt: 3_000 };

  it('uses a 60 s margin for long-lived tokens', () => {
    assert.equal(effectiveSkewMs(hour), 60_000);
    assert.equal(isUsable(hour, 3_600_000 - 60_001), true);
    assert.equal(isUsable(hour, 3_600_000 - 60_000), false);
  });

  it('clamps the margin to a tenth of a short lifetime, but not below the second of expires_in', () => {
    assert.equal(effectiveSkewMs(short), 1_000);
    assert.equal(isUsable(short, 1_999), true);
    assert.equal(isUsable(short, 2_000), false);
    assert.equal(effectiveSkewMs({ obtainedAt: 0, expiresAt: 20_000 }), 2_000);
    assert.equal(effectiveSkewMs({ obtainedAt: 0, expiresAt: 1_000 }), 500, 'half of a sub-2-s lifetime');
  });

  it('schedules proactive refresh at 3/4 of the usable lifetime, jittered, before the mandatory point', () => {
    // Usable: 3,540,000 ms (an hour minus the 60 s margin).
    assert.equal(proactiveRefreshAt(hour, 60_000, 0), 2_655_000);
    assert.equal(proactiveRefreshAt(hour, 60_000, 1), 2_832_000);
    assert.equal(proactiveRefreshAt(hour, 60_000, -1), 2_478_000);
    // 3-s token: usable 2 s, refreshed at 1.5 s, half a second before callers would wait.
    assert.equal(proactiveRefreshAt(short, 60_000, 0), 1_500);
    for (const jitter of [-1, 0, 1])
      assert.ok(proactiveRefreshAt(short, 60_000, jitter) <= mandatoryRefreshAt(short));
  });

  it('distrusts a credential obtained in the future (clock turned back)', () => {
    assert.equal(isUsable({ obtainedAt: 10 * 60_000, expiresAt: 100 * 60_000 }, 0), false);
  });

  it('tracks refresh-token expiry', () => {
    assert.equal(refreshTokenUsable({ refreshTokenExpiresAt: 100 }, 99), true);
    assert.equal(refreshTokenUsable({ refreshTokenExpiresAt: 100 }, 100), false);
    assert.equal(refreshTokenUsable({}, Number.MAX_SAFE_INTEGER), true);
  });
});

describe('jwt exp', () => {
  it('ignores malformed tokens and non-numeric exp', () => {
    assert.equal(jwtExpiry('not.a.jwt'), undefined);
    assert.equal(jwtExpiry(jwt({ exp: 'soon' })), undefined);
    assert.equal(jwtExpiry('abc'), undefined);
    assert.equal(jwtExpiry(jwt({ exp: 10 })), 10_000);
  });
});

describe('server canonicalization', () => {
  it('lowercases scheme and host, drops fragment, userinfo and default port', () => {
    assert.equal(
      canonicalServer('HTTPS://User:pw@MCP.Example.COM:443/MCP#frag'),
      'https://mcp.example.com/MCP',
    );
    assert.equal(canonicalServer('https://mcp.example.com'), 'https://mcp.example.com');
    assert.equal(canonicalServer('http://127.0.0.1:8080/mcp?x=1'), 'http://127.0.0.1:8080/mcp?x=1');
  });

  it('rejects non-http URLs with a typed error', () => {
    for (const bad of ['ftp://x', 'not a url', 'file:///etc/passwd']) {
      assert.throws(
        () => canonicalServer(bad),
        (e: unknown) => isLatchkeyError(e) && e.code === 'INVALID_INPUT',
      );
    }
  });

  it('gives distinct key ids for distinct keys', () => {
    assert.notEqual(keyId(key), keyId({ ...key, subject: 'other' }));
  });
});

describe('account from the tokens', () => {
  const key = { server: 'https://mcp.example.com/mcp', issuer: 'https://as.example.com', subject: 'local' };

  it('prefers the ID token, and the most readable claim in it', () => {
    assert.equal(
      jwtAccount(jwt({ sub: 'u1', email: 'ann@example.com' }), jwt({ sub: 'x' })),
      'ann@example.com',
    );
    assert.equal(jwtAccount(jwt({ sub: 'u1', preferred_username: 'ann' })), 'ann');
    assert.equal(jwtAccount(undefined, jwt({ upn: 'ann@corp', sub: 'u1' })), 'ann@corp');
    assert.equal(jwtAccount('opaque-token', undefined), undefined);
  });

  it('refuses control characters (it lands in a terminal) and absurd lengths', () => {
    assert.equal(jwtAccount(jwt({ email: 'a\u001b[2Jb', sub: 'u1' })), 'u1');
    assert.equal(jwtAccount(jwt({ email: 'x'.repeat(500) })), undefined);
    assert.equal(jwtAccount(jwt({ email: 'a\u009b2Jb', sub: 'u1' })), 'u1', 'C1 CSI');
    assert.equal(jwtAccount(jwt({ email: 'evil\u202egro.elpmaxe', sub: 'u1' })), 'u1', 'bidi override');
  });

  it("names the user from an ID token's name, or an access token's username", () => {
    assert.equal(jwtAccount(jwt({ sub: 'u1', name: 'Ann Smith' })), 'Ann Smith');
    assert.equal(jwtAccount(undefined, jwt({ sub: 'u1', username: 'ann' })), 'ann');
    assert.equal(jwtAccount(undefined, jwt({ sub: 'u1' })), 'u1');
  });

  it('is kept in the credential, and survives a refresh that brings no ID token', () => {
    const first = credentialFromTokenResponse(
      { access_token: 'opaque', id_token: jwt({ sub: 'u1', email: 'ann@example.com' }) },
      { key, clientId: 'c', requestedAt: 0 },
    );
    assert.equal(first.account, 'ann@example.com');
    const stored = {
      ...first,
      generation: 1,
      status: { state: 'valid' as const, failures: 0 },
      updatedAt: 0,
    };
    const refreshed = credentialFromTokenResponse(
      { access_token: 'opaque-2' },
      { key, clientId: 'c', requestedAt: 1, previous: stored },
    );
    assert.equal(refreshed.account, 'ann@example.com');
    assert.equal(
      credentialFromTokenResponse({ access_token: 'opaque' }, { key, clientId: 'c', requestedAt: 0 }).account,
      undefined,
    );
  });
});

describe('resource indicator kept with the credential', () => {
  const key = { server: 'https://mcp.example.com/mcp', issuer: 'https://as.example.com', subject: 'local' };
  const stored = (record: ReturnType<typeof credentialFromTokenResponse>) => ({
    ...record,
    generation: 1,
    status: { state: 'valid' as const, failures: 0 },
    updatedAt: 0,
  });

  it('records what the login sent, including "none", and a refresh keeps it', () => {
    for (const resource of ['https://api.example.com', null]) {
      const login = credentialFromTokenResponse(
        { access_token: 'a' },
        { key, clientId: 'c', requestedAt: 0, resource },
      );
      assert.equal(login.resource, resource);
      const refreshed = credentialFromTokenResponse(
        { access_token: 'b' },
        { key, clientId: 'c', requestedAt: 1, previous: stored(login) },
      );
      assert.equal(refreshed.resource, resource);
    }
  });
});
