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
