import type middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { HttpError } from './errors.ts';
import { MAX_PAYLOAD_DEPTH } from './validate.ts';

/**
 * The api's JSON body parser (instead of @middy/http-json-body-parser, which matched media types
 * case-sensitively, ignored charsets, answered 415 to every malformed body and let JSON.parse
 * round integers past 2^53 and keep the last of duplicate keys without a word).
 *
 * Deliberate choice (issue 16): a POST without a Content-Type is parsed as JSON. A SigV4-signing
 * client need not send one to the IAM-authorized API, and the deployed API authenticates every
 * request with SigV4 or a JWT, so there is no ambient credential a cross-site page could ride
 * on. The local engine, which has no authentication, refuses such POSTs before they get here
 * (tools/local-engine.ts).
 */

/** Nesting allowed in the whole body: a payload's own limit plus the batch envelope around it. */
const MAX_BODY_DEPTH = MAX_PAYLOAD_DEPTH + 8;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const JSON_TYPE = /^application\/([a-z0-9!#$&^_.+-]+\+)?json$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The media type and charset of a Content-Type header: case-insensitive (RFC 9110 8.3.1),
 * quoted parameter values unquoted.
 */
export function parseMediaType(header: string): { type: string; charset: string | undefined } {
  const [type, ...params] = header.split(';');
  let charset: string | undefined;
  for (const p of params) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    if (p.slice(0, eq).trim().toLowerCase() === 'charset')
      charset = p
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1')
        .toLowerCase();
  }
  return { type: type!.trim().toLowerCase(), charset };
}

/** True when a Content-Type names JSON (application/json or application/*+json), whatever its case. */
export function isJsonMediaType(header: string | undefined): boolean {
  return header !== undefined && JSON_TYPE.test(parseMediaType(header).type);
}

function checkContentType(header: string | undefined): void {
  if (header === undefined || header.trim() === '') return;
  const { type, charset } = parseMediaType(header);
  if (!JSON_TYPE.test(type))
    throw new HttpError(415, 'unsupported_media_type', 'Content-Type must be application/json');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new HttpError(415, 'unsupported_media_type', 'JSON bodies must be UTF-8 (charset=utf-8)', {
      charset,
    });
  }
}

const invalid = (message: string, code = 'invalid_json', details?: unknown) =>
  new HttpError(400, code, message, details);

/**
 * One pass over JSON text before JSON.parse sees it, for what JSON.parse hides: duplicate keys
 * (it keeps the last), integers past 2^53 (it rounds them) and nesting deep enough to overflow
 * the recursive code after it. No recursion here; malformed text is left for JSON.parse to refuse.
 */
export function scanJson(text: string, maxDepth = MAX_BODY_DEPTH): void {
  const keys: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (keys.length >= maxDepth) {
        throw invalid(`the body is nested deeper than ${maxDepth} levels`, 'payload_too_deep', {
          limit: maxDepth,
        });
      }
      keys.push(c === 0x7b ? new Set() : null);
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      keys.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = keys.length > 0 && keys[keys.length - 1] !== null;
    } else if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (expectKey) {
        const raw = text.slice(i, j + 1);
        let key = raw;
        try {
          key = JSON.parse(raw) as string;
        } catch {
          // Malformed: JSON.parse refuses the whole body next.
        }
        const seen = keys[keys.length - 1]!;
        if (seen.has(key)) {
          throw invalid(
            `duplicate key ${JSON.stringify(key.slice(0, 40))} in a JSON object`,
            'duplicate_key',
          );
        }
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < text.length && /[0-9.eE+-]/.test(text[j]!)) j++;
      const literal = text.slice(i, j);
      if (/^-?[0-9]{16,}$/.test(literal) && (BigInt(literal) > MAX_SAFE || BigInt(literal) < -MAX_SAFE)) {
        throw invalid(
          `the integer ${literal.slice(0, 40)} is beyond ±(2^53-1) and would lose precision; send it as a string`,
          'unsafe_integer',
        );
      }
      i = j - 1;
    }
  }
}

/** The body as text: base64 decoded when API Gateway says so, and valid UTF-8 either way. */
function bodyText(event: APIGatewayProxyEventV2): string {
  if (!event.isBase64Encoded) return event.body!;
  try {
    return UTF8.decode(Buffer.from(event.body!, 'base64'));
  } catch {
    throw invalid('the body is not valid UTF-8');
  }
}

/** Parses a POST's JSON body when there is one, so GETs and body-less cancels pass through. */
export function jsonBody(): middy.MiddlewareObj<APIGatewayProxyEventV2> {
  return {
    before: async (request) => {
      const { event } = request;
      const { body } = event;
      if (event.requestContext?.http?.method !== 'POST' || body === undefined || body === null || body === '')
        return;
      checkContentType(event.headers?.['content-type']);
      const text = bodyText(event);
      scanJson(text);
      try {
        (event as { body: unknown }).body = JSON.parse(text);
      } catch {
        throw invalid('the body is not valid JSON');
      }
    },
  };
}
