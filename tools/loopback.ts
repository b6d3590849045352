/**
 * Guards for the two unauthenticated-by-network servers on 127.0.0.1 (the local engine's API and
 * the operator dashboard) against other sites in the operator's own browser:
 *
 * - DNS rebinding: a page on evil.example whose name is re-pointed at 127.0.0.1 reaches us with
 *   `Host: evil.example`. Only loopback names are answered.
 * - Cross-site requests: a page can send "simple" requests without our consent (a bodiless
 *   `<form method=POST>`, `fetch(…, { mode: 'no-cors' })` with a text/plain or typeless body).
 *   A state change therefore needs what only a consenting origin can send: here a JSON
 *   Content-Type (it forces a CORS preflight, which we never grant), and an Origin, when the
 *   browser sends one, that is a loopback origin.
 *
 * The deployed API is different: every request is signed (SigV4) or carries a JWT, there is no
 * ambient credential a page could ride on, so it accepts a POST without a Content-Type as JSON
 * (a SigV4-signing client need not send one; see functions/http/body.ts).
 */
import type { IncomingMessage } from 'node:http';
import { isJsonMediaType } from '../functions/http/body.ts';
import { HttpError } from '../functions/http/errors.ts';

const LOOPBACK_HOST = /^(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?$/i;
const LOOPBACK_ORIGIN = /^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?$/i;

export const isLoopbackHost = (host: string | undefined): boolean =>
  host !== undefined && LOOPBACK_HOST.test(host.trim());

/** Reads may come from any loopback client; anything else is refused (DNS rebinding). */
export function checkHost(req: IncomingMessage): void {
  if (!isLoopbackHost(req.headers.host)) {
    throw new HttpError(
      403,
      'host_not_allowed',
      'this server answers only to localhost, 127.0.0.1 or [::1] (Host header)',
    );
  }
}

/** A browser's Origin, when sent, must be a loopback origin; `null` (sandboxed, file:) is refused. */
export function checkOrigin(req: IncomingMessage): void {
  const origin = req.headers.origin;
  if (origin !== undefined && !LOOPBACK_ORIGIN.test(origin)) {
    throw new HttpError(403, 'cross_origin_refused', 'a change is accepted only from a loopback origin');
  }
}

/**
 * What a state-changing request to the local API needs: a loopback Host and Origin, and a JSON
 * Content-Type even when it has no body (`curl -X POST …/cancel -H 'Content-Type: application/json'`).
 */
export function checkLocalChange(req: IncomingMessage): void {
  checkHost(req);
  checkOrigin(req);
  if (!isJsonMediaType(req.headers['content-type'])) {
    throw new HttpError(
      415,
      'unsupported_media_type',
      'a change on the local engine needs Content-Type: application/json (with or without a body): other sites can send any other type',
    );
  }
}
