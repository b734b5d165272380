/**
 * The JSON-RPC errors the connection answers the host with. Each names the server, says what
 * happened in words a user can act on, and carries the same facts as `data.latchkey` for
 * hosts that read them.
 */
import { ErrorCode, isLatchkeyError, loginCommand } from '../errors.js';
import { describeNextAction, type NextAction } from '../next-action.js';
import { MESSAGE_MAX, networkJson, networkText } from '../network-text.js';
import type { DevicePrompt } from '../oauth/types.js';
import { type JsonRpcError, RpcErrorCode } from './jsonrpc.js';
import { HttpStatusError, StreamBrokenError } from './wire-errors.js';

export interface LatchkeyErrorData {
  server: string;
  /** latchkey's error code (LOGIN_REQUIRED, ...) or a connection condition. */
  code: string;
  retryable: boolean;
  nextStep?: string;
  verificationUri?: string;
  verificationUriComplete?: string;
  userCode?: string;
  /** A browser login whose browser could not be started: the URL to open by hand. */
  authorizationUrl?: string;
}

/** A failure that already has the words for the host. */
export class RpcFailure extends Error {
  override readonly name = 'RpcFailure';
  constructor(readonly rpc: JsonRpcError) {
    super(rpc.message);
  }
}

/** Every error the host hears is built here: the last gate for words that came from the network. */
function rpcError(code: number, message: string, data: LatchkeyErrorData): JsonRpcError {
  const safe = networkJson(data, { maxLength: MESSAGE_MAX }) as LatchkeyErrorData;
  return {
    code,
    message: `latchkey: ${networkText(message, { maxLength: MESSAGE_MAX })}`,
    data: { latchkey: safe },
  };
}

/** An error from the credential manager (login required, AS down, ...). */
export function fromLatchkeyError(
  server: string,
  error: unknown,
  describeNext: (action: NextAction) => string = describeNextAction,
): JsonRpcError | undefined {
  if (!isLatchkeyError(error)) return undefined;
  const auth =
    error.code === ErrorCode.LOGIN_REQUIRED ||
    error.code === ErrorCode.CLIENT_REJECTED ||
    error.code === ErrorCode.STORE_KEY_MISMATCH;
  // LatchkeyError messages already start with the server.
  const named = error.server === undefined ? `${server}: ${error.message}` : error.message;
  const nextStep = error.next === undefined ? undefined : describeNext(error.next);
  const message = nextStep === undefined ? named : `${named} Next step: ${nextStep}`;
  return rpcError(auth ? RpcErrorCode.AUTH_REQUIRED : RpcErrorCode.UNAVAILABLE, message, {
    server,
    code: error.code,
    retryable: error.retryable,
    ...(nextStep === undefined ? {} : { nextStep }),
  });
}

export function loggedOut(server: string): JsonRpcError {
  return rpcError(
    RpcErrorCode.AUTH_REQUIRED,
    `${server}: you logged out of this server. Next step: run \`${loginCommand(server)}\``,
    { server, code: ErrorCode.LOGIN_REQUIRED, retryable: false, nextStep: `run \`${loginCommand(server)}\`` },
  );
}

export function deviceLoginPending(server: string, prompt: DevicePrompt): JsonRpcError {
  const where = prompt.verificationUriComplete ?? prompt.verificationUri;
  return rpcError(
    RpcErrorCode.AUTH_REQUIRED,
    `${server}: login required. Open ${prompt.verificationUri} and enter the code ${prompt.userCode}, then retry.`,
    {
      server,
      code: ErrorCode.LOGIN_REQUIRED,
      retryable: true,
      nextStep: `open ${where} and approve the login, then retry`,
      verificationUri: prompt.verificationUri,
      ...(prompt.verificationUriComplete === undefined
        ? {}
        : { verificationUriComplete: prompt.verificationUriComplete }),
      userCode: prompt.userCode,
    },
  );
}

/**
 * The proxy could not start a browser for a login (hosts often pass no BROWSER or DISPLAY):
 * the host hears at once, with the URL, instead of a request that hangs until the login
 * times out. The login keeps waiting for the redirect, so opening the URL and retrying works.
 */
export function browserLoginPending(server: string, url: string): JsonRpcError {
  return rpcError(
    RpcErrorCode.AUTH_REQUIRED,
    `${server}: login required, and latchkey could not start a browser. Open ${url} in a browser on this machine, sign in, then retry.`,
    {
      server,
      code: ErrorCode.LOGIN_REQUIRED,
      retryable: true,
      nextStep: 'open the authorization URL in a browser on this machine, sign in, then retry',
      authorizationUrl: url,
    },
  );
}

export function timedOut(server: string, method: string, ms: number): JsonRpcError {
  return rpcError(
    RpcErrorCode.REQUEST_TIMEOUT,
    `${server}: no answer to ${method} within ${Math.round(ms / 1000)} s.`,
    {
      server,
      code: 'TIMEOUT',
      retryable: true,
    },
  );
}

/** The answer broke off and the request may have run, so it was not sent again. */
export function connectionLost(server: string, method: string, cause: unknown): JsonRpcError {
  const why = cause instanceof StreamBrokenError ? cause.message : 'the connection broke';
  return rpcError(
    RpcErrorCode.CONNECTION_CLOSED,
    `${server}: ${why} while ${method} was in flight. It may have run on the server, so latchkey did not send it again.`,
    {
      server,
      code: 'CONNECTION_LOST',
      retryable: true,
      nextStep: 'check the result on the server, then retry if needed',
    },
  );
}

/**
 * The answer was over the message size limit. The server did run the request; its answer
 * was dropped unread past the limit rather than held in memory.
 */
export function messageTooLarge(server: string, method: string, limit: number): JsonRpcError {
  const nextStep = `ask for less (a narrower query or a page), or raise the limit with \`latchkey proxy --max-message-size <MiB>\` (now ${limit / (1024 * 1024)} MiB)`;
  return rpcError(
    RpcErrorCode.MESSAGE_TOO_LARGE,
    `${server}: the answer to ${method} was larger than the ${limit}-byte message size limit; it was dropped (the request did run on the server). Next step: ${nextStep}`,
    { server, code: 'MESSAGE_TOO_LARGE', retryable: false, nextStep },
  );
}

/** The server refused the request, or could not be reached at all. */
export function unavailable(server: string, method: string, cause: unknown): JsonRpcError {
  if (cause instanceof HttpStatusError && (cause.status === 401 || cause.status === 403)) {
    const nextStep = `run \`${loginCommand(server)}\``;
    return rpcError(
      RpcErrorCode.AUTH_REQUIRED,
      `${server}: the server refused the credential for ${method} (${cause.message}). Next step: ${nextStep}`,
      { server, code: cause.status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', retryable: false, nextStep },
    );
  }
  const why = cause instanceof HttpStatusError ? cause.message : describe(cause);
  if (cause instanceof HttpStatusError && cause.status >= 500) {
    const nextStep = serverFailureStep(server);
    return rpcError(
      RpcErrorCode.UNAVAILABLE,
      `${server}: ${method} failed: ${why}. ${serverFailureNote(cause.status)} Next step: ${nextStep}`,
      { server, code: `HTTP_${cause.status}`, retryable: true, nextStep },
    );
  }
  return rpcError(RpcErrorCode.UNAVAILABLE, `${server}: ${method} failed: ${why}.`, {
    server,
    code: cause instanceof HttpStatusError ? `HTTP_${cause.status}` : 'UNREACHABLE',
    retryable: true,
  });
}

/**
 * A 5xx is the MCP server's own failure: neither latchkey nor `doctor` (which checks the
 * OAuth chain) can find its cause, so the words say whose it is.
 */
export function serverFailureNote(status: number): string {
  return `The server answered HTTP ${status}: this is a failure inside the MCP server itself, not in latchkey or in the login.`;
}

/** Some servers (the MCP SDK's example verifier) answer 500 rather than 401 to a token they reject. */
export function serverFailureStep(server: string): string {
  return `retry later, and if it persists report it to the operator of ${server}; if it began when your credential changed, \`${loginCommand(server)}\` gets a fresh token (some servers answer 500 instead of 401 to a token they reject)`;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${error.message}${cause}`;
}
