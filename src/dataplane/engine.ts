import type { ProxyRequest } from './request.js';
import type { Upstream } from './upstream.js';

/** Why a request to a child failed before any response byte reached the client. */
export type UpstreamFailureKind =
  /** The connection was refused: nothing of the request reached the child. */
  | 'refused'
  /** Reset or closed before response headers: the child may have seen the request. */
  | 'reset'
  /** No response headers within upstream_timeout_ms. */
  | 'timeout'
  /** The child answered something that is not HTTP. */
  | 'protocol';

export interface UpstreamFailure {
  kind: UpstreamFailureKind;
  /** Whether any byte of the request body was read from the client (it cannot be replayed). */
  bodyConsumed: boolean;
  error: Error;
}

/** What the engine reports back to the proxy server, once per attempt. */
export interface EngineHooks {
  /** Response headers arrived from the child; from here on the engine streams the body. */
  onResponseStart(request: ProxyRequest): void;
  /** The attempt failed before the response started; the server retries or answers 502/504. */
  onFailure(request: ProxyRequest, failure: UpstreamFailure): void;
}

/**
 * The HTTP engine behind one small interface, so that it can be chosen by
 * measurement (http-proxy-3 or undici) without touching routing, queueing,
 * retries or error mapping.
 */
export interface ProxyEngine {
  readonly name: string;
  /** Forwards `request` to `request.upstream`, streaming both bodies. */
  forward(request: ProxyRequest, timeoutMs: number): void;
  /** Forwards a WebSocket upgrade to `request.upstream` and pipes the sockets. */
  upgrade(request: ProxyRequest, timeoutMs: number): void;
  /** The client went away before the response was complete: stop the exchange with the child. */
  cancel(request: ProxyRequest): void;
  /** Closes the pooled connections to a drained child. */
  closeUpstream(upstream: Upstream): void;
  close(): void;
}

export type EngineFactory = (hooks: EngineHooks) => ProxyEngine;

/** Maps a socket or parser error from a child to a failure kind. */
export function classifyUpstreamError(error: NodeJS.ErrnoException): UpstreamFailureKind {
  const code = error.code ?? '';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code.startsWith('HPE_') || code === 'UND_ERR_INFO') return 'protocol';
  return 'reset';
}
