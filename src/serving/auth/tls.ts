/**
 * TLS for every endpoint from one set of files: the server's certificate and key, and for mutual
 * TLS a CA that client certificates must chain to. The files are watched; a new pair that parses
 * and matches replaces the old one for new connections (open ones keep theirs), and a pair caught
 * half-written, or that does not match, is reported and the one in force stays.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { watchFile, unwatchFile } from 'node:fs';
import type { experimental } from '@grpc/grpc-js';
import { MaasError, messageOf } from '../../core/errors.js';
import { readRegularFile } from '../../io/files.js';

/** Whether clients present certificates: not asked, asked and optional, or required. */
export type ClientCertificates = 'none' | 'optional' | 'required';

/** The TLS settings of `maas serve` (--tls-cert, --tls-key, --tls-ca, --tls-client-certs). */
export interface TlsSettings {
  /** PEM certificate chain of the server. */
  certFile: string;
  /** PEM private key of the server. */
  keyFile: string;
  /** PEM CA bundle client certificates must chain to (mutual TLS). */
  caFile?: string;
  /** Default 'required' with a CA, 'none' without. */
  clientCertificates?: ClientCertificates;
  /** How often the files are checked for changes (default 1 s). */
  reloadIntervalMs?: number;
}

/** The PEM material in force. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

/** Largest certificate, key or CA file read. */
const MAX_PEM_BYTES = 1024 * 1024;

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readRegularFile(path, MAX_PEM_BYTES, what);
  } catch (e) {
    throw new MaasError('MAAS_ERR_TLS_CONFIG', `Cannot read the ${what} ${path}: ${messageOf(e)}`, { cause: e });
  }
}

/** Reads and checks the files: each parses, and the key belongs to the certificate. */
export async function readTlsMaterial(settings: TlsSettings): Promise<TlsMaterial> {
  const [cert, key, ca] = await Promise.all([
    readPem(settings.certFile, 'TLS certificate'),
    readPem(settings.keyFile, 'TLS key'),
    settings.caFile === undefined ? undefined : readPem(settings.caFile, 'TLS CA bundle'),
  ]);
  try {
    new X509Certificate(cert);
    // Throws when the key does not parse or does not match the certificate ("key values mismatch").
    createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
  } catch (e) {
    throw new MaasError(
      'MAAS_ERR_TLS_CONFIG',
      `Expected a PEM certificate and the private key that matches it (${settings.certFile}, ${settings.keyFile}) but: ${messageOf(e)}`,
      { cause: e },
    );
  }
  return { cert, key, ...(ca ? { ca } : {}) };
}

/** What the client-certificate mode means for a TLS server's options. */
export function clientCertificateMode(settings: TlsSettings): ClientCertificates {
  const mode = settings.clientCertificates ?? (settings.caFile ? 'required' : 'none');
  if (mode !== 'none' && settings.caFile === undefined)
    throw new MaasError(
      'MAAS_ERR_AUTH_CONFIG',
      `Client certificates '${mode}' need a CA to check them against (--tls-ca)`,
    );
  return mode;
}

type IdentityListener = experimental.IdentityCertificateUpdateListener;
type CaListener = experimental.CaCertificateUpdateListener;

/**
 * The certificate files, kept current. It is a grpc-js CertificateProvider (the gRPC server's
 * credentials follow it) and calls onChange listeners with options for tls.Server's
 * setSecureContext (REST and metrics follow those).
 */
export class CertificateSource implements experimental.CertificateProvider {
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly caListeners = new Set<CaListener>();
  private readonly changeListeners = new Set<(options: SecureContextOptions) => void>();
  private readonly files: string[];
  private reading: Promise<void> | null = null;

  private constructor(
    readonly settings: TlsSettings,
    private material: TlsMaterial,
    private readonly onReload: (error: MaasError | null) => void,
  ) {
    this.files = [settings.certFile, settings.keyFile, ...(settings.caFile ? [settings.caFile] : [])];
  }

  /** Reads the files (refusing a bad pair: MAAS_ERR_TLS_CONFIG) and starts following them. */
  static async open(
    settings: TlsSettings,
    onReload: (error: MaasError | null) => void = () => {},
  ): Promise<CertificateSource> {
    clientCertificateMode(settings);
    const source = new CertificateSource(settings, await readTlsMaterial(settings), onReload);
    const interval = settings.reloadIntervalMs ?? 1000;
    for (const file of source.files)
      watchFile(file, { interval, persistent: false }, (now, before) => {
        if (now.mtimeMs !== before.mtimeMs || now.size !== before.size || now.ino !== before.ino) void source.reload();
      });
    return source;
  }

  /** The material in force. */
  get current(): TlsMaterial {
    return this.material;
  }

  /** Options for tls.createServer / setSecureContext from the material in force. */
  secureContextOptions(): SecureContextOptions {
    const { cert, key, ca } = this.material;
    return { cert, key, ...(ca ? { ca } : {}) };
  }

  /** Calls `listener` with new options each time the files change to a good pair. */
  onChange(listener: (options: SecureContextOptions) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Re-reads the files; a bad pair leaves the material in force (and is reported). */
  reload(): Promise<void> {
    // A change seen while reading is read again after, so the last write always wins.
    const read = async () => {
      try {
        this.material = await readTlsMaterial(this.settings);
      } catch (e) {
        this.onReload(e as MaasError);
        return;
      }
      for (const listener of this.changeListeners) listener(this.secureContextOptions());
      for (const listener of this.identityListeners) listener(this.identityUpdate());
      for (const listener of this.caListeners) listener(this.caUpdate());
      this.onReload(null);
    };
    this.reading = (this.reading ?? Promise.resolve()).then(read);
    return this.reading;
  }

  /** Stops following the files. */
  close(): void {
    for (const file of this.files) unwatchFile(file);
  }

  private identityUpdate(): experimental.IdentityCertificateUpdate {
    return { certificate: this.material.cert, privateKey: this.material.key };
  }

  private caUpdate(): experimental.CaCertificateUpdate | null {
    return this.material.ca ? { caCertificate: this.material.ca } : null;
  }

  // grpc-js adds its watcher after the providers' listeners: the first update must come after that.
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => this.identityListeners.has(listener) && listener(this.identityUpdate()));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => this.caListeners.has(listener) && listener(this.caUpdate()));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }
}
