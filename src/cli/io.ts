/**
 * The CLI's two channels. `out` is for data a script may capture (a token, JSON); `err` is
 * for everything meant for a human. Commands receive them instead of touching process.std*,
 * which keeps them testable and keeps stdout clean where it must be.
 */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** stderr is a terminal: animate and colour there only. */
  isTTY?: boolean;
  /** Where `-` arguments are read from. Default: process.stdin. */
  stdin?: NodeJS.ReadableStream;
}

export const processIO: CliIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  env: process.env,
  get isTTY() {
    return process.stderr.isTTY;
  },
};

/**
 * `latchkey status | head -1`: the reader has what it wanted and closed the pipe, so the next
 * write fails with EPIPE. That is not an error worth a stack trace: stop quietly, as other
 * Unix tools do. The proxy is the exception: its host closing stdout ends the relay through
 * stdin, and exiting here could cut short a refresh that is being written to the store.
 */
export function quietOnBrokenPipe(command: string | undefined): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      if (command !== 'proxy') process.exit(0);
    });
  }
}
