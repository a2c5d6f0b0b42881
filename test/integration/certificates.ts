/**
 * Certificates made in the test: a CA, server certificates for 127.0.0.1 and localhost, and
 * client certificates, all ECDSA P-256 through @peculiar/x509 over WebCrypto (node:crypto can
 * parse certificates but not issue them).
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

/** A certificate and its private key, PEM. */
export interface Issued {
  cert: string;
  key: string;
  serial: string;
}

/** A certificate authority that can issue more. */
export interface Authority extends Issued {
  issue(options: { subject: string; server?: boolean; client?: boolean; days?: number }): Promise<Issued>;
}

let serials = 1;
function nextSerial(): string {
  return (serials++).toString(16).padStart(4, '0');
}

async function keyPair(): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
}

async function pemKey(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** A new self-signed CA. */
export async function certificateAuthority(name = 'maas test CA'): Promise<Authority> {
  const keys = await keyPair();
  const serial = nextSerial();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial,
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  return {
    cert: ca.toString('pem'),
    key: await pemKey(keys.privateKey),
    serial,
    issue: async ({ subject, server = false, client = false, days = 30 }) => {
      const leafKeys = await keyPair();
      const leafSerial = nextSerial();
      const usages = [
        ...(server ? [x509.ExtendedKeyUsage.serverAuth] : []),
        ...(client ? [x509.ExtendedKeyUsage.clientAuth] : []),
      ];
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: leafSerial,
        subject,
        issuer: ca.subject,
        notBefore: new Date(Date.now() - DAY),
        notAfter: new Date(Date.now() + days * DAY),
        signingKey: keys.privateKey,
        publicKey: leafKeys.publicKey,
        signingAlgorithm: ALGORITHM,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          ...(usages.length > 0 ? [new x509.ExtendedKeyUsageExtension(usages)] : []),
          ...(server
            ? [
                new x509.SubjectAlternativeNameExtension([
                  { type: 'dns', value: 'localhost' },
                  { type: 'ip', value: '127.0.0.1' },
                ]),
              ]
            : []),
        ],
      });
      return { cert: leaf.toString('pem'), key: await pemKey(leafKeys.privateKey), serial: leafSerial };
    },
  };
}
