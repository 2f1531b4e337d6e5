/**
 * The flags of `npm start` (scripts/local/main.ts), as data: main.ts parses
 * and lists them, `npm run docs` writes them into docs/reference/cli.md. In
 * their own module because importing main.ts starts the local stack.
 */
import type { FlagSpecs } from "../../protocol/cli-flags.ts";
import { COTURN_INSTALL } from "./coturn.ts";
import { LOCAL_STACK_DEFAULTS } from "./local-stack.ts";

/** coturn's standard port, which scripts/local/config-turn.yaml names. */
export const DEFAULT_TURN_PORT = 3478;

/** The flags of `npm start`: parsed, listed by --help and in docs/reference/cli.md from here. */
export const START_FLAGS = {
  pods: { type: "string", arg: "N", help: `number of simulated pods (default ${LOCAL_STACK_DEFAULTS.pods})` },
  "kubelet-sync": {
    type: "string",
    arg: "DUR",
    help: "the kubelet's periodic sync, plus up to 50% jitter per pod\n(default 60s, as syncFrequency on a cluster)",
  },
  "kubelet-delay": {
    type: "string",
    arg: "DUR",
    help: "instead of the kubelet model: swap every pod that long after\neach edit, e.g. 2s, 500ms (fast demos; no nudge)",
  },
  config: { type: "string", arg: "FILE", help: "source config file (default k8s/base/config.yaml)" },
  "turn-credential": {
    type: "string",
    arg: "FILE",
    help: "mount FILE in every pod as secrets/turn-credential, as the\nDeployment mounts Secret sfu-turn (name it in the config as\ncredentialFile: etc-sfu/secrets/turn-credential)",
  },
  "turn-auth-secret": {
    type: "string",
    arg: "FILE",
    help: "mount FILE (a TURN REST shared secret) in every pod as\nsecrets/turn-auth-secret (config: authSecretFile:\netc-sfu/secrets/turn-auth-secret); editing FILE rotates it",
  },
  turn: {
    type: "boolean",
    help: `start coturn on 127.0.0.1 (Debian: ${COTURN_INSTALL}) with the\nauth secret (--turn-auth-secret FILE, else a random one);\nconfig default: scripts/local/config-turn.yaml. A rotation\nrestarts coturn with the old and the new secret first`,
  },
  "turn-port": {
    type: "string",
    arg: "N",
    help: `coturn's port (default ${DEFAULT_TURN_PORT}, as config-turn.yaml names)`,
  },
  once: { type: "boolean", help: "start, wait until every pod applied the config, print, stop (smoke test)" },
  rollout: {
    type: "boolean",
    help: "progressive-rollout demo (3 pods by default): a bad change halted on\nthe canary and reverted while the others never move, then a good\nchange walking through the steps; with --once, stop after it",
  },
  admission: {
    type: "boolean",
    help: "run the admission webhook (sfu-agent admission, HTTPS) in front of\nthe kubelet: an invalid edit is refused at admission, with\nsfu-agent validate's lines, before anything is written",
  },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies FlagSpecs;
