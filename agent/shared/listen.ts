/** Binding of the agent's HTTP servers (the push server and the status server) to their address. */
import type { Server } from "node:http";
import { AgentError } from "./errors.ts";

/**
 * Starts `server` listening on `host:port` (port 0: any free port). Resolves
 * once it listens; rejects with an {@link AgentError} `LISTEN_FAILED` naming `what` (e.g.
 * `"http server"`) and the address when it cannot (port in use, bad host).
 */
export function listenOn(server: Server, host: string, port: number, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(new AgentError("LISTEN_FAILED", `${what} cannot listen on ${host}:${port}: ${err.code ?? err.message}`));
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
}
