/**
 * One copy of each short string that many stored credentials repeat (the server, the
 * issuer, the token type, the client id). A database driver returns a fresh copy per row,
 * so a process caching 10k credentials of one server held 10k copies of its URL; they are
 * small, but V8 lets a heap grow to several times what it keeps, so what a cached
 * credential keeps counts several times in RSS (issue 16). Never given secrets.
 *
 * Bounded: when full it starts over, which costs only sharing, never correctness (a
 * string's identity cannot be observed in JavaScript).
 */
export class StringTable {
  readonly #strings = new Map<string, string>();

  constructor(
    /** Most strings held. */
    readonly limit = 512,
    /** Longer strings are returned as they are: they are rarely repeated. */
    readonly maxLength = 256,
  ) {}

  get size(): number {
    return this.#strings.size;
  }

  /**
   * The held copy of `text`, which is held from now on if it was not. Anything but a
   * string (a field an older record lacks) comes back as it is.
   */
  share<T>(text: T): T {
    if (typeof text !== 'string' || text.length > this.maxLength) return text;
    const held = this.#strings.get(text);
    if (held !== undefined) return held as T;
    if (this.#strings.size >= this.limit) this.#strings.clear();
    this.#strings.set(text, text);
    return text;
  }
}
