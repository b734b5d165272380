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

/**
 * Remembers the secrets this process has handled so free text (an AS error description,
 * an exception message) can be scrubbed even when a secret has no recognisable shape.
 */
export class SecretRegistry {
  readonly #secrets = new Set<string>();
  readonly #limit: number;

  constructor(limit = 2048) {
    this.#limit = limit;
  }

  add(secret: string | undefined): void {
    // Very short strings would scrub ordinary words; no real token is that short.
    if (secret === undefined || secret.length < 8) return;
    if (this.#secrets.size >= this.#limit) {
      const oldest = this.#secrets.values().next();
      if (oldest.done !== true) this.#secrets.delete(oldest.value);
    }
    this.#secrets.add(secret);
  }

  scrub(text: string): string {
    let out = text;
    for (const secret of this.#secrets) {
      if (out.includes(secret)) out = out.split(secret).join(redactToken(secret));
    }
    for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
    return out;
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
