import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';

/** AWS credentials as every SDK credential provider returns them. */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
  expiration?: Date | undefined;
}
export type CredentialsProvider = () => Promise<Credentials>;

/**
 * SHA-256 and HMAC-SHA-256 from node:crypto in the shape @smithy/signature-v4 takes (what
 * @smithy/hash-node does, without one more dependency).
 */
export class NodeSha256 {
  readonly #secret: Uint8Array | undefined;
  #hash: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#secret = secret === undefined ? undefined : bytes(secret);
    this.#hash = this.#fresh();
  }
  #fresh(): Hash | Hmac {
    return this.#secret ? createHmac('sha256', this.#secret) : createHash('sha256');
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(bytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#hash.digest()));
  }
  reset(): void {
    this.#hash = this.#fresh();
  }
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** `abc123.execute-api.eu-west-1.amazonaws.com` → eu-west-1 (also custom stages and VPC endpoints). */
export function regionFromHost(host: string): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(host)?.[1];
}

/**
 * The SDK's default chain (environment, SSO, shared config and credentials files, web identity,
 * ECS container credentials, EC2 instance metadata): what Lambda, ECS, EC2 and a laptop profile
 * each provide. Loaded only when a client signs without credentials of its own.
 */
async function defaultCredentials(): Promise<CredentialsProvider> {
  const { defaultProvider } = await import('@aws-sdk/credential-provider-node');
  return defaultProvider() as CredentialsProvider;
}

export interface SignableRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string | undefined;
}

export type Signer = (request: SignableRequest) => Promise<Record<string, string>>;

/** A SigV4 signer for service `execute-api`: returns the headers to send (the given ones plus the signature). */
export function sigV4Signer(options: {
  region: string;
  credentials?: Credentials | CredentialsProvider | undefined;
}): Signer {
  const given = options.credentials;
  let provider: Promise<CredentialsProvider> | undefined =
    typeof given === 'function'
      ? Promise.resolve(given)
      : given
        ? Promise.resolve(async () => given)
        : undefined;
  const signer = new SignatureV4({
    service: 'execute-api',
    region: options.region,
    sha256: NodeSha256,
    credentials: async () => {
      provider ??= defaultCredentials();
      return (await provider)();
    },
  });
  return async ({ method, url, headers, body }) => {
    const query: Record<string, string | string[]> = {};
    for (const [k, v] of url.searchParams) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    const signed = await signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query,
      // fetch sends Host itself, with this same value.
      headers: { ...headers, host: url.host },
      body,
    });
    const { host: _host, ...out } = signed.headers;
    return out;
  };
}
