/**
 * What a subject (an application's user id) may be, in one place: the path parameter, a
 * JWT's `sub`, an app key's subject prefix and the OpenAPI documents all hold to it. The
 * characters are URL- and log-safe, so a subject never needs escaping in a link or a line.
 */
const SUBJECT_CHARS = 'A-Za-z0-9._:@+-';

/** Longest subject, in characters. */
export const SUBJECT_MAX = 200;

/** The rule as a JSON Schema / OpenAPI `pattern`. */
export const SUBJECT_PATTERN = `^[${SUBJECT_CHARS}]{1,${SUBJECT_MAX}}$`;

const SUBJECT = new RegExp(SUBJECT_PATTERN);
const SUBJECT_CHARACTERS = new RegExp(`^[${SUBJECT_CHARS}]+$`);

export function isSubject(text: string): boolean {
  return SUBJECT.test(text);
}

/** Whether `text` is made of subject characters and at most `max` long (a prefix). */
export function isSubjectPart(text: string, max: number): boolean {
  return text.length <= max && SUBJECT_CHARACTERS.test(text);
}
