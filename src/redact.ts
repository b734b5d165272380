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

/** One secret the registry holds: pinned (`pins` > 0), recent, or both. */
interface Held {
  readonly secret: string;
  pins: number;
  recent: boolean;
}

/**
 * A number for the MIN_SECRET_LENGTH characters of `text` that end at `end`: the index key.
 * A number, not the characters themselves, so that holding a secret allocates no key string
 * and a scrub reads the text in place. Equal tails give equal numbers; the converse is
 * checked by comparing the secret itself.
 */
function tailHash(text: string, end: number): number {
  let hash = 0;
  for (let at = end - MIN_SECRET_LENGTH; at < end; at++)
    hash = (Math.imul(hash, 31) + text.charCodeAt(at)) | 0;
  return hash & 0x3fffffff;
}

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
 * Every held secret is one small record in one map, keyed by a number for its last
 * characters (see tailHash): a manager caching 10k credentials pins 20k tokens, and a map
 * per purpose (pins, index) with a string key and a Set per secret cost about 350 bytes a
 * token, which V8's heap growth multiplies in RSS (issue 16).
 */
export class SecretRegistry {
  /** Oldest first: the order in which recent secrets are forgotten. */
  readonly #recent = new Set<string>();
  /** Every secret held, by tailHash, so scrub() looks up, not loops. */
  readonly #byTail = new Map<number, Held | Held[]>();
  #size = 0;
  readonly #limit: number;

  constructor(limit = 2048) {
    this.#limit = limit;
  }

  /** How many distinct secrets are held (pinned and recent). */
  get size(): number {
    return this.#size;
  }

  add(secret: string | undefined): void {
    if (secret === undefined || secret.length < MIN_SECRET_LENGTH) return;
    const held = this.#find(secret) ?? this.#hold(secret);
    this.#recent.delete(secret); // re-added: newest again
    this.#recent.add(secret);
    held.recent = true;
    while (this.#recent.size > this.#limit) {
      const oldest = this.#recent.values().next();
      if (oldest.done === true) break;
      this.#recent.delete(oldest.value);
      const gone = this.#find(oldest.value);
      if (gone === undefined) continue;
      gone.recent = false;
      if (gone.pins === 0) this.#release(gone);
    }
  }

  /** Hold `secret` until as many `unpin` calls as `pin` calls (one per holder). */
  pin(secret: string | undefined): void {
    if (secret === undefined || secret.length < MIN_SECRET_LENGTH) return;
    (this.#find(secret) ?? this.#hold(secret)).pins++;
  }

  /** Release one hold; the last release turns the secret into a recent one. */
  unpin(secret: string | undefined): void {
    if (secret === undefined) return;
    const held = this.#find(secret);
    if (held === undefined || held.pins === 0) return;
    held.pins--;
    if (held.pins === 0) this.add(secret);
  }

  scrub(text: string): string {
    let out = this.#size === 0 ? text : this.#scrubHeld(text);
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
    const bucket = this.#byTail.get(tailHash(text, end));
    if (bucket === undefined) return undefined;
    let found: string | undefined;
    for (const { secret } of Array.isArray(bucket) ? bucket : [bucket]) {
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

  #find(secret: string): Held | undefined {
    const bucket = this.#byTail.get(tailHash(secret, secret.length));
    if (bucket === undefined || !Array.isArray(bucket)) return bucket?.secret === secret ? bucket : undefined;
    return bucket.find((held) => held.secret === secret);
  }

  #hold(secret: string): Held {
    const held: Held = { secret, pins: 0, recent: false };
    const hash = tailHash(secret, secret.length);
    const bucket = this.#byTail.get(hash);
    if (bucket === undefined) this.#byTail.set(hash, held);
    else if (Array.isArray(bucket)) bucket.push(held);
    else this.#byTail.set(hash, [bucket, held]);
    this.#size++;
    return held;
  }

  #release(held: Held): void {
    const hash = tailHash(held.secret, held.secret.length);
    const bucket = this.#byTail.get(hash);
    if (bucket === held) this.#byTail.delete(hash);
    else if (Array.isArray(bucket) && bucket.includes(held)) {
      const rest = bucket.filter((other) => other !== held);
      // Back to the common case, one secret per key, held as itself.
      this.#byTail.set(hash, rest.length === 1 ? (rest[0] as Held) : rest);
    } else return;
    this.#size--;
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
