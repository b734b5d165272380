// `npm run bench dpop`: what a DPoP proof costs per MCP request (docs/dpop.md). The proxy
// bench seeds its credential with the harness's token helper, which has no proof key, so its
// figures are bearer figures; this one isolates the proof: one ES256 signature, a fresh jti
// and, for a new token, its SHA-256 (`ath`).
import { DPoPSigner, generateDPoPPrivateJwk } from '../src/oauth/dpop-proof.js';

export function benchDPoP(durationMs = 1000): Record<string, string> {
  const signer = new DPoPSigner(generateDPoPPrivateJwk());
  const url = new URL('https://mcp.example.com/mcp?session=1');
  const token = 'x'.repeat(43);
  for (let i = 0; i < 200; i++) signer.proof('POST', url, token); // warm-up (JIT)
  const sameToken = rate(durationMs, () => signer.proof('POST', url, token));
  let n = 0;
  const newToken = rate(durationMs, () => signer.proof('POST', url, `${token}${n++}`));
  return {
    'proofs/s, same token (the steady state)': sameToken.toFixed(0),
    'us per proof, same token': (1e6 / sameToken).toFixed(1),
    'proofs/s, a new token each time (ath hashed)': newToken.toFixed(0),
  };
}

function rate(durationMs: number, work: () => unknown): number {
  let count = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(durationMs) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 50; i++) work();
    count += 50;
    now = process.hrtime.bigint();
  }
  return count / (Number(now - start) / 1e9);
}
