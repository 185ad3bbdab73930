import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { TOKEN, type PullAccess } from '../../protocol/tokens.js';

/**
 * A stand-in for the control plane's side of pull tokens: a real HTTP server on loopback serving
 * the JWKS of a real Ed25519 key, and tokens signed with it the way the control plane signs them.
 */
export interface PullTokenIssuer {
  /** Base URL to give the proxy as its control plane. */
  url: string;
  mint(subject: string, access: PullAccess): Promise<string>;
  close(): Promise<void>;
}

export async function startPullTokenIssuer(): Promise<PullTokenIssuer> {
  const kid = 'issuer-' + process.pid;
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const keys = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' }] });
  const server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(keys);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    mint: (subject, access) =>
      new SignJWT({ access })
        .setProtectedHeader({ alg: 'EdDSA', typ: TOKEN.pullTyp, kid })
        .setIssuer(TOKEN.issuer)
        .setAudience(TOKEN.pullAudience)
        .setSubject(subject)
        .setIssuedAt()
        .setExpirationTime('10m')
        .sign(privateKey),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
