import { createHash } from 'node:crypto';

import { type Held, SecretIndex, type SecretRecord, secretOf, TAIL_LENGTH } from './secret-index.js';

/**
 * A short, stable, non-reversible name for a secret, so logs and status output can say
 * "the token changed" without containing it.
 */
export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 10);
}

export function redactToken(secret: string | undefined): string {
  return secret === undefined ? '[none]' : `[redacted #${fingerprint(secret)}]`;
}

/** Field names whose values are always secret, whatever they contain. */
const SECRET_FIELD =
  /(token|secret|password|passwd|authorization|cookie|verifier|assertion|api[-_]?key|^key$|^code$)/i;

/** Bearer/DPoP credentials, JWT-shaped strings and form-encoded secrets, in case one slips into free text. */
const SECRET_PATTERNS: readonly [RegExp, string][] = [
  [/\b(Bearer|DPoP)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]'],
  [/\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*/g, '[redacted jwt]'],
  [/\b(access_token|refresh_token|id_token|client_secret|code|code_verifier)=[^&\s"]+/gi, '$1=[redacted]'],
];

/**
 * Remembers the secrets this process has handled so free text (an AS error description,
 * an exception message) can be scrubbed even when a secret has no recognisable shape.
 *
 * Two kinds of entry, so the registry stays bounded in a process that sees millions of
 * tokens without ever forgetting one it still holds:
 * - pinned secrets (`pin`/`unpin`, counted): the tokens of credentials the process keeps,
 *   e.g. the manager's cache. They stay until the last holder unpins them, however many;
 *   the holder's own bound (the cache size) bounds them.
 * - recent secrets (`add`, and pinned ones once released): the newest `limit`, oldest
 *   forgotten first. A released token keeps being scrubbed while it is recent, in case it
 *   turns up in a late error.
 *
 * Every secret held has one record in the index (secret-index.ts, which says why it is
 * not a Map): the string itself while one holder pins it, a Held otherwise.
 */
export class SecretRegistry {
  /** Oldest first: the order in which recent secrets are forgotten. */
  readonly #recent = new Set<string>();
  readonly #index = new SecretIndex();
  readonly #limit: number;

  constructor(limit = 2048) {
    this.#limit = limit;
  }

  /** How many distinct secrets are held (pinned and recent). */
  get size(): number {
    return this.#index.size;
  }

  add(secret: string | undefined): void {
    if (secret === undefined || secret.length < TAIL_LENGTH) return;
    const held = this.#held(secret) ?? this.#hold({ secret, pins: 0, recent: false });
    this.#recent.delete(secret); // re-added: newest again
    this.#recent.add(secret);
    held.recent = true;
    while (this.#recent.size > this.#limit) {
      const oldest = this.#recent.values().next();
      if (oldest.done === true) break;
      this.#recent.delete(oldest.value);
      const gone = this.#held(oldest.value);
      if (gone === undefined) continue;
      gone.recent = false;
      if (gone.pins === 0) this.#index.delete(gone.secret);
      else if (gone.pins === 1) this.#index.set(gone.secret); // back to the common form
    }
  }

  /** Hold `secret` until as many `unpin` calls as `pin` calls (one per holder). */
  pin(secret: string | undefined): void {
    if (secret === undefined || secret.length < TAIL_LENGTH) return;
    const held = this.#held(secret);
    if (held === undefined)
      this.#index.set(secret); // pinned once: the string is the record
    else held.pins++;
  }

  /** Release one hold; the last release turns the secret into a recent one. */
  unpin(secret: string | undefined): void {
    if (secret === undefined) return;
    const held = this.#held(secret);
    if (held === undefined || held.pins === 0) return;
    held.pins--;
    if (held.pins === 0) this.add(secret);
  }

  scrub(text: string): string {
    let out = this.#index.size === 0 ? text : this.#scrubHeld(text);
    for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
    return out;
  }

  /**
   * One pass over the text: at each position, a held secret ending there. Keyed by the end,
   * not the start, because tokens of one AS often share their first characters (a JWT's
   * header) but not their last (its signature).
   */
  #scrubHeld(text: string): string {
    let out = '';
    let copied = 0;
    for (let end = TAIL_LENGTH; end <= text.length; end++) {
      const found = this.#longestEndingAt(text, end, copied);
      if (found === undefined) continue;
      out += text.slice(copied, end - found.length) + redactToken(found);
      copied = end;
    }
    return copied === 0 ? text : out + text.slice(copied);
  }

  #longestEndingAt(text: string, end: number, from: number): string | undefined {
    const records = this.#index.endingAt(text, end);
    if (records === undefined) return undefined;
    let found: string | undefined;
    for (const record of Array.isArray(records) ? records : [records]) {
      const secret = secretOf(record as SecretRecord);
      const start = end - secret.length;
      if (
        start >= from &&
        (found === undefined || secret.length > found.length) &&
        text.startsWith(secret, start)
      )
        found = secret;
    }
    return found;
  }

  /** The secret's record as a Held (made one if it was the pinned-once string), if held. */
  #held(secret: string): Held | undefined {
    const record = this.#index.get(secret);
    if (typeof record !== 'string') return record;
    return this.#hold({ secret, pins: 1, recent: false });
  }

  #hold(held: Held): Held {
    this.#index.set(held);
    return held;
  }
}

/** Process-wide registry used by the logger and error formatting. */
export const secrets = new SecretRegistry();

/** Deep copy of `value` with secret fields and secret-looking text replaced. */
export function redactValue(value: unknown, registry: SecretRegistry = secrets, depth = 0): unknown {
  if (typeof value === 'string') return registry.scrub(value);
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (value instanceof Error) return { name: value.name, message: registry.scrub(value.message) };
  if (Array.isArray(value)) return value.map((v) => redactValue(v, registry, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      SECRET_FIELD.test(k) && v !== undefined && v !== null
        ? '[redacted]'
        : redactValue(v, registry, depth + 1);
  }
  return out;
}
