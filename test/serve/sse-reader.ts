// A small server-sent-events client for the serve tests: reads a real HTTP stream and keeps
// every message and comment it saw, so a test can wait for one.

export interface SseMessage {
  id: string | undefined;
  event: string | undefined;
  data: Record<string, unknown>;
}

export class SseReader {
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  /** Everything received, to check that no secret ever crossed the stream. */
  raw = '';
  ended = false;
  status = 0;
  readonly #abort = new AbortController();
  #done: Promise<void> = Promise.resolve();

  static async open(url: string, headers: Record<string, string>): Promise<SseReader> {
    const reader = new SseReader();
    const response = await fetch(url, {
      headers: { accept: 'text/event-stream', ...headers },
      signal: reader.#abort.signal,
    });
    reader.status = response.status;
    if (response.body !== null) reader.#done = reader.#read(response.body);
    return reader;
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body) {
        const text = decoder.decode(chunk, { stream: true });
        this.raw += text;
        buffer += text;
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          this.#frame(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch {
      // aborted by close()
    }
    this.ended = true;
  }

  #frame(frame: string): void {
    let id: string | undefined;
    let event: string | undefined;
    const data: string[] = [];
    for (const line of frame.split('\n')) {
      if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
      else if (line.startsWith('id: ')) id = line.slice(4);
      else if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length > 0) this.messages.push({ id, event, data: JSON.parse(data.join('\n')) });
  }

  /** The first message matching `match`, waiting up to `timeoutMs` for it. */
  async waitFor(match: (m: SseMessage) => boolean, timeoutMs = 10_000): Promise<SseMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found !== undefined) return found;
      if (Date.now() > deadline) {
        throw new Error(`no matching event within ${timeoutMs} ms; saw ${JSON.stringify(this.messages)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Resolves when the server ended the stream. */
  finished(): Promise<void> {
    return this.#done;
  }

  close(): Promise<void> {
    this.#abort.abort();
    return this.#done;
  }
}
