/**
 * A Response over bytes already read whole, for the token client (token-http.ts).
 *
 * Why: an undici Response made over bytes builds a web ReadableStream for them, and `json()`
 * then reads that stream back through several layers of promises; with the store batched, a
 * CPU profile of the fleet refresher put about a tenth of its time there (issue 16). This one
 * is made with no body of its own and answers the body members from the bytes directly. It is
 * still a real Response (oauth4webapi checks that, and reads status and headers from it); a
 * caller that asks for `body` gets a stream over the same bytes, made then. A body reads once,
 * as fetch's does.
 */
const utf8 = new TextDecoder();

export class BufferedResponse extends Response {
  readonly #bytes: Uint8Array;
  readonly #init: ResponseInit;
  #used = false;
  #stream: ReadableStream<Uint8Array> | undefined;

  /** `init.headers` must already describe `bytes` (no wire length or encoding). */
  constructor(bytes: Uint8Array, init: ResponseInit) {
    super(null, init);
    this.#bytes = bytes;
    this.#init = init;
  }

  /** How many bytes the body holds, whether or not it was read. */
  get size(): number {
    return this.#bytes.byteLength;
  }

  /** Another like this one, unread, whether or not this one's body was read. */
  copy(): BufferedResponse {
    return new BufferedResponse(this.#bytes, this.#init);
  }

  static {
    // The lib typings declare Response's members as properties, so they are replaced on the
    // prototype here rather than overridden as methods.
    // Read or cancelled, the body is used (disturbed), as fetch's is; merely asked for, not yet.
    const body = (r: BufferedResponse): ReadableStream<Uint8Array> => {
      r.#stream ??= new ReadableStream<Uint8Array>(
        {
          pull: (controller) => {
            r.#used = true;
            controller.enqueue(r.#bytes.slice());
            controller.close();
          },
          cancel: () => {
            r.#used = true;
          },
        },
        { highWaterMark: 0 },
      );
      return r.#stream;
    };
    const used = (r: BufferedResponse): boolean => r.#used;
    const take = (r: BufferedResponse): Promise<Uint8Array> => {
      if (used(r)) return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
      r.#used = true;
      return Promise.resolve(r.#bytes);
    };
    const text = (r: BufferedResponse): Promise<string> => take(r).then((bytes) => utf8.decode(bytes));
    const members: Record<string, (this: BufferedResponse) => unknown> = {
      text(): Promise<string> {
        return text(this);
      },
      json(): Promise<unknown> {
        return text(this).then((t) => JSON.parse(t) as unknown);
      },
      arrayBuffer(): Promise<ArrayBuffer> {
        return take(this).then((bytes) => bytes.slice().buffer);
      },
      blob(): Promise<Blob> {
        return take(this).then((bytes) => new Response(bytes, this.#init).blob());
      },
      formData(): Promise<FormData> {
        return take(this).then((bytes) => new Response(bytes, this.#init).formData());
      },
      clone(): BufferedResponse {
        if (used(this)) throw new TypeError('Response.clone: Body has already been consumed');
        return this.copy();
      },
    };
    for (const [name, value] of Object.entries(members))
      Object.defineProperty(this.prototype, name, { value, writable: true, configurable: true });
    Object.defineProperty(this.prototype, 'body', {
      get(this: BufferedResponse) {
        return body(this);
      },
      configurable: true,
    });
    Object.defineProperty(this.prototype, 'bodyUsed', {
      get(this: BufferedResponse) {
        return used(this);
      },
      configurable: true,
    });
  }
}
