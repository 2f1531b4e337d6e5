/**
 * Making untrusted text safe to show a human: a config file's keys, values
 * and name end up in problem messages, and those messages reach terminals
 * (`sfu-agent validate`, `sfu-agent status`), logs and the agent's /status.
 *
 * - {@link escapeControlChars}: no byte of the text can drive a terminal
 *   (escape sequences, bell, carriage return, bidirectional overrides).
 * - {@link redactUserinfo}: `scheme:user:password@host` never shows the
 *   userinfo.
 * - {@link capText}: one message cannot be megabytes long.
 * - {@link isSecretKey}: which mapping keys hold secrets, so that text under
 *   them is never quoted.
 */

/** Longest problem message text kept, in UTF-16 code units (an ellipsis marks the cut). */
export const MAX_MESSAGE_CHARS = 300;

/**
 * C0 controls, DEL, C1 controls, the Unicode line/paragraph separators, and
 * the bidirectional marks, embeddings, overrides and isolates (which can make
 * a terminal show text in another order than it is).
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Escapes every control character of `text` (C0, DEL, C1, U+2028/U+2029 and
 * the bidi controls) as `\xHH` or `\uHHHH`, so that printing the result can
 * neither move the cursor, ring the bell, retitle the window nor reorder what
 * is shown. Other text, backslashes included, is unchanged.
 *
 * @example escapeControlChars("a\u001b[2Jb") === "a\\x1b[2Jb"
 */
export function escapeControlChars(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/** `scheme:` (optionally `//`) then userinfo (no whitespace, quote, `/` or `@`) then `@`. */
const USERINFO = /\b([A-Za-z][A-Za-z0-9+.-]*:(?:\/\/)?)[^\s"'`/@]+@/g;

/**
 * Replaces the userinfo of every URI in `text` by `***`:
 * `turn:alice:pw@turn.example.com` becomes `turn:***@turn.example.com`.
 */
export function redactUserinfo(text: string): string {
  return text.replace(USERINFO, "$1***@");
}

/** Names of mapping keys whose values are secrets (case-insensitive substrings). */
const SECRET_KEY = /credential|password|passwd|secret|token/i;

/** True when a value under mapping key `key` must never be quoted (credential, password, secret, token...). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/**
 * `text` cut to at most `max` UTF-16 code units, the cut marked with an
 * ellipsis (never splitting a surrogate pair).
 */
export function capText(text: string, max = MAX_MESSAGE_CHARS): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}

/**
 * The text of a problem message as shown anywhere: URI userinfo redacted,
 * control characters escaped, length capped.
 */
export function safeMessage(text: string): string {
  return capText(escapeControlChars(redactUserinfo(text)));
}
