/**
 * Reading at most so many bytes of an untrusted response body: the one place that does it,
 * for metadata, OAuth answers, MCP answers and error bodies alike. The rest of the body is
 * never read (the stream is cancelled), so a server cannot make latchkey buffer more.
 */
export interface BodyRead {
  /** What was read, never more than the limit. */
  bytes: Uint8Array;
  /** The body went on past the limit (`bytes` holds its first `limit` bytes). */
  over: boolean;
  /** The stream failed while reading; `bytes` holds what came before. */
  error?: unknown;
}

/** A body to read: a fetch ReadableStream, or anything that yields its chunks in order. */
export type BodySource = AsyncIterable<Uint8Array>;

export async function readBody(body: BodySource | null, limit: number): Promise<BodyRead> {
  if (body === null) return { bytes: new Uint8Array(), over: false };
  // Leaving the iterator early (over the limit) cancels the stream.
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const value of body) {
      if (size + value.byteLength > limit) {
        chunks.push(value.subarray(0, limit - size));
        return { bytes: Buffer.concat(chunks, limit), over: true };
      }
      chunks.push(value);
      size += value.byteLength;
    }
    return { bytes: Buffer.concat(chunks, size), over: false };
  } catch (error) {
    return { bytes: Buffer.concat(chunks, size), over: false, error };
  }
}

export function decodeText(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
