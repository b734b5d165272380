import { ErrorCode, isLatchkeyError, type LatchkeyError } from '../errors.js';
import type { UpstreamConfig } from './config.js';
import { connectUrl, type ServeContext } from './context.js';
import { HttpError } from './http.js';

/**
 * The one translation of library errors into API answers. The library's next action becomes
 * something an app can act on: a link to reconnect, or a time to retry at. The message is the
 * library's, which is already scrubbed of secrets and network escapes.
 */
export function httpErrorFor(
  ctx: ServeContext,
  error: unknown,
  where: { subject: string; upstream: UpstreamConfig },
): HttpError {
  if (error instanceof HttpError) return error;
  if (!isLatchkeyError(error)) {
    return new HttpError(500, {
      error: 'internal',
      message: `an unexpected error occurred with ${where.upstream.id}.`,
      upstream: where.upstream.id,
    });
  }
  const upstream = where.upstream.id;
  const base = { message: error.message, upstream };
  switch (error.code) {
    case ErrorCode.LOGIN_REQUIRED:
    case ErrorCode.CANCELLED:
      return new HttpError(409, {
        error: 'login_required',
        ...base,
        connect_url: connectUrl(ctx, where.subject, upstream),
      });
    case ErrorCode.REFRESH_TRANSIENT:
    case ErrorCode.RATE_LIMITED:
    case ErrorCode.AS_UNAVAILABLE:
    case ErrorCode.WAIT_TIMEOUT:
    case ErrorCode.LOGOUT_INCOMPLETE:
      return retryLater(error, base);
    case ErrorCode.DISCOVERY_FAILED:
    case ErrorCode.CLIENT_REJECTED:
    case ErrorCode.RESPONSE_TOO_LARGE:
      return new HttpError(502, { error: 'upstream_auth_failed', ...base });
    case ErrorCode.INVALID_INPUT:
      return new HttpError(400, { error: 'invalid_request', ...base });
    default:
      return new HttpError(error.retryable ? 503 : 500, { error: 'store_failed', ...base });
  }
}

function retryLater(error: LatchkeyError, base: { message: string; upstream: string }): HttpError {
  const retryAt = error.retryAt ?? error.next?.retryAt;
  const seconds = retryAt === undefined ? 1 : Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
  return new HttpError(
    503,
    {
      error: 'temporarily_unavailable',
      ...base,
      ...(retryAt === undefined ? {} : { retry_at: new Date(retryAt).toISOString() }),
    },
    { 'retry-after': String(seconds) },
  );
}
