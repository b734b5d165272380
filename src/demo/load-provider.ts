/**
 * oidc-provider announces itself on the console: "Unsupported runtime" at import on Node 20
 * (it wants 22+, but works on 20), and development-only notices (in-memory adapter, dev
 * interactions, generated signing keys, "you SHOULD change" defaults) the first time each is
 * used. In a test run (and in `latchkey demo`) these are noise, so the harness drops console
 * lines that start with `oidc-provider `, coloured or not, unless LATCHKEY_HARNESS_VERBOSE is set.
 *
 * The import is dynamic so that the filter is in place before the module's top level runs.
 */
import type ProviderClass from 'oidc-provider';
import type { errors as ProviderErrors } from 'oidc-provider';

export interface OidcProviderModule {
  Provider: typeof ProviderClass;
  errors: typeof ProviderErrors;
}

let loaded: Promise<OidcProviderModule> | undefined;

export function loadOidcProvider(): Promise<OidcProviderModule> {
  if (loaded === undefined) {
    installConsoleFilter();
    loaded = import('oidc-provider').then((mod) => ({ Provider: mod.default, errors: mod.errors }));
  }
  return loaded;
}

/* eslint-disable no-console -- this wraps oidc-provider's own console output, nothing else */
function installConsoleFilter(): void {
  if (process.env['LATCHKEY_HARNESS_VERBOSE']) return;
  for (const method of ['warn', 'info'] as const) {
    const original = console[method].bind(console);
    console[method] = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && isProviderNotice(args[0])) return;
      original(...args);
    };
  }
}
/* eslint-enable no-console */

/**
 * On a terminal oidc-provider colours its lines (`ESC[31;1m` first), so the prefix is looked
 * for after any leading escape sequences.
 */
export function isProviderNotice(line: string): boolean {
  // eslint-disable-next-line no-control-regex -- removing terminal colour codes on purpose
  return line.replace(/^(?:\x1b\[[0-9;]*m)+/, '').startsWith('oidc-provider ');
}
