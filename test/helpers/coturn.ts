/**
 * coturn for the TURN tests: scripts/local/coturn.ts (also used by `npm
 * start -- --turn`) behind the system-dependency preflight, so a machine
 * without `turnserver` fails at once with `apt-get install -y coturn`.
 */
import {
  COTURN_INSTALL,
  type Coturn,
  type CoturnOptions,
  coturnInstalled,
  startCoturn as start,
  turnserverPath,
} from "../../scripts/local/coturn.ts";
import { requireSystemDependency, type SystemDependency } from "./system-deps.ts";

export { COTURN_REALM, type Coturn } from "../../scripts/local/coturn.ts";

/** Debian's coturn (`SFU_TEST_TURNSERVER` overrides the path). */
export function coturnDependency(path = turnserverPath()): SystemDependency {
  return { name: `coturn (${path})`, check: () => coturnInstalled(path), install: COTURN_INSTALL };
}

/** Starts coturn on 127.0.0.1 (see scripts/local/coturn.ts); throws MissingSystemDependencyError when absent. */
export async function startCoturn(options: CoturnOptions): Promise<Coturn> {
  requireSystemDependency(coturnDependency());
  return start(options);
}
