import { keyId } from '../../credential/key.js';
import type { StoredCredential } from '../../credential/model.js';
import type { DueClaim, DueIndex } from '../../store/contract.js';

export interface ClaimedBatch {
  claimed: StoredCredential[];
  /**
   * The claims whose expired lease was another holder's, and whose. Should the AS reject such
   * a refresh token, that holder most likely spent it (EngineContext.previousHolder).
   */
  takenOver: Map<StoredCredential, string>;
}

/** Claim a batch from the due index, keeping whose expired lease each claim took over. */
export async function claimBatch(
  index: DueIndex,
  claim: Omit<DueClaim, 'onTakeover'>,
): Promise<ClaimedBatch> {
  const previous = new Map<string, string>();
  const claimed = await index.claimDueCredentials({
    ...claim,
    onTakeover: (key, owner) => previous.set(keyId(key), owner),
  });
  const takenOver = new Map<StoredCredential, string>();
  for (const cred of claimed) {
    const owner = previous.get(keyId(cred.key));
    if (owner !== undefined) takenOver.set(cred, owner);
  }
  return { claimed, takenOver };
}
