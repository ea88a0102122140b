import { webcrypto } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import * as X509 from '@peculiar/x509';

/**
 * A private certificate authority made on the fly, and a server certificate it signs, for a
 * TLS MinIO in tests: what an operator's own CA looks like to the product (not a self-signed
 * leaf, which is a different trust problem).
 */

const EC: webcrypto.EcKeyGenParams & webcrypto.EcdsaParams = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const DAY_MS = 24 * 3600 * 1000;

export interface CertificateAuthority {
  /** The CA certificate, PEM. */
  pem: string;
  /** Path of `ca.pem` in `dir`. */
  file: string;
  dir: string;
  keys: webcrypto.CryptoKeyPair;
  cert: X509.X509Certificate;
}

export interface ServerCertificate {
  /** Holds `public.crt` (the leaf alone: a root is never sent, the client must already hold it) and `private.key` (PKCS#8 PEM): MinIO's `--certs-dir` layout. */
  dir: string;
  certPem: string;
  keyPem: string;
}

/** A root CA (`CN=<name>`) in a fresh temp dir, written as `ca.pem`. */
export async function createCertificateAuthority(name = 'Transcribo Test CA'): Promise<CertificateAuthority> {
  const keys = (await crypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await X509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${name}`,
    keys,
    signingAlgorithm: EC,
    // Back-dated a little: a clock a few seconds behind must not make a fresh CA "not yet valid".
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 30 * DAY_MS),
    extensions: [
      new X509.BasicConstraintsExtension(true, 0, true),
      new X509.KeyUsagesExtension(X509.KeyUsageFlags.keyCertSign | X509.KeyUsageFlags.cRLSign, true),
      await X509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'transcribo-ca-'));
  const pem = cert.toString('pem') + '\n';
  const file = join(dir, 'ca.pem');
  writeFileSync(file, pem);
  return { pem, file, dir, keys, cert };
}

/** A server certificate for `hosts` (IPs and DNS names as SANs), signed by `ca`, in a fresh temp dir. */
export async function createServerCertificate(
  ca: CertificateAuthority,
  hosts: string[] = ['127.0.0.1', 'localhost'],
): Promise<ServerCertificate> {
  const keys = (await crypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await X509.X509CertificateGenerator.create({
    subject: `CN=${hosts[0]}`,
    issuer: ca.cert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: EC,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 30 * DAY_MS),
    extensions: [
      new X509.BasicConstraintsExtension(false, undefined, true),
      new X509.KeyUsagesExtension(X509.KeyUsageFlags.digitalSignature, true),
      new X509.ExtendedKeyUsageExtension([X509.ExtendedKeyUsage.serverAuth]),
      new X509.SubjectAlternativeNameExtension(
        hosts.map((value) => ({ type: /^[\d.]+$|:/.test(value) ? 'ip' : 'dns', value }) as X509.JsonGeneralName),
      ),
      await X509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await X509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'transcribo-tls-'));
  const certPem = `${cert.toString('pem')}\n`;
  const keyPem = `${X509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY')}\n`;
  writeFileSync(join(dir, 'public.crt'), certPem);
  writeFileSync(join(dir, 'private.key'), keyPem, { mode: 0o600 });
  return { dir, certPem, keyPem };
}
