import type { ExitCode } from './exit-codes.js';
import type { CliIO } from './io.js';

/** What every command's registration is given by main(). */
export interface CliContext {
  io: CliIO;
  /** A command that ends normally but must not exit 0 (doctor with a failing check). */
  setExitCode(code: ExitCode): void;
}
