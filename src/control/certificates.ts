import type { GatewayConfig, TlsSettings } from '../config/schema.js';
import { MAX_TIMER_MS } from '../config/validator.js';
import type { CertificateData, DataPlane } from '../dataplane/data-plane.js';
import { GatewayOpError } from '../errors.js';
import type { Logger } from '../log.js';
import { AcmeIssuer, type CertificateIssuer, type ChallengeBoard } from '../tls/acme-issuer.js';
import { renewAt, retryDelay } from '../tls/renewal.js';
import { CertificateStorage, type KeyPair } from '../tls/storage.js';
import { type CertificateFacts, certificateFacts, coversHost, keyMatches, leafCertificate } from '../tls/x509.js';
import type { CertificateJson } from '../wire.js';

/** The soonest a new certificate is renewed, whatever its dates say. */
const MIN_RENEW_DELAY_MS = 10_000;

/** Makes the issuer for the `[tls]` settings: ACME in the gateway, a fake in policy tests. */
export type IssuerFactory = (
  tls: TlsSettings,
  storage: CertificateStorage,
  challenges: ChallengeBoard,
) => CertificateIssuer;

export interface CertificateManagerOptions {
  logger: Logger;
  dataPlane: Pick<DataPlane, 'publishCertificates' | 'publishChallenges'>;
  issuerFor?: IssuerFactory;
  /** The clock (ms since the epoch); tests move it with mock timers. */
  now?: () => number;
}

/** One host's certificate and what the gateway does about it. */
interface ManagedCertificate {
  host: string;
  app: string;
  source: 'acme' | 'file';
  state: CertificateJson['state'];
  pair: KeyPair | null;
  facts: CertificateFacts | null;
  /** For ACME: when to order next (renewal or retry), ms since the epoch. */
  nextOrderAt: number | null;
  lastError: string | null;
  /** Failed orders in a row, for the backoff. */
  failures: number;
  timer: NodeJS.Timeout | null;
  ordering: Promise<void> | null;
  /** Its host left the config: nothing is scheduled, nothing published for it. */
  retired: boolean;
}

/**
 * The certificates (README, HTTPS: lifecycle), in the control plane like
 * certmagic beside Caddy's config: it follows the running config, loads
 * ACME certificates from `storage` or orders them in the background,
 * renews each when a third of its lifetime is left (a timer per host),
 * retries failures with backoff (1 min doubling to 6 h) while a still
 * valid certificate keeps serving, and publishes every change to the data
 * plane as plain data, so new handshakes use it at once.
 */
export class CertificateManager {
  readonly orders = { ok: 0, failed: 0 };
  private readonly hosts = new Map<string, ManagedCertificate>();
  private readonly challenges = new Map<string, string>();
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly issuerFor: IssuerFactory;
  private config: GatewayConfig | null = null;
  private settingsKey = '';
  private issuer: CertificateIssuer | null = null;
  private storage: CertificateStorage | null = null;
  private version = 0;
  private stopped = false;
  /** Nothing is loaded or ordered before the listeners are up (an HTTP-01 check needs the plain one). */
  private started = false;
  private readonly board: ChallengeBoard;

  constructor(private readonly options: CertificateManagerOptions) {
    this.log = options.logger.child({ kind: 'tls' });
    this.now = options.now ?? Date.now;
    this.issuerFor =
      options.issuerFor ??
      ((tls, storage, challenges) =>
        new AcmeIssuer({
          directoryUrl: tls.acmeDirectory,
          email: tls.acmeEmail,
          caPem: tls.acmeCa,
          storage,
          challenges,
          logger: this.log,
        }));
    this.board = {
      set: (token, keyAuthorization) => {
        this.challenges.set(token, keyAuthorization);
        this.options.dataPlane.publishChallenges(Object.fromEntries(this.challenges));
      },
      remove: (token) => {
        if (this.challenges.delete(token))
          this.options.dataPlane.publishChallenges(Object.fromEntries(this.challenges));
      },
    };
  }

  /**
   * The running config changed (a reload, an admin edit, start-up): hosts
   * that gained a certificate source get theirs, removed ones stop being
   * renewed (their files stay), file certificates are taken as read.
   */
  follow(config: GatewayConfig): void {
    if (config === this.config || this.stopped) return;
    this.config = config;
    if (!this.started) return;
    const key = config.tls
      ? JSON.stringify([config.tls.acmeDirectory, config.tls.acmeEmail, config.tls.acmeCa, config.tls.storage])
      : '';
    const settingsChanged = key !== this.settingsKey;
    if (settingsChanged) {
      // Orders under way finish with the issuer they started with, and their result is not used.
      this.settingsKey = key;
      this.issuer = null;
      this.storage = config.tls ? new CertificateStorage(config.tls.storage, config.tls.acmeDirectory) : null;
    }
    const wanted = wantedCertificates(config);
    for (const [host, managed] of this.hosts) {
      const want = wanted.get(host);
      if (want === undefined || want.source !== managed.source) this.retire(managed);
    }
    if (settingsChanged) {
      // New ACME settings apply at once (README, `[tls]`): each host's certificate comes from the new
      // directory's folder, or is ordered there now (a failed host does not wait out its backoff); a
      // certificate already serving keeps serving until then.
      for (const managed of this.hosts.values()) {
        if (managed.source !== 'acme') continue;
        managed.failures = 0;
        this.clearTimer(managed);
        if (!managed.ordering) this.loadOrOrder(managed);
      }
    }
    for (const [host, want] of wanted) {
      const existing = this.hosts.get(host);
      // Re-inserted in the config's order, which list() follows.
      if (existing) {
        this.hosts.delete(host);
        this.hosts.set(host, existing);
      }
      if (existing) {
        existing.app = want.app;
        if (want.file) this.takeFile(existing, want.file);
        continue;
      }
      const managed: ManagedCertificate = {
        host,
        app: want.app,
        source: want.source,
        state: 'pending',
        pair: null,
        facts: null,
        nextOrderAt: null,
        lastError: null,
        failures: 0,
        timer: null,
        ordering: null,
        retired: false,
      };
      this.hosts.set(host, managed);
      if (want.file) this.takeFile(managed, want.file);
      else this.loadOrOrder(managed);
    }
    this.publish();
  }

  /** The listeners are up: certificates are loaded and ordered for the config followed so far. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const config = this.config;
    this.config = null;
    if (config) this.follow(config);
  }

  /** Every host's certificate, in config order. */
  list(): CertificateJson[] {
    return [...this.hosts.values()].map((m) => this.json(m));
  }

  /** `POST /admin/certificates/:host/renew`: orders now; resolves once new handshakes get the new certificate. */
  async renew(host: string): Promise<CertificateJson> {
    const managed = this.hosts.get(host.toLowerCase());
    if (!managed) throw new GatewayOpError('not_found', `no certificate for host "${host}"`);
    if (managed.source === 'file')
      throw new GatewayOpError('conflict', `"${host}" has a certificate from files: replace the files and reload`);
    try {
      await this.order(managed);
    } catch (err) {
      throw new GatewayOpError('upstream_error', (err as Error).message);
    }
    return this.json(managed);
  }

  stop(): void {
    this.stopped = true;
    for (const managed of this.hosts.values()) this.clearTimer(managed);
  }

  private takeFile(
    managed: ManagedCertificate,
    file: { certPem: string; keyPem: string; facts: CertificateFacts },
  ): void {
    if (managed.pair?.certPem === file.certPem && managed.pair.keyPem === file.keyPem) return;
    managed.pair = { certPem: file.certPem, keyPem: file.keyPem };
    managed.facts = file.facts;
    const expired = this.now() >= Date.parse(file.facts.notAfter);
    managed.lastError = expired ? `certificate expired at ${file.facts.notAfter}` : null;
    managed.state = expired ? 'failed' : 'valid';
    this.arm(managed);
  }

  /** A stored certificate that is still valid serves at once (a restart orders nothing); else an order starts. */
  private loadOrOrder(managed: ManagedCertificate): void {
    let stored: KeyPair | null = null;
    try {
      stored = this.storage?.read(managed.host) ?? null;
    } catch (err) {
      this.log.warn({ host: managed.host, err: (err as Error).message }, 'cannot read the stored certificate');
    }
    if (stored) {
      try {
        const facts = certificateFacts(leafCertificate(stored.certPem));
        // A pair written half (a crash between the key and the certificate) is not served: it is ordered again.
        const usable =
          this.now() < Date.parse(facts.notAfter) &&
          coversHost(facts.names, managed.host) &&
          keyMatches(leafCertificate(stored.certPem), stored.keyPem);
        if (usable) {
          managed.pair = stored;
          managed.facts = facts;
          managed.state = 'valid';
          managed.nextOrderAt = renewAt(Date.parse(facts.notBefore), Date.parse(facts.notAfter));
          this.log.info(
            { host: managed.host, app: managed.app, not_after: facts.notAfter },
            'certificate loaded from storage',
          );
          if (this.now() >= managed.nextOrderAt) this.orderInBackground(managed);
          else this.arm(managed);
          return;
        }
      } catch (err) {
        this.log.warn({ host: managed.host, err: (err as Error).message }, 'stored certificate unusable: ordering');
      }
    }
    this.orderInBackground(managed);
  }

  private orderInBackground(managed: ManagedCertificate): void {
    this.order(managed).catch(() => {
      // Logged, counted and rescheduled by order().
    });
  }

  /** One order for a host at a time; a second caller waits for the one under way. */
  private order(managed: ManagedCertificate): Promise<void> {
    if (managed.ordering) return managed.ordering;
    this.clearTimer(managed);
    // A failed host stays `failed` while it is tried again, rather than flapping through `pending`.
    managed.state = this.serving(managed) ? 'renewing' : managed.state === 'failed' ? 'failed' : 'pending';
    managed.ordering = this.runOrder(managed).finally(() => {
      managed.ordering = null;
    });
    return managed.ordering;
  }

  private async runOrder(managed: ManagedCertificate): Promise<void> {
    const { host } = managed;
    const started = this.now();
    // What the order was made under: a certificate from a directory the config no longer names is neither
    // stored in the new one's folder nor served (staging never ends up as production).
    const settingsKey = this.settingsKey;
    const storage = this.storage;
    try {
      const issuer = this.currentIssuer();
      this.log.info({ host, app: managed.app }, managed.pair ? 'renewing certificate' : 'ordering certificate');
      const pair = await issuer.issue(host);
      const facts = certificateFacts(leafCertificate(pair.certPem));
      if (!coversHost(facts.names, host)) throw new Error(`the issued certificate does not cover ${host}`);
      if (!keyMatches(leafCertificate(pair.certPem), pair.keyPem))
        throw new Error('the issued certificate is not for the key the gateway made');
      try {
        // Stored even if the host has just gone: the CA has issued it, and ordering it again costs rate limit.
        storage?.write(host, pair);
      } catch (err) {
        // Serving it matters more than keeping it: a restart would order it again.
        this.log.error({ host, err: (err as Error).message }, 'cannot store the new certificate; it serves anyway');
      }
      if (managed.retired || this.stopped) return;
      if (settingsKey !== this.settingsKey) {
        this.log.info({ host }, 'certificate obtained under the previous [tls] settings: ordering under the new ones');
        // Once this order has let go of the host (order() clears `ordering` after this returns).
        setImmediate(() => {
          if (!managed.retired && !this.stopped) this.loadOrOrder(managed);
        });
        return;
      }
      managed.pair = pair;
      managed.facts = facts;
      managed.state = 'valid';
      managed.lastError = null;
      managed.failures = 0;
      // Never sooner than MIN_RENEW_DELAY_MS: a certificate already due (a clock off, a tiny lifetime)
      // must not make an order loop.
      managed.nextOrderAt = Math.max(
        renewAt(Date.parse(facts.notBefore), Date.parse(facts.notAfter)),
        this.now() + MIN_RENEW_DELAY_MS,
      );
      this.orders.ok++;
      this.publish();
      this.log.info(
        {
          host,
          app: managed.app,
          serial: facts.serial,
          not_after: facts.notAfter,
          renew_at: new Date(managed.nextOrderAt).toISOString(),
          ms: this.now() - started,
        },
        `certificate for ${host} obtained`,
      );
      this.arm(managed);
    } catch (err) {
      if (managed.retired || this.stopped) throw err;
      this.orders.failed++;
      managed.failures++;
      managed.lastError = (err as Error).message;
      // A certificate that is still valid keeps serving, and its state stays valid (README, HTTPS: lifecycle).
      managed.state = this.serving(managed) ? 'valid' : 'failed';
      managed.nextOrderAt = this.now() + retryDelay(managed.failures);
      this.log.error(
        { host, app: managed.app, err: managed.lastError, retry_at: new Date(managed.nextOrderAt).toISOString() },
        `certificate order for ${host} failed`,
      );
      this.arm(managed);
      throw err;
    }
  }

  private currentIssuer(): CertificateIssuer {
    const tls = this.config?.tls;
    if (!tls || !this.storage) throw new Error('no [tls] table in the config');
    this.issuer ??= this.issuerFor(tls, this.storage, this.board);
    return this.issuer;
  }

  /** Its certificate is valid now. */
  private serving(managed: ManagedCertificate): boolean {
    return managed.pair !== null && managed.facts !== null && this.now() < Date.parse(managed.facts.notAfter);
  }

  /** One timer per host, for whichever comes first: the next order or the expiry (Node caps a timer at ~24.8 days). */
  private arm(managed: ManagedCertificate): void {
    this.clearTimer(managed);
    if (managed.retired || this.stopped) return;
    const expiry = managed.facts && managed.pair ? Date.parse(managed.facts.notAfter) : Number.POSITIVE_INFINITY;
    const next = Math.min(managed.nextOrderAt ?? Number.POSITIVE_INFINITY, expiry);
    if (!Number.isFinite(next)) return;
    const delay = Math.min(Math.max(0, next - this.now()), MAX_TIMER_MS);
    managed.timer = setTimeout(() => this.wake(managed), delay);
    managed.timer.unref();
  }

  private wake(managed: ManagedCertificate): void {
    managed.timer = null;
    if (managed.retired || this.stopped) return;
    const now = this.now();
    if (managed.pair && managed.facts && now >= Date.parse(managed.facts.notAfter)) {
      // Expired: not served any more; the host goes back to plain HTTP without redirect.
      managed.pair = null;
      managed.state = 'failed';
      managed.lastError ??= `certificate expired at ${managed.facts.notAfter}`;
      this.log.error(
        { host: managed.host, app: managed.app, not_after: managed.facts.notAfter },
        'certificate expired',
      );
      this.publish();
    }
    if (managed.source === 'acme' && managed.nextOrderAt !== null && now >= managed.nextOrderAt) {
      this.orderInBackground(managed);
      return;
    }
    this.arm(managed);
  }

  private retire(managed: ManagedCertificate): void {
    managed.retired = true;
    this.clearTimer(managed);
    this.hosts.delete(managed.host);
    this.log.info({ host: managed.host }, 'host removed: its certificate is no longer renewed');
  }

  private clearTimer(managed: ManagedCertificate): void {
    if (managed.timer) clearTimeout(managed.timer);
    managed.timer = null;
  }

  /** What the HTTPS listener serves: ACME certificates (exact names) first, then each certificate file once. */
  private publish(): void {
    const certificates: CertificateData[] = [];
    const files = new Set<string>();
    const serving = [...this.hosts.values()].filter((m) => this.serving(m) && m.pair);
    for (const m of serving) {
      const pair = m.pair as KeyPair;
      if (m.source === 'acme') certificates.push({ names: [m.host], certPem: pair.certPem, keyPem: pair.keyPem });
    }
    for (const m of serving) {
      const pair = m.pair as KeyPair;
      if (m.source !== 'file' || files.has(pair.certPem)) continue;
      files.add(pair.certPem);
      certificates.push({ names: m.facts?.names ?? [], certPem: pair.certPem, keyPem: pair.keyPem });
    }
    this.options.dataPlane.publishCertificates({
      version: ++this.version,
      certificates,
      defaultName: this.defaultName(certificates),
    });
  }

  /** The default app's first host that has a certificate (README, HTTPS: SNI). */
  private defaultName(certificates: readonly CertificateData[]): string | null {
    const config = this.config;
    const app = config?.apps.find((a) => a.name === config.defaultApp);
    for (const host of app?.hosts ?? []) {
      if (certificates.some((c) => coversHost(c.names, host)))
        return host.startsWith('*.') ? `x${host.slice(1)}` : host;
    }
    return null;
  }

  private json(m: ManagedCertificate): CertificateJson {
    const facts = m.facts;
    return {
      host: m.host,
      app: m.app,
      source: m.source,
      state: m.state,
      not_before: facts?.notBefore ?? null,
      not_after: facts?.notAfter ?? null,
      renew_at:
        m.source === 'acme' && facts
          ? new Date(renewAt(Date.parse(facts.notBefore), Date.parse(facts.notAfter))).toISOString()
          : null,
      issuer: facts?.issuer ?? null,
      last_error: m.lastError,
    };
  }
}

interface WantedCertificate {
  app: string;
  source: 'acme' | 'file';
  file?: { certPem: string; keyPem: string; facts: CertificateFacts };
}

/** Every host that should have a certificate, and from where: the running apps with `tls` on, in file order. */
function wantedCertificates(config: GatewayConfig): Map<string, WantedCertificate> {
  const wanted = new Map<string, WantedCertificate>();
  if (config.tls === null) return wanted;
  for (const app of config.apps) {
    if (app.tls === false) continue;
    if (app.tls === 'acme') {
      for (const host of app.hosts) if (!host.startsWith('*.')) wanted.set(host, { app: app.name, source: 'acme' });
      continue;
    }
    const file = config.fileCertificates.find((c) => c.app === app.name);
    if (!file) continue;
    for (const host of app.hosts) wanted.set(host, { app: app.name, source: 'file', file });
  }
  return wanted;
}
