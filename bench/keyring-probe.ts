import { randomUUID } from 'node:crypto';

/** Whether an OS keyring answers here (a throwaway entry is written and removed). */
export async function keyringAvailable(): Promise<boolean> {
  try {
    const { AsyncEntry } = await import('@napi-rs/keyring');
    const entry = new AsyncEntry('latchkey-probe', randomUUID(), { linux: { store: 'secret-service' } });
    await entry.setPassword('probe');
    await entry.deleteCredential();
    return true;
  } catch {
    return false;
  }
}
