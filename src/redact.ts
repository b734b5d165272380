import { createHash } from 'node:crypto';

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

/** No real token is shorter; shorter strings would scrub ordinary words. */
const MIN_SECRET_LENGTH = 8;

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
 */
export class SecretRegistry {
  readonly #recent = new Set<string>();
  readonly #pinned = new Map<string, number>();
  /**
   * Every secret held, by its last MIN_SECRET_LENGTH characters, so scrub() looks up, not
   * loops. A suffix almost always ends one secret, held as the string itself: a Set per
   * secret cost about 150 bytes each, twice per cached credential (issue 16).
   */
  readonly #bySuffix = new Map<string, string | Set<string>>();
  readonly #limit: number;

  constructor(limit = 2048) {
    this.#limit = limit;
  }

  /** How many distinct secrets are held (pinned and recent). */
  get size(): number {
    let size = this.#pinned.size;
    for (const secret of this.#recent) if (!this.#pinned.has(secret)) size++;
    return size;
  }

  add(secret: string | undefined): void {
    if (secret === undefined || secret.length < MIN_SECRET_LENGTH) return;
    this.#recent.delete(secret); // re-added: newest again
    this.#recent.add(secret);
    this.#index(secret);
    while (this.#recent.size > this.#limit) {
      const oldest = this.#recent.values().next();
      if (oldest.done === true) break;
      this.#recent.delete(oldest.value);
      if (!this.#pinned.has(oldest.value)) this.#unindex(oldest.value);
    }
  }

  /** Hold `secret` until as many `unpin` calls as `pin` calls (one per holder). */
  pin(secret: string | undefined): void {
    if (secret === undefined || secret.length < MIN_SECRET_LENGTH) return;
    this.#pinned.set(secret, (this.#pinned.get(secret) ?? 0) + 1);
    this.#index(secret);
  }

  /** Release one hold; the last release turns the secret into a recent one. */
  unpin(secret: string | undefined): void {
    if (secret === undefined) return;
    const count = this.#pinned.get(secret);
    if (count === undefined) return;
    if (count > 1) {
      this.#pinned.set(secret, count - 1);
      return;
    }
    this.#pinned.delete(secret);
    this.add(secret);
  }

  scrub(text: string): string {
    let out = this.#bySuffix.size === 0 ? text : this.#scrubHeld(text);
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
    for (let end = MIN_SECRET_LENGTH; end <= text.length; end++) {
      const found = this.#longestEndingAt(text, end, copied);
      if (found === undefined) continue;
      out += text.slice(copied, end - found.length) + redactToken(found);
      copied = end;
    }
    return copied === 0 ? text : out + text.slice(copied);
  }

  #longestEndingAt(text: string, end: number, from: number): string | undefined {
    const candidates = this.#bySuffix.get(text.slice(end - MIN_SECRET_LENGTH, end));
    if (candidates === undefined) return undefined;
    if (typeof candidates === 'string') {
      const start = end - candidates.length;
      return start >= from && text.startsWith(candidates, start) ? candidates : undefined;
    }
    let found: string | undefined;
    for (const secret of candidates) {
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

  #index(secret: string): void {
    const suffix = secret.slice(-MIN_SECRET_LENGTH);
    const bucket = this.#bySuffix.get(suffix);
    if (bucket === undefined) this.#bySuffix.set(suffix, secret);
    else if (typeof bucket !== 'string') bucket.add(secret);
    else if (bucket !== secret) this.#bySuffix.set(suffix, new Set([bucket, secret]));
  }

  #unindex(secret: string): void {
    const suffix = secret.slice(-MIN_SECRET_LENGTH);
    const bucket = this.#bySuffix.get(suffix);
    if (bucket === secret) this.#bySuffix.delete(suffix);
    else if (typeof bucket !== 'string' && bucket?.delete(secret) === true && bucket.size === 1) {
      // Back to the common case: one secret, held as itself.
      this.#bySuffix.set(suffix, bucket.values().next().value as string);
    }
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
