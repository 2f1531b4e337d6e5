/**
 * `npm start`: runs the whole sfu-config loop locally (see local-stack.ts) and
 * prints a live summary of every pod. Edit the config file (by default
 * k8s/base/config.yaml) and watch the change flow: notify, kubelet swap,
 * validate, push, ack, report. Ctrl-C (SIGINT), SIGTERM and SIGHUP (the
 * terminal closed) stop everything and remove the temporary files.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fetchFleet, renderFleetTable } from "../../agent/fleet-status.ts";
import { parseDuration } from "../../agent/options.ts";
import { LOCAL_STACK_DEFAULTS, startLocalStack } from "./local-stack.ts";
import { DEMO_POLICY, demoConfig, runRolloutDemo } from "./rollout-demo.ts";

const HELP = `Usage: npm start -- [options]

Runs an embedded SNS+SQS, N simulated pods (agent + SFU each) and a local
kubelet that mirrors the config file into every pod after a delay.

Options:
  --pods N              number of simulated pods (default ${LOCAL_STACK_DEFAULTS.pods})
  --kubelet-delay DUR   delay before the kubelet swap, e.g. 2s, 500ms (default 2s)
  --config FILE         source config file (default k8s/base/config.yaml)
  --turn-credential FILE  mount FILE in every pod as secrets/turn-credential, as the
                        Deployment mounts Secret sfu-turn (name it in the config as
                        credentialFile: etc-sfu/secrets/turn-credential)
  --once                start, wait until every pod applied the config, print, stop (smoke test)
  --rollout             progressive-rollout demo (3 pods by default): a bad change halted on
                        the canary and reverted while the others never move, then a good
                        change walking through the steps; with --once, stop after it
  -h, --help            show this help
`;

async function main(): Promise<number> {
  let values: {
    pods?: string;
    "kubelet-delay"?: string;
    config?: string;
    "turn-credential"?: string;
    once?: boolean;
    rollout?: boolean;
    help?: boolean;
  };
  let pods: number;
  let delay: number;
  try {
    ({ values } = parseArgs({
      options: {
        pods: { type: "string" },
        "kubelet-delay": { type: "string" },
        config: { type: "string" },
        "turn-credential": { type: "string" },
        once: { type: "boolean" },
        rollout: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
    pods = values.pods === undefined ? (values.rollout ? 3 : LOCAL_STACK_DEFAULTS.pods) : Number(values.pods);
    if (!Number.isInteger(pods) || pods < 1 || pods > 50) throw new Error("--pods must be an integer 1..50");
    const parsedDelay = parseDuration(values["kubelet-delay"] ?? "2s");
    if (parsedDelay === null) throw new Error("--kubelet-delay must be a duration such as 2s or 500ms");
    delay = parsedDelay;
  } catch (err) {
    process.stderr.write(`local stack: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let configFile = values.config ?? LOCAL_STACK_DEFAULTS.configFile;
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
  process.stdout.write(`starting ${pods} pod(s) with embedded SNS/SQS; config source: ${configFile}\n`);
  const stack = await startLocalStack({
    pods,
    kubeletDelayMs: delay,
    configFile,
    ...(values["turn-credential"] ? { turnCredentialFile: values["turn-credential"] } : {}),
    ...(policyFile ? { rolloutPolicyFile: policyFile } : {}),
    onEvent: (line) => process.stdout.write(`${stamp()} ${line}\n`),
  });
  process.stdout.write("\nDemo pages (open two tabs on the same pod to make a call):\n");
  for (const p of stack.pods) process.stdout.write(`  ${p.name}: ${p.sfuUrl}/?room=demo&autojoin=1\n`);
  process.stdout.write(
    `\nEdit ${configFile} and save: the change is notified at once and swapped into every pod after ${delay} ms.\n` +
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
    if (demoDir) await rm(demoDir, { recursive: true, force: true });
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
      if (demoDir) await rm(demoDir, { recursive: true, force: true });
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
