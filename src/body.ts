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

export async function readBody(body: ReadableStream<Uint8Array> | null, limit: number): Promise<BodyRead> {
  if (body === null) return { bytes: new Uint8Array(), over: false };
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { bytes: Buffer.concat(chunks, size), over: false };
      if (size + value.byteLength > limit) {
        chunks.push(value.subarray(0, limit - size));
        await reader.cancel().catch(() => undefined);
        return { bytes: Buffer.concat(chunks, limit), over: true };
      }
      chunks.push(value);
      size += value.byteLength;
    }
  } catch (error) {
    return { bytes: Buffer.concat(chunks, size), over: false, error };
  } finally {
    reader.releaseLock();
  }
}

export function decodeText(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
