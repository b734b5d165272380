import type { CliIO } from '../../src/cli/io.js';

/** A CliIO that records what a command wrote to each channel. */
export function captureIO(env: NodeJS.ProcessEnv): CliIO & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    env,
    out: (text: string) => void (io.stdout += text),
    err: (text: string) => void (io.stderr += text),
  };
  return io;
}
