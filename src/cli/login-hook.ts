/**
 * The one module of the CLI that imports the interactive login flows. It is loaded only by
 * the commands that may log in (`login`, `proxy` when a login is needed, `demo`), with
 * `import()` where a command can run without one: the flows bring the loopback listener,
 * the browser launcher and the QR renderer, which a proxy with a valid credential never uses.
 */
export { chooseFlow, createLoginHook, type LoginOptions } from '../login/login.js';
export { stderrDevicePrompt } from '../login/device-prompt.js';
export { storedIdpSession } from '../login/idp-session.js';
