/**
 * The host requests in flight, each with its deadline. A request is answered once: whatever
 * settles it first (its answer, its timeout, a cancel, the connection closing) wins, and its
 * exchange is stopped.
 */
import { idKey, type JsonRpcId, type JsonRpcRequest } from './jsonrpc.js';

export interface Pending {
  readonly request: JsonRpcRequest;
  /** The request's 2026-07-28 protocol version, when it is a modern (sessionless) request. */
  readonly revision: string | undefined;
  readonly abort: AbortController;
  readonly timer: NodeJS.Timeout | undefined;
  settled: boolean;
  /** A HeaderMismatch was answered by reading tools/list afresh; once per request. */
  relearned?: boolean;
  /** latchkey's own request: its answer is not the host's. */
  readonly internal: boolean;
}

export interface OpenOptions {
  readonly revision: string | undefined;
  readonly internal: boolean;
  /** The deadline, or undefined for a stream meant to stay open until cancelled. */
  readonly timeoutMs: number | undefined;
  readonly onTimeout: (pending: Pending) => void;
}

/** Why a settled request's exchange is stopped; one object, not a DOMException per answer. */
const ANSWERED = new Error('the request was answered');

export class PendingTable {
  readonly #byId = new Map<string, Pending>();

  /** Track `request`; a request the host reuses the id of is stopped. */
  open(request: JsonRpcRequest, options: OpenOptions): Pending {
    const { timeoutMs } = options;
    const pending: Pending = {
      request,
      revision: options.revision,
      abort: new AbortController(),
      internal: options.internal,
      settled: false,
      timer: timeoutMs === undefined ? undefined : setTimeout(() => options.onTimeout(pending), timeoutMs),
    };
    const key = idKey(request.id);
    this.#byId.get(key)?.abort.abort();
    this.#byId.set(key, pending);
    return pending;
  }

  /** Mark it answered and stop its exchange. False when it already was. */
  settle(pending: Pending, reason: unknown = ANSWERED): boolean {
    if (pending.settled) return false;
    pending.settled = true;
    clearTimeout(pending.timer);
    pending.abort.abort(reason);
    const key = idKey(pending.request.id);
    if (this.#byId.get(key) === pending) this.#byId.delete(key);
    return true;
  }

  /** The host gave up on a request: the spec says no answer follows. */
  cancel(id: unknown): void {
    if (typeof id !== 'string' && typeof id !== 'number') return;
    const pending = this.#byId.get(idKey(id as JsonRpcId));
    if (pending !== undefined) this.settle(pending, undefined);
  }

  values(): Pending[] {
    return [...this.#byId.values()];
  }
}
