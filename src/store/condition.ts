import type { WriteCondition, WriteResult } from './contract.js';

export type Refusal = Extract<WriteResult, { ok: false }>;

/**
 * Whether a conditional write may proceed, given the credential's current generation
 * (undefined: absent) and the current lease owner. Shared by every store so the contract's
 * compare-and-set semantics live in one place; each store only reads the two facts inside
 * its own transaction.
 */
export function refusal(
  current: number | undefined,
  leaseOwner: string | undefined,
  condition: WriteCondition,
): Refusal | undefined {
  if (condition.leaseOwner !== undefined && leaseOwner !== condition.leaseOwner) {
    return {
      ok: false,
      reason: 'lease-lost',
      ...(current === undefined ? {} : { currentGeneration: current }),
    };
  }
  const expected = condition.expectedGeneration;
  if (expected === 'any') return undefined;
  if (current === undefined) return expected === 0 ? undefined : { ok: false, reason: 'missing' };
  return current === expected
    ? undefined
    : { ok: false, reason: 'generation-mismatch', currentGeneration: current };
}
