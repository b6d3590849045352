import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** 32 random bytes, hex: 256 bits, nothing to guess in the lifetime of a dashboard. */
export function newToken(): string {
  return randomBytes(32).toString('hex');
}

/** A DASHBOARD_TOKEN shorter than this is refused at start: it would be guessable over loopback. */
export const MIN_TOKEN_LENGTH = 24;
export const TOKEN_HEADER = 'x-dashboard-token';

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/**
 * Constant-time comparison: both sides hashed first, so neither the length nor the first
 * differing byte of the real token shows in the response time.
 */
export function tokenMatches(expected: string, given: string | undefined | null): boolean {
  if (typeof given !== 'string' || given.length === 0 || given.length > 1024) return false;
  return timingSafeEqual(digest(expected), digest(given));
}

/**
 * The cookie's name carries a fingerprint of the token: cookies are not scoped by port, so
 * two dashboards on 127.0.0.1 (npm start and taskctl dashboard) must not overwrite each other's.
 */
export function cookieName(token: string): string {
  return `dte_dashboard_${digest(token).toString('hex').slice(0, 12)}`;
}

/**
 * The cookie's value: derived from the token, good for reads only. Cookies are not separated by
 * port, so any other service on 127.0.0.1 the browser visits receives it; with the token itself
 * in it, that service could make changes. This value cannot be turned back into the token.
 */
export function readSession(token: string): string {
  return createHmac('sha256', token).update('dte-dashboard read session').digest('hex');
}

/** HttpOnly: page scripts never read it; SameSite=Strict: no other site's page can send it. */
export function sessionCookie(token: string): string {
  return `${cookieName(token)}=${readSession(token)}; Path=/; HttpOnly; SameSite=Strict`;
}

function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export interface Credentials {
  header: string | undefined;
  query: string | null;
  cookie: string | undefined;
}

export function credentialsOf(req: IncomingMessage, url: URL, token: string): Credentials {
  const h = req.headers[TOKEN_HEADER];
  return {
    header: Array.isArray(h) ? h[0] : h,
    query: url.searchParams.get('token'),
    cookie: readCookie(req, cookieName(token)),
  };
}

/**
 * Reads may use the token (header or the printed URL's ?token=) or the read-session cookie
 * (later loads and assets). A state change needs the token itself in the header: a cookie is sent
 * by the browser on its own and a query string ends up in logs and history, while a custom
 * header can only be set by our own page's script (another origin would need CORS, never granted).
 * `'token'`: the real token was shown; `'session'`: only the cookie; undefined: refused.
 */
export function authorized(
  token: string,
  c: Credentials,
  mutating: boolean,
): 'token' | 'session' | undefined {
  if (tokenMatches(token, c.header)) return 'token';
  if (mutating) return undefined;
  if (tokenMatches(token, c.query)) return 'token';
  return tokenMatches(readSession(token), c.cookie) ? 'session' : undefined;
}
