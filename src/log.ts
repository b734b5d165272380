import { redactValue, secrets, type SecretRegistry } from './redact.js';
import { MESSAGE_MAX, networkText } from './network-text.js';

/**
 * The one logger. Everything latchkey prints for humans goes through it, and it redacts:
 * secret-named fields are replaced, and free text is scrubbed of every secret this process
 * has handled and of anything shaped like a bearer token or JWT. It writes to stderr by
 * default because stdout belongs to data (and, in the proxy, to MCP messages only).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines carry `bindings` too (e.g. `{ server }`). */
  child(bindings: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  /** Minimum level written. Default: `LATCHKEY_LOG_LEVEL`, else `warn`. */
  level?: LogLevel;
  /** `text` (default) or `json` lines. */
  format?: 'text' | 'json';
  /** Where lines go. Default: process.stderr. */
  write?: (line: string) => void;
  registry?: SecretRegistry;
}

export function createLogger(options: LoggerOptions = {}, bindings: Record<string, unknown> = {}): Logger {
  const level = options.level ?? levelFromEnv(process.env['LATCHKEY_LOG_LEVEL']) ?? 'warn';
  const write = options.write ?? ((line: string) => void process.stderr.write(line + '\n'));
  const registry = options.registry ?? secrets;
  const format = options.format ?? 'text';

  const emit = (at: LogLevel, message: string, fields?: Record<string, unknown>): void => {
    if (RANK[at] < RANK[level]) return;
    const data = redactValue({ ...bindings, ...fields }, registry) as Record<string, unknown>;
    // Messages may quote a server's words: one line, no escapes, bounded, scrubbed.
    const text = networkText(message, { maxLength: MESSAGE_MAX, secrets: registry });
    write(format === 'json' ? formatJson(at, text, data) : formatText(at, text, data));
  };

  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (more) => createLogger({ ...options, level, write, registry, format }, { ...bindings, ...more }),
  };
}

function formatText(level: LogLevel, message: string, data: Record<string, unknown>): string {
  const pairs = Object.entries(data)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v)}`);
  return [`latchkey ${level}:`, message, ...pairs].join(' ');
}

function formatJson(level: LogLevel, message: string, data: Record<string, unknown>): string {
  return JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...data });
}

function levelFromEnv(value: string | undefined): LogLevel | undefined {
  return value !== undefined && value in RANK ? (value as LogLevel) : undefined;
}

/** A logger that drops everything, for embedders that want silence. */
export const silentLogger: Logger = createLogger({ level: 'silent' });
