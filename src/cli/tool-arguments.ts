import { ErrorCode, LatchkeyError } from '../errors.js';

/**
 * The arguments of `latchkey call`, as the user typed them (JSON object text; empty means
 * `{}`). Checked before anything connects: a typo should cost an instant exit 2, not a
 * connection, a token refresh and then the same exit.
 */
export function parseToolArguments(server: string, text: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw badArguments(server, `the arguments are not JSON (${(error as Error).message}).`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw badArguments(server, 'the arguments must be a JSON object.');
  }
  return parsed as Record<string, unknown>;
}

function badArguments(server: string, message: string): LatchkeyError {
  return new LatchkeyError(ErrorCode.INVALID_INPUT, message, {
    server,
    retryable: false,
    next: {
      kind: 'configure',
      detail: `pass an object such as '{"text": "hi"}' (see \`latchkey tools ${server} --json\` for the schema)`,
    },
  });
}
