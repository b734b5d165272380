/**
 * Text that came from the network: an authorization server's `error_description`, an MCP
 * server's error body, a verification URI. Any of it may be hostile: terminal escapes that
 * write the clipboard (OSC 52) or clear the screen, bidi overrides that reorder what the user
 * reads, a fake "Logged in" line, megabytes of filler, or a token the server echoes back.
 *
 * Every such text passes through `networkText` before latchkey shows, stores, logs or relays
 * it. It is the one place that policy lives (docs/security.md, "Text from the network").
 */
import { type SecretRegistry, secrets as processSecrets } from './redact.js';

/** Default cap for one fragment of network text (a description, an error body excerpt). */
export const NETWORK_TEXT_MAX = 500;

/**
 * Cap for a whole message latchkey composes around such fragments (a LatchkeyError, a
 * JSON-RPC error for the host): room for the server URL, the fragment and the next step.
 */
export const MESSAGE_MAX = 4000;

/**
 * Only this much of the input is examined. Whatever lies beyond can never be shown (the caps
 * above are far smaller), and scanning 5 MB of filler for secrets and escapes buys nothing.
 */
const SCAN_WINDOW = 64 * 1024;
/**
 * When the input runs past the window, a secret may straddle its end and escape scrubbing;
 * this much of the examined text's end is never shown then (longer than any real token).
 */
const TAIL_GUARD = 16 * 1024;

export interface NetworkTextOptions {
  /** Longest result, in UTF-16 code units, before the truncation marker. Default NETWORK_TEXT_MAX (500). */
  maxLength?: number;
  /** The secrets to scrub. Default: the process-wide registry, which holds every token,
   * client secret and `--header` value this process has handled. */
  secrets?: SecretRegistry;
}

/**
 * Make untrusted text safe to show, store, log or relay: escape sequences and control
 * characters removed (line breaks and tabs become spaces, so it stays one line and cannot
 * forge a log line), bidi controls removed, secrets replaced by their fingerprint, length capped
 * with a marker that gives the original length.
 */
export function networkText(value: unknown, options: NetworkTextOptions = {}): string {
  const raw = typeof value === 'string' ? value : String(value);
  const max = options.maxLength ?? NETWORK_TEXT_MAX;
  const registry = options.secrets ?? processSecrets;
  // Scrub, strip, scrub: an escape sequence can swallow the first characters of a secret that
  // was whole (the first pass catches it), or split one that is whole only once stripped.
  const flat = printable(registry.scrub(raw.slice(0, SCAN_WINDOW))).replace(/ {2,}/g, ' ');
  const clean = registry.scrub(flat);
  if (raw.length <= SCAN_WINDOW) {
    return clean.length <= max ? clean : `${cut(clean, max)}… [${raw.length} characters, cut]`;
  }
  const guarded = clean.slice(0, Math.max(0, clean.length - TAIL_GUARD));
  return `${cut(guarded, max)}… [${raw.length} characters, cut]`;
}

/** Longest JSON nesting walked by networkJson; deeper values are dropped. */
const MAX_JSON_DEPTH = 8;

/**
 * A JSON value from the network (a JSON-RPC error's `data`) with every string, key included,
 * passed through networkText. Bounded in depth; the caller bounds the size of what it read.
 */
export function networkJson(value: unknown, options: NetworkTextOptions = {}, depth = 0): unknown {
  if (typeof value === 'string') return networkText(value, options);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_JSON_DEPTH) return '[nested too deep]';
  if (Array.isArray(value)) return value.map((v) => networkJson(v, options, depth + 1));
  // fromEntries defines properties: a "__proto__" key stays a plain key.
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [networkText(k, options), networkJson(v, options, depth + 1)]),
  );
}

/** CSI (ESC [ ... final byte, or the 8-bit CSI), OSC/DCS/APC/PM/SOS strings, other ESC pairs. */
const ESCAPE_SEQUENCE =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /(?:\u001b\[|\u009b)[0-?]*[ -/]*[@-~]?|(?:\u001b[\]P_^X]|[\u0090\u009d-\u009f])[^\u0007\u001b\u009c]*(?:\u0007|\u001b\\|\u009c)?|\u001b[ -~]?/g;
/** Line and paragraph breaks and tabs: kept as a space so words stay apart. */
const BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]+/g;
/** Remaining C0/C1 controls and DEL, and the bidi marks, embeddings, overrides and isolates. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Only the control-character part of `networkText`, with no cap and no scrubbing: for text
 * that must stay whole and is not secret-bearing, such as a device flow's user code.
 */
export function printable(text: string): string {
  return text.replace(ESCAPE_SEQUENCE, '').replace(BREAKS, ' ').replace(INVISIBLE, '');
}

/** At most `max` code units, never splitting a surrogate pair. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  const code = text.charCodeAt(max - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}
