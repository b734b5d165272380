/**
 * A one-line "waiting for …" indicator on stderr. On a terminal it animates in place and is
 * erased when done; anywhere else (a pipe, a host's log, CI) it prints its line once and
 * never writes a carriage return or an escape code. Colour only on a terminal, and never
 * with NO_COLOR set (https://no-color.org).
 */
export interface SpinnerIO {
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** stderr is a terminal. */
  isTTY?: boolean;
}

export interface Spinner {
  /** Show `text` as what is being waited for (replaces any current one). */
  start(text: string): void;
  /** Print lines above the spinner without garbling it. */
  print(text: string): void;
  /** Erase the spinner line. */
  stop(): void;
}

const FRAMES = ['|', '/', '-', '\\'];
const INTERVAL_MS = 120;

export function createSpinner(io: SpinnerIO): Spinner {
  const tty = io.isTTY === true && io.env['TERM'] !== 'dumb';
  const color = tty && io.env['NO_COLOR'] === undefined;
  let text: string | undefined;
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;
  const draw = (): void => {
    if (text === undefined) return;
    const mark = FRAMES[frame++ % FRAMES.length] ?? '-';
    io.err(`\r\x1b[2K${color ? `\x1b[36m${mark}\x1b[0m` : mark} ${text}`);
  };
  const erase = (): void => {
    if (tty && text !== undefined) io.err('\r\x1b[2K');
  };
  return {
    start(next) {
      if (!tty) {
        if (next !== text) io.err(`${next}\n`);
        text = next;
        return;
      }
      text = next;
      draw();
      timer ??= setInterval(draw, INTERVAL_MS);
      timer.unref();
    },
    print(line) {
      erase();
      io.err(line.endsWith('\n') ? line : `${line}\n`);
      if (tty) draw();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      erase();
      text = undefined;
    },
  };
}
