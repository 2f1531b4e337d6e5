/**
 * Typed errors of the conformance kit. Like the rest of the agent, these are
 * thrown only for start-up and programming failures (bad options, a port in
 * use, an unusable base config); an SFU failing a case is a returned
 * {@link CaseResult} value (see suite.ts), never a throw.
 */
import { AgentError } from "../errors.ts";

/** An option given to the kit is invalid (`sfu-agent conformance` exits 2). */
export class ConformanceOptionsError extends AgentError {
  readonly code = "CONFORMANCE_OPTIONS" as const;
  override name = "ConformanceOptionsError";
}

/** The base config the kit pushes could not be loaded or is invalid (exit 2). */
export class BaseConfigError extends AgentError {
  readonly code = "CONFORMANCE_BASE_CONFIG" as const;
  override name = "BaseConfigError";
}

/** The kit's WebSocket server could not listen (exit 1). */
export class ConformanceListenError extends AgentError {
  readonly code = "CONFORMANCE_LISTEN_FAILED" as const;
  override name = "ConformanceListenError";
}

/** A kit component was used in the wrong lifecycle state (e.g. started twice). */
export class ConformanceLifecycleError extends AgentError {
  readonly code = "CONFORMANCE_LIFECYCLE" as const;
  override name = "ConformanceLifecycleError";
}
