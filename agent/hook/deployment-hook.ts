/**
 * What the hook's commands do with `--expect-deployment NS/NAME`: read the
 * Deployment (its ready pods are how many the hook waits for; its
 * `spec.selector` finds its pods) and, unless `--no-nudge`, nudge the
 * kubelet of each of its pods after publishing (pod-nudger.ts). The
 * commands load this module with a dynamic import, so only they ever load
 * `@kubernetes/client-node`.
 */
import type { CommandIo } from "../shared/command-io.ts";
import type { Timers } from "../shared/timers.ts";
import { KubeClient, type KubeClientOptions, loadKubeConfig } from "./kube-client.ts";
import { type NudgeOptions, type PodNudge, PodNudger } from "./pod-nudger.ts";

/** Test and benchmark seams of {@link DeploymentHook.open}. */
export interface DeploymentHookOptions {
  client?: KubeClientOptions;
  nudge?: NudgeOptions;
}

/** One Deployment the hook reads and nudges; see the module documentation. */
export class DeploymentHook {
  readonly ready: number;
  readonly #client: KubeClient;
  readonly #namespace: string;
  readonly #selector: string;
  readonly #command: string;
  readonly #io: CommandIo;
  readonly #options: DeploymentHookOptions;
  #nudger: PodNudger | null = null;
  #nudgedHash: string | null = null;

  private constructor(o: {
    client: KubeClient;
    namespace: string;
    selector: string;
    ready: number;
    command: string;
    io: CommandIo;
    options: DeploymentHookOptions;
  }) {
    this.#client = o.client;
    this.#namespace = o.namespace;
    this.#selector = o.selector;
    this.ready = o.ready;
    this.#command = o.command;
    this.#io = o.io;
    this.#options = o.options;
  }

  /**
   * Reads `NS/NAME` through the API kubectl would use (`env`: KUBECONFIG, or
   * the in-cluster ServiceAccount). Prints what it found; returns null (after
   * printing why) when it cannot count, or nobody is ready to tell.
   */
  static async open(
    command: string,
    spec: string,
    env: Record<string, string | undefined>,
    io: CommandIo,
    options: DeploymentHookOptions = {},
  ): Promise<DeploymentHook | null> {
    const [namespace, name] = spec.split("/") as [string, string];
    const fail = (m: string) => {
      io.stderr(`sfu-agent ${command}: --expect-deployment: ${m}; nothing published\n`);
      return null;
    };
    const config = loadKubeConfig(env);
    if (!config.ok) return fail(`${config.message} (${config.code})`);
    const client = new KubeClient({ config: config.config, ...(options.client ? { options: options.client } : {}) });
    const d = await client.readDeployment(namespace, name);
    if (!d.ok) return fail(`${d.message} (${d.code})`);
    io.stdout(`deployment ${spec}: ${d.ready} ready of ${d.desired} desired; waiting for ${d.ready} pods\n`);
    if (d.ready === 0 && d.desired > 0) {
      io.stderr(`sfu-agent ${command}: deployment ${spec} has no ready pod to tell; nothing published\n`);
      return null;
    }
    return new DeploymentHook({ client, namespace, selector: d.selector, ready: d.ready, command, io, options });
  }

  /**
   * Nudges every pod for `hash` (once per hash; later calls for it do
   * nothing) and resolves when the first round is answered; re-nudges run
   * until {@link finish}. `maxNudges` 1: the first round only. Never fails
   * the command: a failure is printed as a warning.
   */
  async nudge(hash: string, timers: Timers, maxNudges?: number): Promise<void> {
    if (this.#nudgedHash === hash) return;
    await this.#nudger?.stop();
    this.#nudgedHash = hash;
    const options = { ...this.#options.nudge, ...(maxNudges === undefined ? {} : { maxNudges }) };
    const nudger = new PodNudger({
      client: this.#client,
      namespace: this.#namespace,
      selector: this.#selector,
      hash,
      timers,
      options,
    });
    this.#nudger = nudger;
    const started = await nudger.start();
    const warn = (m: string) =>
      this.#io.stderr(
        `sfu-agent ${this.#command}: warning: ${m}; the pods get the file on the kubelet's periodic sync\n`,
      );
    if (!started.ok) {
      warn(`nudge off: ${started.error.message} (${started.error.code})`);
      return;
    }
    const results = nudger.results();
    const nudged = results.filter((p) => p.nudges > 0).length;
    if (nudger.denied()) {
      const e = results.find((p) => p.error)?.error;
      warn(`nudge off: ${e?.message ?? "forbidden"} (${e?.code ?? "API_FORBIDDEN"})`);
      return;
    }
    const failed = results.filter((p) => p.error !== null);
    this.#io.stdout(`nudged ${nudged}/${results.length} pods (annotation sfu-config.dev/config-hash)\n`);
    for (const p of failed) warn(`${p.pod} not nudged: ${p.error?.message} (${p.error?.code})`);
  }

  /** The pod's agent reported (no more nudges for it). */
  reported(pod: string): void {
    this.#nudger?.reported(pod);
  }

  /** Stops re-nudging; the per-pod results of the last hash's nudges. */
  async finish(): Promise<PodNudge[]> {
    await this.#nudger?.stop();
    return this.#nudger?.results() ?? [];
  }

  /** Kubernetes API requests made so far. */
  requests(): number {
    return this.#client.requests;
  }
}
