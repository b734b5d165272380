import { isLatchkeyError } from '../errors.js';
import type { WriteResult } from '../store/contract.js';
import { sleep } from './lease.js';

/** Waits between tries of a write that failed transiently in the in-flight window. */
const PERSIST_RETRY_MS = [100, 400, 1200];

/**
 * The write of tokens the AS has just rotated, tried again when the store fails transiently
 * (a lost connection, a timeout on a starved machine): given up at once, the new refresh
 * token is lost and the old one is dead, so the grant ends in needs-login. Trying again is
 * safe: the write is generation- and lease-checked, so one that did commit is refused the
 * second time, and one whose lease lapsed meanwhile is refused rather than applied late.
 */
export async function persistRotated(write: () => Promise<WriteResult>): Promise<WriteResult> {
  for (const wait of PERSIST_RETRY_MS) {
    try {
      return await write();
    } catch (error) {
      if (!isLatchkeyError(error) || !error.retryable) throw error;
      await sleep(wait);
    }
  }
  return write();
}
