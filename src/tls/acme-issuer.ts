import http from 'node:http';
import https from 'node:https';
import type * as Acme from 'acme-client';
import type { Logger } from '../log.js';
import type { CertificateStorage, KeyPair } from './storage.js';

/** Gets a certificate for one host name; the manager's only view of ACME, so its policy is tested with a fake. */
export interface CertificateIssuer {
  issue(host: string): Promise<KeyPair>;
}

/** Where the HTTP-01 key authorizations go: the plain listener answers them (README, HTTPS). */
export interface ChallengeBoard {
  set(token: string, keyAuthorization: string): void;
  remove(token: string): void;
}

/** An order that failed; the message names the directory or the ACME server's own words. */
export class AcmeError extends Error {
  override readonly name = 'AcmeError';
}

export interface AcmeIssuerOptions {
  directoryUrl: string;
  email: string | null;
  /** PEM trusted for the directory's own HTTPS (`acme_ca_file`), or null for the system's CAs. */
  caPem: string | null;
  storage: CertificateStorage;
  challenges: ChallengeBoard;
  logger: Logger;
}

type AcmeModule = typeof Acme;
let acmeModule: Promise<AcmeModule> | null = null;

/**
 * acme-client, loaded on the first order: it brings axios and node-forge,
 * memory a gateway without ACME certificates does not need. Its axios
 * instance is shared by every client, so the settings made here are the
 * process's: a request that fails is retried once (its default of five
 * with growing waits turns an unreachable directory into 75 s of silence),
 * and none waits more than 10 s.
 */
function loadAcme(): Promise<AcmeModule> {
  acmeModule ??= import('acme-client').then((mod) => {
    const acme = ((mod as unknown as { default?: AcmeModule }).default ?? mod) as AcmeModule;
    const settings = (acme.axios.defaults as unknown as { acmeSettings: Record<string, number> }).acmeSettings;
    settings.retryMaxAttempts = 1;
    settings.retryDefaultDelay = 1;
    acme.axios.defaults.timeout = 10_000;
    return acme;
  });
  return acmeModule;
}

/**
 * Orders certificates from an ACME directory (RFC 8555) by HTTP-01, with
 * acme-client: one account per directory, its key in storage; every
 * certificate key ECDSA P-256 (README, HTTPS: keys).
 */
export class AcmeIssuer implements CertificateIssuer {
  private client: Promise<Acme.Client> | null = null;
  private readonly log: Logger;

  constructor(private readonly options: AcmeIssuerOptions) {
    this.log = options.logger;
  }

  async issue(host: string): Promise<KeyPair> {
    try {
      return await this.issueOnce(host);
    } catch (err) {
      // The server no longer knows the account (reset, or deactivated): look it up again or make a new one.
      if (!/account/i.test((err as Error).message) || !/not found|does not exist|unknown/i.test((err as Error).message))
        throw err;
      this.log.warn({ err: (err as Error).message }, 'ACME account not known to the server: opening it again');
      this.client = null;
      return this.issueOnce(host);
    }
  }

  private async issueOnce(host: string): Promise<KeyPair> {
    const acme = await loadAcme();
    const client = await this.account(acme);
    const { challenges, directoryUrl } = this.options;
    const keyPem = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
    const [, csr] = await acme.crypto.createCsr({ commonName: host, altNames: [host] }, keyPem);
    const order = await this.step(`order for ${host}`, () =>
      client.createOrder({ identifiers: [{ type: 'dns', value: host }] }),
    );
    const authorizations = await this.step(`authorizations for ${host}`, () => client.getAuthorizations(order));
    for (const authz of authorizations) {
      if (authz.status === 'valid') continue;
      const challenge = authz.challenges.find((c) => c.type === 'http-01');
      if (!challenge) throw new AcmeError(`${directoryUrl} offers no http-01 challenge for ${host}`);
      const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
      challenges.set(challenge.token, keyAuthorization);
      try {
        await this.step(`challenge for ${host}`, () => client.completeChallenge(challenge));
        await this.step(`validation of ${host}`, () => client.waitForValidStatus(challenge));
      } finally {
        challenges.remove(challenge.token);
      }
    }
    // The order as finalizing left it: the one from before is `ready` when the CA reused a valid
    // authorization (pebble does at random), and acme-client then looks for a certificate URL it does not have.
    const finalized = await this.step(`finalizing the order for ${host}`, () => client.finalizeOrder(order, csr));
    const certPem = await this.step(`certificate for ${host}`, () => client.getCertificate(finalized));
    return { certPem, keyPem };
  }

  /** The account, created once per directory and looked up by its stored key after a restart. */
  private account(acme: AcmeModule): Promise<Acme.Client> {
    this.client ??= this.openAccount(acme).catch((err: unknown) => {
      this.client = null;
      throw err;
    });
    return this.client;
  }

  private async openAccount(acme: AcmeModule): Promise<Acme.Client> {
    const { directoryUrl, storage, email, caPem } = this.options;
    // No keep-alive: an agent per account opening would otherwise keep its idle sockets.
    acme.axios.defaults.httpsAgent = caPem ? new https.Agent({ ca: caPem }) : undefined;
    await this.probeDirectory();
    let accountKey = storage.readAccountKey();
    const stored = accountKey !== null;
    if (accountKey === null) {
      accountKey = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
      storage.writeAccountKey(accountKey);
    }
    const client = new acme.Client({
      directoryUrl,
      accountKey,
      // Polls for a pending validation start at 100 ms (its default, 5 s, makes an order take 0.3–10 s at random).
      backoffMin: 100,
      backoffMax: 10_000,
      backoffAttempts: 12,
    });
    if (stored) {
      // An existing account is looked up, not created again: a create with terms for a known key becomes
      // an account update, which servers (pebble) refuse, and every order after it would fail.
      try {
        await client.createAccount({ onlyReturnExisting: true });
        return client;
      } catch (err) {
        this.log.info({ directory: directoryUrl, err: (err as Error).message }, 'ACME account not found: creating it');
      }
    }
    await this.step('account', () =>
      client.createAccount({ termsOfServiceAgreed: true, ...(email ? { contact: [`mailto:${email}`] } : {}) }),
    );
    this.log.info({ directory: directoryUrl }, 'ACME account created');
    return client;
  }

  /**
   * Fetches the directory with Node's own client, so that an unreachable or
   * untrusted one says so: through acme-client's axios instance, a network
   * failure that has used up its retries ends in a TypeError about axios
   * internals.
   */
  private probeDirectory(): Promise<void> {
    const { directoryUrl, caPem } = this.options;
    const fail = (reason: string): AcmeError => new AcmeError(`ACME directory ${directoryUrl}: ${reason}`);
    return new Promise((resolve, reject) => {
      const url = new URL(directoryUrl);
      const get = url.protocol === 'http:' ? http.get : https.get;
      const req = get(url, { ...(caPem ? { ca: caPem } : {}), timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < 65_536) body += chunk;
        });
        res.on('end', () => {
          let directory: { newOrder?: unknown } | null = null;
          try {
            directory = JSON.parse(body) as { newOrder?: unknown };
          } catch {}
          if (res.statusCode === 200 && typeof directory?.newOrder === 'string') resolve();
          else reject(fail(`not an ACME directory (HTTP ${res.statusCode})`));
        });
        res.on('error', (err) => reject(fail(networkReason(err))));
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(fail(networkReason(err))));
    });
  }

  private async step<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof AcmeError) throw err;
      // acme-client turns a network failure into a TypeError about axios internals: when the
      // directory itself cannot be reached, that is the error to report.
      if (err instanceof TypeError || (err as { code?: string }).code) await this.probeDirectory();
      throw new AcmeError(`ACME ${what} at ${this.options.directoryUrl}: ${networkReason(err)}`);
    }
  }
}

/** A network or TLS failure as a person reads it; the server's own words otherwise. */
function networkReason(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const code = e.code ?? '';
  if (code === 'ECONNREFUSED') return 'connection refused (is the ACME server running?)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve its host name (${code})`;
  if (code === 'ECONNABORTED' || code === 'ETIMEDOUT') return 'no answer within 10 s';
  if (code.includes('CERT') || code.includes('SELF_SIGNED') || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')
    return `its HTTPS certificate is not trusted (${code}); set [tls] acme_ca_file to the CA that signed it`;
  return (e.message ?? String(err)).replace(/\s+/g, ' ').trim();
}
