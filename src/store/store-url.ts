/**
 * Store URLs: one string names a store everywhere (`--store`, `LATCHKEY_STORE`, the library's
 * `openStore`). A SQLite path (or `sqlite:` URL) or a `postgres://` / `postgresql://` URL.
 * Postgres URLs may carry a password; only the redacted form is ever shown.
 */
export type StoreUrlKind = 'sqlite' | 'postgres';

export function storeUrlKind(url: string): StoreUrlKind {
  return /^postgres(ql)?:\/\//i.test(url) ? 'postgres' : 'sqlite';
}

/** The file a SQLite store URL names: a plain path, `sqlite:path` or `sqlite:///abs/path`. */
export function sqlitePathOf(url: string): string {
  if (!/^sqlite:/i.test(url)) return url;
  const rest = url.slice('sqlite:'.length);
  return rest.startsWith('//') ? decodeURIComponent(new URL(url).pathname) : rest;
}

const SECRET_PARAMS = /^(password|sslpassword|sslkey|passfile)$/i;

/**
 * The URL with its password (and password-like query parameters) replaced by `***`, for
 * `security.location`, logs and errors. Text that does not parse is reduced to its scheme:
 * it might be a password in the wrong place.
 */
export function redactStoreUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0];
    return scheme === undefined ? '(unparseable store URL)' : `${scheme}//(unparseable)`;
  }
  if (parsed.password !== '') parsed.password = '***';
  for (const name of [...parsed.searchParams.keys()]) {
    if (SECRET_PARAMS.test(name)) parsed.searchParams.set(name, '***');
  }
  return parsed.toString();
}
