/** Why an operation on the running gateway (admin API, CLI) was refused or failed. */
export type GatewayOpErrorKind =
  /** No such app. */
  | 'not_found'
  /** The request is not a valid app or change. */
  | 'invalid'
  /** The name or a host is taken, or the change would leave no app / remove the default. */
  | 'conflict'
  /** The app's new children did not become ready; nothing was kept. */
  | 'not_ready'
  /** The config file on disk is invalid, so it cannot be edited safely. */
  | 'config_error'
  /** The config file could not be written. */
  | 'io_error'
  /** A server the gateway depends on (the ACME directory) refused or failed. */
  | 'upstream_error';

export class GatewayOpError extends Error {
  override readonly name = 'GatewayOpError';
  constructor(
    readonly kind: GatewayOpErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** A listener (app traffic or admin API) could not be opened at start-up. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  constructor(
    readonly address: string,
    cause: Error,
  ) {
    const reason = (cause as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'address already in use' : cause.message;
    super(`cannot listen on ${address}: ${reason}`);
  }
}
