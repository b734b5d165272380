import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * A real OS process running a fixture script under tsx, speaking JSON lines on stdout and
 * taking commands on stdin. Used by the cross-process tests (storm, crash, visibility).
 */
export interface Worker {
  readonly pid: number;
  /** Resolves with the next stdout message matching `predicate`. */
  next<T = Record<string, unknown>>(
    predicate?: (msg: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<T>;
  send(command: Record<string, unknown>): void;
  kill(signal?: NodeJS.Signals): void;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stderr: () => string;
}

const TSX = fileURLToPath(import.meta.resolve('tsx'));

export function startWorker(script: string, env: Record<string, string>): Worker {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--import', TSX, script], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const queue: Record<string, unknown>[] = [];
  const waiters: {
    predicate: (m: Record<string, unknown>) => boolean;
    resolve: (m: Record<string, unknown>) => void;
  }[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      stderr += `[non-JSON stdout] ${line}\n`;
      return;
    }
    const i = waiters.findIndex((w) => w.predicate(msg));
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(msg);
    else queue.push(msg);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    pid: child.pid ?? -1,
    next: <T>(predicate: (m: Record<string, unknown>) => boolean = () => true, timeoutMs = 60_000) =>
      new Promise<T>((resolve, reject) => {
        const i = queue.findIndex(predicate);
        if (i >= 0) return resolve(queue.splice(i, 1)[0] as T);
        const timer = setTimeout(
          () =>
            reject(
              new Error(`worker ${child.pid}: no matching message in ${timeoutMs} ms; stderr:\n${stderr}`),
            ),
          timeoutMs,
        );
        waiters.push({
          predicate,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m as T);
          },
        });
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(
            new Error(`worker ${child.pid} exited (${code ?? signal}) before answering; stderr:\n${stderr}`),
          );
        });
      }),
    send: (command) => child.stdin.write(JSON.stringify(command) + '\n'),
    kill: (signal = 'SIGTERM') => child.kill(signal),
    exited,
    stderr: () => stderr,
  };
}
