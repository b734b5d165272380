import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The installed command: bin/latchkey.cjs on the built dist/ (npm test builds first). */
const BIN = fileURLToPath(new URL('../../bin/latchkey.cjs', import.meta.url));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function latchkey(
  args: readonly string[],
  env: Record<string, string>,
  onStderr?: (text: string) => void,
  stdin?: string,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...env },
      stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
      onStderr?.(stderr);
    });
    child.stdin?.end(stdin);
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
