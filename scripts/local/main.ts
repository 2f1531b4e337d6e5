/**
 * `npm start`: runs the whole sfu-config loop locally (see local-stack.ts) and
 * prints a live summary of every pod. Edit the config file (by default
 * k8s/base/config.yaml) and watch the change flow: notify, kubelet swap,
 * validate, push, ack, report. Ctrl-C (SIGINT), SIGTERM and SIGHUP (the
 * terminal closed) stop everything and remove the temporary files.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { fetchFleet, renderFleetTable } from "../../agent/fleet/fleet-status.ts";
import { parseDuration } from "../../agent/shared/cli-values.ts";
import { formatFlagHelp } from "../../protocol/cli-flags.ts";
import { type LocalAdmission, startLocalAdmission } from "./admission-gate.ts";
import { COTURN_INSTALL, type Coturn, coturnInstalled, randomTurnSecret, startCoturn } from "./coturn.ts";
import { LOCAL_SECRETS_DIR, LOCAL_STACK_DEFAULTS, startLocalStack } from "./local-stack.ts";
import { DEMO_POLICY, demoConfig, runRolloutDemo } from "./rollout-demo.ts";
import { DEFAULT_TURN_PORT, START_FLAGS } from "./start-flags.ts";

/** The config `--turn` runs with unless `--config` names another: v2, the local coturn, REST credentials. */
const TURN_CONFIG = resolve(import.meta.dirname, "config-turn.yaml");

const HELP = `Usage: npm start -- [options]

Runs an embedded SNS+SQS, N simulated pods (agent + SFU each), a local pod
API and a kubelet model that syncs each pod's config volume on its own
jittered period, and at once when the hook annotates the pod (the nudge:
docs/propagation.md).

Options:
${formatFlagHelp(START_FLAGS, 27)}`;

async function main(): Promise<number> {
  let values: {
    pods?: string;
    "kubelet-delay"?: string;
    "kubelet-sync"?: string;
    config?: string;
    "turn-credential"?: string;
    "turn-auth-secret"?: string;
    turn?: boolean;
    "turn-port"?: string;
    once?: boolean;
    rollout?: boolean;
    admission?: boolean;
    help?: boolean;
  };
  let pods: number;
  let delay: number;
  let syncMs: number | null = null;
  try {
    ({ values } = parseArgs({
      options: START_FLAGS,
      strict: true,
    }));
    pods = values.pods === undefined ? (values.rollout ? 3 : LOCAL_STACK_DEFAULTS.pods) : Number(values.pods);
    if (!Number.isInteger(pods) || pods < 1 || pods > 50) throw new Error("--pods must be an integer 1..50");
    const parsedDelay = parseDuration(values["kubelet-delay"] ?? "2s");
    if (parsedDelay === null) throw new Error("--kubelet-delay must be a duration such as 2s or 500ms");
    delay = parsedDelay;
    if (values["kubelet-delay"] !== undefined && values["kubelet-sync"] !== undefined)
      throw new Error("--kubelet-delay and --kubelet-sync are exclusive");
    if (values["kubelet-delay"] === undefined) {
      syncMs = parseDuration(values["kubelet-sync"] ?? "60s");
      if (syncMs === null || syncMs < 1000)
        throw new Error("--kubelet-sync must be a duration of at least 1s, such as 60s");
    }
    const tp = values["turn-port"];
    if (tp !== undefined && !(/^\d+$/.test(tp) && Number(tp) >= 1 && Number(tp) <= 65535)) {
      throw new Error("--turn-port must be 1..65535");
    }
    if (tp !== undefined && !values.turn) throw new Error("--turn-port needs --turn");
  } catch (err) {
    process.stderr.write(`local stack: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let configFile = values.config ?? (values.turn ? TURN_CONFIG : LOCAL_STACK_DEFAULTS.configFile);
  const stamp = () => new Date().toISOString().slice(11, 23);
  // The rollout demo edits its own copy of the config (never the repository's) and a demo policy.
  let demoDir: string | null = null;
  let policyFile: string | null = null;
  if (values.rollout) {
    demoDir = await mkdtemp(join(tmpdir(), "sfu-config-rollout-demo-"));
    const source = join(demoDir, "config.yaml");
    await writeFile(source, demoConfig(await readFile(configFile, "utf8")));
    policyFile = join(demoDir, "rollout.yaml");
    await writeFile(policyFile, DEMO_POLICY);
    configFile = source;
  }
  const event = (line: string) => process.stdout.write(`${stamp()} ${line}\n`);
  let turn: Coturn | null = null;
  let secretDir: string | null = null;
  let authSecretFile = values["turn-auth-secret"];
  /** Stops coturn and removes the temporary files (TURN secret, rollout demo copies). */
  let admission: LocalAdmission | null = null;
  let admissionDir: string | null = null;
  const cleanup = async () => {
    await admission?.stop();
    if (admissionDir) await rm(admissionDir, { recursive: true, force: true });
    await turn?.stop();
    if (secretDir) await rm(secretDir, { recursive: true, force: true });
    if (demoDir) await rm(demoDir, { recursive: true, force: true });
  };
  if (values.turn) {
    if (!coturnInstalled()) {
      process.stderr.write(
        `local stack: --turn needs coturn (turnserver), which is not installed.\nInstall it with: ${COTURN_INSTALL} (or npm run setup, as root)\n`,
      );
      return 1;
    }
    if (authSecretFile === undefined) {
      secretDir = await mkdtemp(join(tmpdir(), "sfu-local-turn-"));
      authSecretFile = join(secretDir, "turn-auth-secret");
      await writeFile(authSecretFile, `${randomTurnSecret()}\n`, { mode: 0o600 });
      await chmod(authSecretFile, 0o600);
    }
    const secret = (await readFile(authSecretFile, "utf8")).trim();
    const port = values["turn-port"] ? Number(values["turn-port"]) : DEFAULT_TURN_PORT;
    try {
      turn = await startCoturn({ secrets: [secret], port });
    } catch (err) {
      process.stderr.write(`local stack: coturn did not start on 127.0.0.1:${port}: ${(err as Error).message}\n`);
      await cleanup();
      return 1;
    }
    process.stdout.write(`coturn on ${turn.url} (log ${turn.logPath}); auth secret file ${authSecretFile}\n`);
  }
  if (values.admission) {
    admissionDir = await mkdtemp(join(tmpdir(), "sfu-local-admission-"));
    try {
      admission = await startLocalAdmission({ dir: admissionDir, secretsDir: LOCAL_SECRETS_DIR });
    } catch (err) {
      process.stderr.write(`local stack: the admission webhook did not start: ${(err as Error).message}\n`);
      await cleanup();
      return 1;
    }
    process.stdout.write(`admission webhook on ${admission.url} (failurePolicy Fail): every edit is reviewed first\n`);
  }
  process.stdout.write(`starting ${pods} pod(s) with embedded SNS/SQS; config source: ${configFile}\n`);
  const restartTurn = async (previous: string, next: string) => {
    if (turn === null) return;
    // Overlap: coturn accepts credentials of both secrets until the next rotation.
    const port = turn.port;
    await turn.stop();
    turn = await startCoturn({ secrets: [next.trim(), previous.trim()], port });
    event("coturn restarted with the new and the previous auth secret (overlap)");
  };
  let stack: Awaited<ReturnType<typeof startLocalStack>>;
  try {
    stack = await startLocalStack({
      pods,
      kubeletDelayMs: delay,
      ...(syncMs === null ? {} : { kubeletSyncMs: syncMs }),
      configFile,
      ...(values["turn-credential"] ? { turnCredentialFile: values["turn-credential"] } : {}),
      ...(authSecretFile ? { turnAuthSecretFile: authSecretFile, onTurnAuthSecretChange: restartTurn } : {}),
      ...(policyFile ? { rolloutPolicyFile: policyFile } : {}),
      ...(admission ? { admit: admission.review } : {}),
      onEvent: event,
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  process.stdout.write("\nDemo pages (open two tabs on the same pod to make a call):\n");
  const relay = turn ? "&relay=1" : "";
  for (const p of stack.pods) process.stdout.write(`  ${p.name}: ${p.sfuUrl}/?room=demo&autojoin=1${relay}\n`);
  if (turn) {
    process.stdout.write(
      `\nTURN: media goes through coturn (&relay=1). Rotate the auth secret by editing ${authSecretFile}:\n` +
        "coturn restarts accepting the old and the new secret, then every pod's Secret is swapped and its agent\n" +
        "asks its SFU to reload its secrets (agent /status: secrets).\n",
    );
  }
  process.stdout.write(
    `\nEdit ${configFile} and save: the change is notified at once and ${
      syncMs === null
        ? `swapped into every pod after ${delay} ms.`
        : `the hook nudges every pod's kubelet (seconds; without the nudge each pod waits for its periodic sync, ${syncMs / 1000}-${(syncMs * 1.5) / 1000} s: PROPAGATION column).`
    }\n` +
      `Fleet status any time: npm run agent -- status ${stack.pods.map((p) => p.agentUrl).join(" ")}\n` +
      `Logs: ${stack.workDir}/*.log (removed on exit). Ctrl-C to stop.\n\n`,
  );
  const demoAbort = new AbortController();
  let stopping = false;
  const stop = async () => {
    if (stopping) process.exit(1); // second Ctrl-C forces
    stopping = true;
    process.stdout.write("\nstopping...\n");
    demoAbort.abort();
    await stack.stop();
    await cleanup();
    process.stdout.write("stopped; temporary files removed\n");
    process.exit(0);
  };
  // SIGHUP: the terminal was closed; clean up as for Ctrl-C rather than leave
  // agents, SFUs and temporary files behind.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void stop());

  if (values.rollout) {
    const say = (line: string) => process.stdout.write(`${stamp()} ${line}\n`);
    let ok = false;
    try {
      ok = await runRolloutDemo(stack, configFile, say, demoAbort.signal);
    } catch (err) {
      say(`demo failed: ${(err as Error).message}`);
    }
    process.stdout.write(
      `${stamp()} fleet:\n${renderFleetTable(
        await fetchFleet(
          stack.pods.map((p) => p.agentUrl),
          2000,
        ),
      )}\n\n`,
    );
    if (values.once) {
      await stack.stop();
      await cleanup();
      process.stdout.write(ok ? "rollout demo done; stopped\n" : "rollout demo did not end as expected; stopped\n");
      return ok ? 0 : 1;
    }
    say(`demo done. Edit ${configFile} to roll out more changes (policy: ${policyFile}).`);
  }

  let last = "";
  const targets = stack.pods.map((p) => p.agentUrl);
  for (;;) {
    const rows = await fetchFleet(targets, 2000);
    const table = renderFleetTable(rows);
    if (table !== last) {
      process.stdout.write(`${stamp()} fleet:\n${table}\n\n`);
      last = table;
    }
    const allApplied = rows.every(
      (r) => r.ok && r.status.applied !== null && r.status.applied.hash === r.status.desired?.hash,
    );
    if (values.once && allApplied) {
      await stack.stop();
      await cleanup();
      process.stdout.write("every pod applied the config; stopped\n");
      return 0;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`local stack: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
