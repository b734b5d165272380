/**
 * The user's side of a device login (RFC 8628) against the harness AS, on the demo's
 * browser stand-in (src/demo/login-driver.ts). Only tests need it: the demo signs in with the
 * authorization-code flow, and `latchkey demo --by-hand` leaves the device page to a person.
 */
import { CookieJar } from '../../src/demo/cookie-jar.js';
import { drive, excerpt, fill, hiddenValue } from '../../src/demo/login-driver.js';

export interface DeviceDriverOptions {
  subject: string;
  jar?: CookieJar;
}

/**
 * Approve a device authorization (RFC 8628) as the user would on another device: open the
 * verification URI, enter the user code, confirm, then log in and consent. Resolves once the
 * AS shows its success page; the polling client then receives its tokens.
 */
export async function approveDevice(
  verificationUri: string | URL,
  userCode: string,
  options: DeviceDriverOptions,
): Promise<void> {
  let codeEntered = false;
  const end = await drive(new URL(verificationUri), options.jar ?? new CookieJar(), (form, _html, url) => {
    const prompt = hiddenValue(form, 'prompt');
    if (prompt === 'login') return fill(form, url, { login: options.subject, password: 'test' });
    if (prompt === 'consent') return fill(form, url, {});
    if (form.inputs.some((i) => i.name === 'user_code' && i.type !== 'hidden')) {
      // The input page comes back (with an error message) when the code was not accepted.
      if (codeEntered) throw new Error(`the AS did not accept user code ${userCode} at ${url.href}`);
      codeEntered = true;
      return fill(form, url, { user_code: userCode });
    }
    if (hiddenValue(form, 'confirm') !== undefined) return fill(form, url, {});
    throw new Error(`unexpected device form at ${url.href}`);
  });
  if (end.kind !== 'page' || !/success/i.test(end.html)) {
    throw new Error(
      `device approval did not end on the success page (${end.url.href}): ${excerpt(end.kind === 'page' ? end.html : '')}`,
    );
  }
}
