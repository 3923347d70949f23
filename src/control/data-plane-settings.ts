import type { GatewayConfig } from '../config/schema.js';
import type { DataPlaneSettings } from '../dataplane/data-plane.js';

/** The settings the data plane works by, from the running config: `[gateway]` and `[tls]` (README). */
export function dataPlaneSettings(config: GatewayConfig): DataPlaneSettings {
  const { gateway, tls } = config;
  return {
    upstreamTimeoutMs: gateway.upstreamTimeoutMs,
    queueTimeoutMs: gateway.queueTimeoutMs,
    trustedProxies: gateway.trustedProxies,
    accessLog: gateway.accessLog,
    redirectHttp: tls?.redirectHttp ?? false,
    hstsMaxAge: tls?.hstsMaxAge ?? 0,
  };
}
