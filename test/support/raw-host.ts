import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const TSX = fileURLToPath(import.meta.resolve('tsx'));
const CLI = fileURLToPath(new URL('../fixtures/latchkey-cli.ts', import.meta.url));

export interface RawMessage {
  jsonrpc: '2.0';
  id?: string | number | null;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

/**
 * A host that writes JSON-RPC lines to `latchkey proxy` itself, for what no SDK client speaks
 * yet (the 2026-07-28 revision). Every stdout line must be a JSON-RPC message: `junk` collects
 * any that is not.
 */
export interface RawHost {
  request(method: string, params?: Record<string, unknown>, timeoutMs?: number): Promise<RawMessage>;
  /** Send a request without waiting; returns its id. */
  start(method: string, params?: Record<string, unknown>): number;
  answer(id: number, timeoutMs?: number): Promise<RawMessage>;
  notify(method: string, params?: Record<string, unknown>): void;
  /** Notifications the proxy relayed, oldest first. */
  readonly notifications: RawMessage[];
  waitForNotification(method: string, timeoutMs?: number): Promise<RawMessage>;
  readonly junk: string[];
  stderr(): string;
  close(): Promise<void>;
}

export function spawnRawHost(args: readonly string[], env: Record<string, string>): RawHost {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ['--import', TSX, CLI, 'proxy', ...args],
    { env: { ...(process.env as Record<string, string>), LATCHKEY_LOG_LEVEL: 'debug', ...env } },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const answers = new Map<string, RawMessage>();
  const notifications: RawMessage[] = [];
  const junk: string[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout }).on('line', (line) => {
    let message: RawMessage;
    try {
      message = JSON.parse(line) as RawMessage;
    } catch {
      junk.push(line);
      return;
    }
    if (message.jsonrpc !== '2.0') junk.push(line);
    else if (message.method !== undefined) notifications.push(message);
    else answers.set(String(message.id), message);
    for (const wake of waiters) wake();
  });
  let nextId = 0;
  const write = (message: object): void => {
    child.stdin.write(`${JSON.stringify(message)}\n`);
  };
  const until = async <T>(find: () => T | undefined, timeoutMs: number, what: string): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; stderr:\n${stderr}`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, 50);
        waiters.add(wake);
      });
    }
  };
  const host: RawHost = {
    start(method, params) {
      const id = ++nextId;
      write({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
      return id;
    },
    answer: (id, timeoutMs = 15_000) => until(() => answers.get(String(id)), timeoutMs, `answer to ${id}`),
    request(method, params, timeoutMs) {
      return host.answer(host.start(method, params), timeoutMs);
    },
    notify(method, params) {
      write({ jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) });
    },
    notifications,
    waitForNotification: (method, timeoutMs = 15_000) =>
      until(() => notifications.find((n) => n.method === method), timeoutMs, method),
    junk,
    stderr: () => stderr,
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  return host;
}
