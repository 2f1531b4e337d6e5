/**
 * Config texts for the agent and SNS/SQS tests: valid sfu-config v1 YAML
 * that differs by one number (`limits.maxRooms`), and its config hash.
 */
import { loadConfigText } from "../../protocol/config-loader.ts";

/** Options of {@link configText}. */
export interface ConfigTextExtra {
  /** Adds one TURN server with this credential (the secret the redaction tests look for). */
  credential?: string;
  /** `logging.level` (default `info`). */
  level?: string;
}

/** A valid config text; `n` (1..100000) changes `limits.maxRooms` and so the hash. */
export function configText(n: number, extra: ConfigTextExtra = {}): string {
  const turn = extra.credential
    ? `\n  turnServers:\n    - urls: ["turn:turn.example.com:3478"]\n      username: user1\n      credential: ${extra.credential}`
    : "";
  return `schemaVersion: 1
server:
  port: 8080
webrtc:
  icePortRange: [20000, 20100]
  codecs: [vp8, opus]
  listenIp: 127.0.0.1${turn}
logging:
  level: ${extra.level ?? "info"}
limits:
  maxRooms: ${n}
`;
}

/** The config hash of a config text; throws when the text is invalid. */
export async function configHash(text: string): Promise<string> {
  const r = await loadConfigText(text, { checkFiles: false });
  if (!r.ok) throw new Error(`configHash: invalid config: ${JSON.stringify(r.problems)}`);
  return r.hash;
}
