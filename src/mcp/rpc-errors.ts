/**
 * The JSON-RPC errors the connection answers the host with. Each names the server, says what
 * happened in words a user can act on, and carries the same facts as `data.latchkey` for
 * hosts that read them.
 */
import { ErrorCode, isLatchkeyError } from '../errors.js';
import { describeNextAction, loginAction, type NextAction } from '../next-action.js';
import { MESSAGE_MAX, networkJson, networkText } from '../network-text.js';
import { type JsonRpcError, RpcErrorCode } from './jsonrpc.js';
import { HttpStatusError, StreamBrokenError } from './wire-errors.js';

/** Words for a next action: the library's neutral ones by default, the CLI's in the proxy. */
export type DescribeNext = (action: NextAction) => string;

/** A pending device login as the host is told of it (RFC 8628 fields). */
export interface DevicePrompt {
  readonly verificationUri: string;
  readonly verificationUriComplete?: string | undefined;
  readonly userCode: string;
}

export interface LatchkeyErrorData {
  server: string;
  /** latchkey's error code (LOGIN_REQUIRED, ...) or a connection condition. */
  code: string;
  retryable: boolean;
  /** What should happen next, as data (src/next-action.ts). */
  next?: NextAction;
  /** `next` in words, for hosts that show text. */
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

/** An error with a next action: the message ends with it in words, `data` holds both forms. */
function withNext(
  code: number,
  message: string,
  data: Omit<LatchkeyErrorData, 'next' | 'nextStep'>,
  next: NextAction,
  describe: DescribeNext,
): JsonRpcError {
  const nextStep = describe(next);
  return rpcError(code, `${message} Next step: ${nextStep}`, { ...data, next, nextStep });
}

/** An error from the credential manager (login required, AS down, ...). */
export function fromLatchkeyError(
  server: string,
  error: unknown,
  describeNext: DescribeNext = describeNextAction,
): JsonRpcError | undefined {
  if (!isLatchkeyError(error)) return undefined;
  const auth =
    error.code === ErrorCode.LOGIN_REQUIRED ||
    error.code === ErrorCode.CLIENT_REJECTED ||
    error.code === ErrorCode.STORE_KEY_MISMATCH;
  // LatchkeyError messages already start with the server.
  const named = error.server === undefined ? `${server}: ${error.message}` : error.message;
  const code = auth ? RpcErrorCode.AUTH_REQUIRED : RpcErrorCode.UNAVAILABLE;
  const data = { server, code: error.code, retryable: error.retryable };
  if (error.next === undefined) return rpcError(code, named, data);
  return withNext(code, named, data, error.next, describeNext);
}

export function loggedOut(server: string, describe: DescribeNext = describeNextAction): JsonRpcError {
  return withNext(
    RpcErrorCode.AUTH_REQUIRED,
    `${server}: you logged out of this server.`,
    { server, code: ErrorCode.LOGIN_REQUIRED, retryable: false },
    loginAction(server),
    describe,
  );
}

export function deviceLoginPending(server: string, prompt: DevicePrompt): JsonRpcError {
  const where = prompt.verificationUriComplete ?? prompt.verificationUri;
  // The login already runs: what is left is the user's approval, in the same words everywhere.
  const next: NextAction = {
    kind: 'retry',
    server,
    detail: `open ${where} and approve the login, then retry`,
  };
  return rpcError(
    RpcErrorCode.AUTH_REQUIRED,
    `${server}: login required. Open ${prompt.verificationUri} and enter the code ${prompt.userCode}, then retry.`,
    {
      server,
      code: ErrorCode.LOGIN_REQUIRED,
      retryable: true,
      next,
      nextStep: describeNextAction(next),
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
  const next: NextAction = {
    kind: 'retry',
    server,
    detail: 'open the authorization URL in a browser on this machine, sign in, then retry',
  };
  return rpcError(
    RpcErrorCode.AUTH_REQUIRED,
    `${server}: login required, and latchkey could not start a browser. Open ${url} in a browser on this machine, sign in, then retry.`,
    {
      server,
      code: ErrorCode.LOGIN_REQUIRED,
      retryable: true,
      next,
      nextStep: describeNextAction(next),
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
  const next: NextAction = {
    kind: 'retry',
    server,
    detail: 'check the result on the server, then retry if needed',
  };
  return rpcError(
    RpcErrorCode.CONNECTION_CLOSED,
    `${server}: ${why} while ${method} was in flight. It may have run on the server, so latchkey did not send it again.`,
    { server, code: 'CONNECTION_LOST', retryable: true, next, nextStep: describeNextAction(next) },
  );
}

/**
 * The answer was over the message size limit. The server did run the request; its answer
 * was dropped unread past the limit rather than held in memory.
 */
export function messageTooLarge(
  server: string,
  method: string,
  limit: number,
  describe: DescribeNext = describeNextAction,
): JsonRpcError {
  const next: NextAction = {
    kind: 'configure',
    server,
    option: 'maxMessageBytes',
    detail: `ask for less (a narrower query or a page), or raise the message size limit (now ${limit / (1024 * 1024)} MiB)`,
  };
  return withNext(
    RpcErrorCode.MESSAGE_TOO_LARGE,
    `${server}: the answer to ${method} was larger than the ${limit}-byte message size limit; it was dropped (the request did run on the server).`,
    { server, code: 'MESSAGE_TOO_LARGE', retryable: false },
    next,
    describe,
  );
}

/** The server refused the request, or could not be reached at all. */
export function unavailable(
  server: string,
  method: string,
  cause: unknown,
  describeNext: DescribeNext = describeNextAction,
): JsonRpcError {
  if (cause instanceof HttpStatusError && (cause.status === 401 || cause.status === 403)) {
    return withNext(
      RpcErrorCode.AUTH_REQUIRED,
      `${server}: the server refused the credential for ${method} (${cause.message}).`,
      { server, code: cause.status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', retryable: false },
      loginAction(server),
      describeNext,
    );
  }
  const why = cause instanceof HttpStatusError ? cause.message : describe(cause);
  if (cause instanceof HttpStatusError && cause.status >= 500) {
    return withNext(
      RpcErrorCode.UNAVAILABLE,
      `${server}: ${method} failed: ${why}. ${serverFailureNote(cause.status)}`,
      { server, code: `HTTP_${cause.status}`, retryable: true },
      serverFailureAction(server),
      describeNext,
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
export function serverFailureAction(server: string): NextAction {
  return {
    kind: 'operator',
    server,
    detail: `retry later, and if it persists report it to the operator of ${server}`,
    orLogin: true,
  };
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${error.message}${cause}`;
}
