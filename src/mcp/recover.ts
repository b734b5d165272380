/**
 * Carrying out the recovery decision (recovery.ts) for one failed attempt: wait, renew the
 * session, log in, relearn tools or bridge, then say whether to send again or what to
 * answer the host with.
 */
import { ErrorCode, isLatchkeyError, type LatchkeyError } from '../errors.js';
import { sleep } from '../lifecycle/lease.js';
import type { Parts } from './connection-parts.js';
import type { JsonRpcError, JsonRpcRequest } from './jsonrpc.js';
import type { Pending } from './pending.js';
import {
  classifyFailure,
  type Decision,
  decideRecovery,
  type Failure,
  type FailWith,
  type RecoveryState,
  waitMs,
} from './recovery.js';
import * as rpcErrors from './rpc-errors.js';

/** Send again, answer the host with a result, or answer it with an error. */
export type Outcome = 'retry' | { readonly result: object } | { readonly error: unknown };

export async function recover(
  parts: Parts,
  pending: Pending,
  error: unknown,
  epoch: number,
  round: number,
): Promise<Outcome> {
  const failure = classifyFailure(error);
  // A logout elsewhere may be in the store but not yet delivered by the watch; a login must
  // not start on the heels of one.
  if (failure.kind === 'login-required') await parts.credentials.catchUp();
  const decision = decideRecovery(failure, stateOf(parts, pending, round));
  note(parts, pending, failure, decision);
  const signal = pending.abort.signal;
  switch (decision.action) {
    case 'retry':
      await retry(parts, pending, decision, epoch, round);
      return 'retry';
    case 're-handshake':
      await parts.session.rehandshake(epoch, decision.reason);
      return 'retry';
    case 'login':
      if (parts.options.authorize === undefined) return { error };
      // Only a LOGIN_REQUIRED LatchkeyError leads here.
      await parts.options.authorize(error as LatchkeyError, signal);
      return 'retry';
    case 'bridge': {
      const result = await parts.bridging.initialize(pending);
      if (result === undefined) return { error };
      parts.session.completed(pending.request, undefined);
      return { result };
    }
    case 'fail':
      if (decision.renewSession !== undefined) parts.renewInBackground(decision.renewSession, epoch);
      return { error: failWith(parts, pending, decision.answer, failure, error) };
  }
}

function stateOf(parts: Parts, pending: Pending, round: number): RecoveryState {
  const { wires, session } = parts;
  return {
    round,
    method: pending.request.method,
    modern: pending.revision !== undefined,
    internal: pending.internal,
    loggedOut: parts.credentials.loggedOut,
    canLogin: parts.options.authorize !== undefined,
    mayBridge: parts.options.protocol !== 'legacy',
    repeatable: parts.replay.isRepeatable(pending.request),
    relearned: pending.relearned === true,
    sessionLost: wires.mode === 'http' && wires.http.sessionId === undefined && session.initialized,
    aborted: pending.abort.signal.aborted,
  };
}

async function retry(
  parts: Parts,
  pending: Pending,
  decision: Extract<Decision, { action: 'retry' }>,
  epoch: number,
  round: number,
): Promise<void> {
  const signal = pending.abort.signal;
  if (decision.renewSession !== undefined) parts.renewInBackground(decision.renewSession, epoch);
  if (decision.dropSession === true) parts.wires.http.sessionId = undefined;
  if (decision.relearnTools === true && pending.revision !== undefined) {
    pending.relearned = true;
    await parts.sessionless.relearnTools(pending.request, pending.revision, signal);
  }
  const ms = waitMs(decision.wait, round);
  if (ms > 0) await sleep(ms, signal);
}

function failWith(
  parts: Parts,
  pending: Pending,
  answer: FailWith,
  failure: Failure,
  error: unknown,
): unknown {
  const { method } = pending.request;
  switch (answer) {
    case 'failure':
      return error;
    case 'lost-in-flight':
      return new rpcErrors.RpcFailure(rpcErrors.connectionLost(parts.server, method, error));
    case 'message-too-large': {
      const limit = failure.kind === 'message-too-large' ? failure.limit : 0;
      return new rpcErrors.RpcFailure(rpcErrors.messageTooLarge(parts.server, method, limit, parts.describe));
    }
    case 'refusal':
      return failure.kind === 'http-status' && failure.rpc !== undefined
        ? new rpcErrors.RpcFailure(failure.rpc)
        : error;
  }
}

/** What the log says about a recovery, in the words it always used. */
function note(parts: Parts, pending: Pending, failure: Failure, decision: Decision): void {
  const method = pending.request.method;
  if (failure.kind === 'http-status' && failure.sessionExpired && decision.action !== 'fail') {
    parts.log.info('the server forgot the session; re-initializing', { method });
  } else if (failure.kind === 'stream-broken' && decision.action === 'retry') {
    const what = pending.revision === undefined ? 'sending the request again' : 're-issuing the request';
    parts.log.info(`a response stream broke; ${what}`, { method });
  }
}

/** The error the host is told, for what a request failed with in the end. */
export function toRpcError(parts: Parts, request: JsonRpcRequest, error: unknown): JsonRpcError {
  const { server, describe } = parts;
  if (error instanceof rpcErrors.RpcFailure) return error.rpc;
  if (isLatchkeyError(error) && error.code === ErrorCode.LOGIN_REQUIRED && parts.credentials.loggedOut) {
    return rpcErrors.loggedOut(server, describe);
  }
  return (
    rpcErrors.fromLatchkeyError(server, error, describe) ??
    rpcErrors.unavailable(server, request.method, error, describe)
  );
}
