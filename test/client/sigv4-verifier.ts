import { createHash, createHmac, type Hash, type Hmac, timingSafeEqual } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';

/**
 * What API Gateway's IAM authorization checks, rebuilt with @smithy/signature-v4 (the library
 * the client signs with): the credential scope, the payload hash against the body actually
 * received, and the signature over the headers the request says it signed, recomputed with the
 * secret this side knows for the access key. Its hash is written here, not imported from the
 * client, so a wrong client hash cannot agree with itself.
 */
class VerifierSha256 {
  readonly #secret: Buffer | undefined;
  #h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#secret = secret === undefined ? undefined : toBuffer(secret);
    this.#h = this.#secret ? createHmac('sha256', this.#secret) : createHash('sha256');
  }
  update(data: string | ArrayBuffer | ArrayBufferView) {
    this.#h.update(toBuffer(data));
  }
  async digest() {
    return new Uint8Array(this.#h.digest());
  }
  reset() {
    this.#h = this.#secret ? createHmac('sha256', this.#secret) : createHash('sha256');
  }
}

function toBuffer(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

export interface ReceivedRequest {
  method: string;
  host: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string>;
  body: string;
}

export type Verdict = { ok: true; accessKeyId: string } | { ok: false; reason: string };

const AUTH =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/;

export function sigV4Verifier(opts: {
  region: string;
  service?: string;
  secrets: Record<string, string>;
}): (req: ReceivedRequest) => Promise<Verdict> {
  const service = opts.service ?? 'execute-api';
  return async (req) => {
    const m = AUTH.exec(req.headers.authorization ?? '');
    if (!m) return { ok: false, reason: 'missing or malformed Authorization' };
    const [, accessKeyId, , region, svc, signedList, signature] = m as unknown as string[];
    if (region !== opts.region || svc !== service) return { ok: false, reason: 'wrong credential scope' };
    const secret = opts.secrets[accessKeyId!];
    if (secret === undefined) return { ok: false, reason: 'unknown access key' };
    const amzDate = req.headers['x-amz-date'] ?? '';
    const d = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
    if (!d) return { ok: false, reason: 'missing x-amz-date' };
    const signingDate = new Date(Date.UTC(+d[1]!, +d[2]! - 1, +d[3]!, +d[4]!, +d[5]!, +d[6]!));
    if (Math.abs(Date.now() - signingDate.getTime()) > 5 * 60_000) return { ok: false, reason: 'clock skew' };
    const bodyHash = createHash('sha256').update(req.body).digest('hex');
    const claimed = req.headers['x-amz-content-sha256'];
    if (claimed !== undefined && claimed !== bodyHash) return { ok: false, reason: 'payload hash mismatch' };
    const signed = signedList!.split(';');
    if (!signed.includes('host')) return { ok: false, reason: 'host not signed' };
    const headers: Record<string, string> = {};
    for (const h of signed) {
      const v = h === 'host' ? req.host : req.headers[h];
      if (v === undefined) return { ok: false, reason: `signed header ${h} missing` };
      headers[h] = v;
    }
    const query: Record<string, string | string[]> = {};
    for (const [k, v] of req.query) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    const [hostname, port] = req.host.split(':');
    const signer = new SignatureV4({
      service,
      region: opts.region,
      sha256: VerifierSha256,
      credentials: {
        accessKeyId: accessKeyId!,
        secretAccessKey: secret,
        ...(headers['x-amz-security-token'] ? { sessionToken: headers['x-amz-security-token'] } : {}),
      },
    });
    const again = await signer.sign(
      {
        method: req.method,
        protocol: 'http:',
        hostname: hostname!,
        ...(port ? { port: Number(port) } : {}),
        path: req.path,
        query,
        headers,
        body: req.body === '' ? undefined : req.body,
      },
      { signingDate },
    );
    const expected = /Signature=([0-9a-f]{64})$/.exec(again.headers.authorization ?? '')?.[1] ?? '';
    const ok =
      expected.length === signature!.length &&
      timingSafeEqual(Buffer.from(expected), Buffer.from(signature!));
    return ok ? { ok: true, accessKeyId: accessKeyId! } : { ok: false, reason: 'signature mismatch' };
  };
}
