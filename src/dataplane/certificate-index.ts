import { createSecureContext, type SecureContext } from 'node:tls';
import type { CertificateSetData } from './data-plane.js';

/**
 * The published certificates as the HTTPS listener uses them (README,
 * HTTPS: SNI): a name's own certificate first, then a `*.` certificate
 * that covers it (one label, by X.509 rules), else the default one. An
 * immutable snapshot, swapped by one assignment; the contexts are kept
 * across snapshots by PEM text, so that renewing one certificate does not
 * rebuild the others.
 */
export class CertificateIndex {
  private readonly exact = new Map<string, SecureContext>();
  /** `.example.com` → context, for `*.example.com`. */
  private readonly wildcard = new Map<string, SecureContext>();
  readonly defaultContext: SecureContext | undefined;
  /** The default certificate's PEM pair, for `setSecureContext`. */
  readonly defaultPair: { cert: string; key: string } | undefined;

  constructor(
    readonly data: CertificateSetData,
    contexts: ContextCache,
  ) {
    const loaded: Array<[CertificateSetData['certificates'][number], SecureContext]> = [];
    for (const cert of data.certificates) {
      const context = contexts.get(cert.certPem, cert.keyPem);
      if (context === undefined) continue;
      loaded.push([cert, context]);
      for (const name of cert.names) {
        if (name.startsWith('*.')) {
          if (!this.wildcard.has(name.slice(1))) this.wildcard.set(name.slice(1), context);
        } else if (!this.exact.has(name)) this.exact.set(name, context);
      }
    }
    contexts.sweep();
    if (data.defaultName !== null) {
      this.defaultContext = this.find(data.defaultName);
      const pair = loaded.find(([, context]) => context === this.defaultContext)?.[0];
      if (pair) this.defaultPair = { cert: pair.certPem, key: pair.keyPem };
    }
  }

  static empty(contexts: ContextCache): CertificateIndex {
    return new CertificateIndex({ version: 0, certificates: [], defaultName: null }, contexts);
  }

  /** The context for an SNI name (lower case, no trailing dot), if one covers it; `*.x` asks for x's wildcard. */
  find(name: string): SecureContext | undefined {
    const exact = this.exact.get(name);
    if (exact !== undefined || this.wildcard.size === 0) return exact;
    if (name.startsWith('*.')) return this.wildcard.get(name.slice(1));
    const dot = name.indexOf('.');
    return dot > 0 ? this.wildcard.get(name.slice(dot)) : undefined;
  }

  covers(name: string): boolean {
    return this.find(name) !== undefined;
  }
}

/** SecureContexts by certificate PEM, reused across snapshots; those no snapshot asked for since the last sweep go. */
export class ContextCache {
  private contexts = new Map<string, SecureContext>();
  private used = new Map<string, SecureContext>();

  constructor(private readonly onError: (err: Error) => void) {}

  get(certPem: string, keyPem: string): SecureContext | undefined {
    const key = `${certPem}\n${keyPem}`;
    let context = this.used.get(key) ?? this.contexts.get(key);
    if (context === undefined) {
      try {
        context = createSecureContext({ cert: certPem, key: keyPem });
      } catch (err) {
        // Checked by the control plane already; a pair OpenSSL still refuses must not take the others down.
        this.onError(err as Error);
        return undefined;
      }
    }
    this.used.set(key, context);
    return context;
  }

  sweep(): void {
    this.contexts = this.used;
    this.used = new Map();
  }
}
