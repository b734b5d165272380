/**
 * The redaction registry's index (see redact.ts): records found by the last
 * TAIL_LENGTH characters of their secret, so scrubbing a text is a lookup at each position.
 *
 * A hash table of its own, because a Map was the largest part of what a cached credential
 * costs in memory (issue 16). A manager caching 10k credentials holds 20k tokens; a Map of
 * them kept three words per entry at twice the capacity the entries needed (its capacity
 * grows while deleted entries still occupy it), and each record was an object. Here a slot
 * is one word, the table is at most twice the records, and a token in the common state
 * (pinned by one holder) is its own record: the string, no object.
 */
export interface Held {
  readonly secret: string;
  /** Holders that pinned it and have not unpinned it. */
  pins: number;
  /** Among the newest released or added secrets. */
  recent: boolean;
}

/** A string is a secret pinned once and not recent; anything else is a Held. */
export type SecretRecord = string | Held;
type Slot = SecretRecord | SecretRecord[] | undefined;

/** No real token is shorter; shorter strings would scrub ordinary words. */
export const TAIL_LENGTH = 8;
const INITIAL_SLOTS = 64;

export function secretOf(record: SecretRecord): string {
  return typeof record === 'string' ? record : record.secret;
}

/** A number for the TAIL_LENGTH characters of `text` that end at `end`. */
function tailHash(text: string, end: number): number {
  let hash = 0;
  for (let at = end - TAIL_LENGTH; at < end; at++) hash = (Math.imul(hash, 31) + text.charCodeAt(at)) | 0;
  return hash;
}

export class SecretIndex {
  #slots: Slot[] = new Array<Slot>(INITIAL_SLOTS).fill(undefined);
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /**
   * The records whose secrets may end at `end` in `text` (the same last characters, or a
   * hash collision: compare before trusting one).
   */
  endingAt(text: string, end: number): SecretRecord | readonly SecretRecord[] | undefined {
    return this.#slots[this.#slotOf(text, end)];
  }

  get(secret: string): SecretRecord | undefined {
    const slot = this.#slots[this.#slotOf(secret, secret.length)];
    if (slot === undefined || !Array.isArray(slot))
      return slot !== undefined && secretOf(slot) === secret ? slot : undefined;
    return slot.find((record) => secretOf(record) === secret);
  }

  /** Add `record`, or replace the record of the same secret. */
  set(record: SecretRecord): void {
    const secret = secretOf(record);
    const at = this.#slotOf(secret, secret.length);
    const slot = this.#slots[at];
    if (slot === undefined) this.#slots[at] = record;
    else if (Array.isArray(slot)) {
      const found = slot.findIndex((other) => secretOf(other) === secret);
      if (found >= 0) {
        slot[found] = record;
        return;
      }
      slot.push(record);
    } else if (secretOf(slot) === secret) {
      this.#slots[at] = record;
      return;
    } else this.#slots[at] = [slot, record];
    this.#size++;
    if (this.#size > this.#slots.length) this.#resize(this.#slots.length * 2);
  }

  delete(secret: string): void {
    const at = this.#slotOf(secret, secret.length);
    const slot = this.#slots[at];
    if (slot === undefined) return;
    if (!Array.isArray(slot)) {
      if (secretOf(slot) !== secret) return;
      this.#slots[at] = undefined;
    } else {
      const found = slot.findIndex((other) => secretOf(other) === secret);
      if (found < 0) return;
      slot.splice(found, 1);
      if (slot.length === 1) this.#slots[at] = slot[0];
    }
    this.#size--;
    // Shrink when a quarter full, so a burst of held secrets does not keep its table.
    if (this.#slots.length > INITIAL_SLOTS && this.#size * 4 < this.#slots.length) {
      this.#resize(this.#slots.length / 2);
    }
  }

  #slotOf(text: string, end: number): number {
    return tailHash(text, end) & (this.#slots.length - 1);
  }

  #resize(length: number): void {
    const old = this.#slots;
    this.#slots = new Array<Slot>(length).fill(undefined);
    this.#size = 0;
    for (const slot of old) {
      if (slot === undefined) continue;
      for (const record of Array.isArray(slot) ? slot : [slot]) this.set(record);
    }
  }
}
