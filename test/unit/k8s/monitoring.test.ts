/**
 * k8s/monitoring: the PrometheusRule, PodMonitor and Grafana dashboard are
 * well-formed, scrape real ports, and query only metrics the agent and the
 * SFU actually register (their `name:` literals in agent/ and sfu/). The
 * rules pass `promtool check rules`, and the rule unit tests of
 * k8s/monitoring/tests/ (`promtool test rules` format) prove each alert fires
 * while its condition holds and clears after.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import {
  accessSync,
  constants,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { before, describe, it } from "node:test";
import { Ajv } from "ajv";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { SETTLEMENT_OUTCOMES } from "../../../protocol/messages-schema.ts";
import { allContainers, findObject, K8S_DIR, type K8sObject, podSpec, REPO_ROOT, renderK8s } from "./manifests.ts";

let monitoring: K8sObject[];
let deployment: K8sObject;
let dashboard: K8sObject;

/** Metric names registered in the project's sources (`name: "sfu_..."`, or a gauge helper's first argument). */
function registeredMetrics(): Set<string> {
  const names = new Set<string>();
  const visit = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) visit(path);
      else if (path.endsWith(".ts")) {
        for (const m of readFileSync(path, "utf8").matchAll(/(?:name:|[gG]auge\()\s*"(sfu_[a-z0-9_]+)"/g))
          names.add(m[1] as string);
      }
    }
  };
  visit(join(REPO_ROOT, "agent"));
  visit(join(REPO_ROOT, "sfu"));
  return names;
}

/** Metric names a PromQL expression reads (histogram series mapped to their metric). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b(sfu_[a-z0-9_]+)/g)].map((m) => (m[1] as string).replace(/_(bucket|sum|count)$/, ""));
}

/** Checks (), [] and {} nest properly outside string literals. */
function balanced(expr: string): boolean {
  const stack: string[] = [];
  const pairs: Record<string, string> = { ")": "(", "]": "[", "}": "{" };
  let quote: string | null = null;
  for (const ch of expr) {
    if (quote) {
      if (ch === quote) quote = null;
      continue;
    }
    if (ch === '"' || ch === "'") quote = ch;
    else if ("([{".includes(ch)) stack.push(ch);
    else if (ch in pairs && stack.pop() !== pairs[ch]) return false;
  }
  return stack.length === 0 && quote === null;
}

/** Every PromQL expression: alert rules and dashboard targets. */
function expressions(): { where: string; expr: string }[] {
  const rule = findObject(monitoring, "PrometheusRule", "sfu-config");
  const out = (rule.spec.groups as K8sObject[]).flatMap((g) =>
    (g.rules as K8sObject[]).map((r) => ({ where: `alert ${r.alert}`, expr: String(r.expr) })),
  );
  for (const p of dashboard.panels as K8sObject[]) {
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: String(t.expr) });
  }
  return out;
}

/** promtool on PATH, else /usr/bin/promtool, else null. */
function findPromtool(): string | null {
  const candidates = [
    ...(process.env["PATH"] ?? "").split(delimiter).map((d) => join(d, "promtool")),
    "/usr/bin/promtool",
  ];
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {}
  }
  return null;
}

/** Runs a command (30 s cap); resolves with its exit code and combined output. */
function run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

const ruleSchema = {
  type: "object",
  required: ["apiVersion", "kind", "metadata", "spec"],
  properties: {
    apiVersion: { const: "monitoring.coreos.com/v1" },
    kind: { const: "PrometheusRule" },
    spec: {
      type: "object",
      additionalProperties: false,
      required: ["groups"],
      properties: {
        groups: {
          type: "array",
          minItems: 1,
          items: {
            type: "object",
            additionalProperties: false,
            required: ["name", "rules"],
            properties: {
              name: { type: "string" },
              interval: { type: "string" },
              rules: {
                type: "array",
                minItems: 1,
                items: {
                  type: "object",
                  additionalProperties: false,
                  required: ["alert", "expr", "labels", "annotations"],
                  properties: {
                    alert: { type: "string", pattern: "^[A-Z][A-Za-z0-9]+$" },
                    expr: { type: "string", minLength: 1 },
                    for: { type: "string", pattern: "^[0-9]+(ms|s|m|h|d)$" },
                    labels: {
                      type: "object",
                      required: ["severity"],
                      properties: { severity: { enum: ["critical", "warning", "info"] } },
                    },
                    annotations: {
                      type: "object",
                      required: ["summary", "description"],
                      additionalProperties: { type: "string" },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

const podMonitorSchema = {
  type: "object",
  required: ["spec"],
  properties: {
    apiVersion: { const: "monitoring.coreos.com/v1" },
    spec: {
      type: "object",
      additionalProperties: false,
      required: ["selector", "podMetricsEndpoints"],
      properties: {
        selector: { type: "object", required: ["matchLabels"] },
        podMetricsEndpoints: {
          type: "array",
          minItems: 1,
          items: {
            type: "object",
            additionalProperties: false,
            required: ["port", "path"],
            properties: { port: { type: "string" }, path: { const: "/metrics" }, interval: { type: "string" } },
          },
        },
      },
    },
  },
};

before(async () => {
  monitoring = await renderK8s("monitoring");
  deployment = findObject(await renderK8s("base"), "Deployment", "sfu-server");
  const cm = findObject(monitoring, "ConfigMap", "sfu-config-dashboard");
  dashboard = JSON.parse(cm.data["sfu-config.json"]);
});

describe("monitoring", () => {
  it("has a well-formed PrometheusRule and PodMonitor", () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    const rule = findObject(monitoring, "PrometheusRule", "sfu-config");
    assert.ok(ajv.validate(ruleSchema, rule), ajv.errorsText());
    const pm = findObject(monitoring, "PodMonitor", "sfu-server");
    assert.ok(ajv.validate(podMonitorSchema, pm), ajv.errorsText());
    const bad = structuredClone(rule);
    bad.spec.groups[0].rules[0].labels.severity = "page-me";
    assert.equal(ajv.validate(ruleSchema, bad), false, "the schema check can fail");
  });

  it("alerts on state: an invalid file, pods not converged, an agent disconnected (warning, not critical)", () => {
    const rule = findObject(monitoring, "PrometheusRule", "sfu-config");
    const alerts = new Map<string, K8sObject>(
      rule.spec.groups.flatMap((g: K8sObject) => g.rules).map((r: K8sObject) => [r.alert, r]),
    );
    assert.match(alerts.get("SfuConfigFileInvalid")?.expr, /sfu_agent_config_last_load_success\) == 0/);
    assert.match(alerts.get("SfuConfigNotConverged")?.expr, /sfu_agent_config_converged\) == 0/);
    assert.equal(alerts.get("SfuConfigNotConverged")?.for, "5m", "the agent's default --propagation-timeout");
    assert.match(alerts.get("SfuAgentDisconnected")?.expr, /sfu_agent_sfu_connected\) == 0/);
    assert.equal(alerts.get("SfuAgentDisconnected")?.labels.severity, "warning", "calls are not affected");
    for (const [name, r] of alerts) {
      assert.ok(r.for, `${name} has a for:`);
      assert.doesNotMatch(String(r.expr), /increase\(|changes\(|delta\(/, `${name} is built on state`);
      assert.notEqual(r.labels.severity, "critical", `${name}: no config alert affects live calls`);
    }
  });

  it("passes promtool check rules and the rule unit tests (each alert fires while its condition holds, clears after)", async () => {
    const promtool = findPromtool();
    assert.ok(
      promtool !== null,
      "promtool not found on PATH (nor /usr/bin/promtool): install it with `apt-get install -y prometheus`",
    );
    const rule = findObject(monitoring, "PrometheusRule", "sfu-config");
    const dir = mkdtempSync(join(tmpdir(), "sfu-promtool-"));
    try {
      // promtool reads plain rule files: extract spec.groups of the PrometheusRule CRD.
      const rules = join(dir, "rules.yaml");
      writeFileSync(rules, stringifyYaml({ groups: rule.spec.groups }));
      const checked = await run(promtool, ["check", "rules", rules]);
      assert.equal(checked.code, 0, checked.output);
      assert.match(checked.output, /SUCCESS: 5 rules found/);
      const testsDir = join(K8S_DIR, "monitoring", "tests");
      const files = readdirSync(testsDir).filter((f) => f.endsWith(".yaml"));
      assert.ok(files.length > 0, "rule unit tests exist");
      const tested = new Set<string>();
      for (const f of files) {
        const doc = parseYaml(readFileSync(join(testsDir, f), "utf8"));
        doc.rule_files = [rules];
        for (const t of doc.tests) for (const a of t.alert_rule_test ?? []) tested.add(a.alertname);
        const target = join(dir, f);
        writeFileSync(target, stringifyYaml(doc));
        const r = await run(promtool, ["test", "rules", target]);
        assert.equal(r.code, 0, `${f}:\n${r.output}`);
        assert.match(r.output, /SUCCESS/);
      }
      for (const a of ["SfuConfigFileInvalid", "SfuConfigNotConverged", "SfuAgentDisconnected"]) {
        assert.ok(tested.has(a), `${a} has a rule unit test`);
      }
      // The unit tests can fail: a rule whose condition never holds does not fire.
      const broken = structuredClone(rule.spec.groups);
      broken[0].rules[0].expr = "max by (namespace, pod) (sfu_agent_config_last_load_success) == 2";
      writeFileSync(rules, stringifyYaml({ groups: broken }));
      const r = await run(promtool, ["test", "rules", join(dir, files[0] as string)]);
      assert.notEqual(r.code, 0, "a broken rule fails its unit test");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("queries only metrics the agent and the SFU register, with well-nested expressions", () => {
    const registered = registeredMetrics();
    const used = new Set<string>();
    for (const { where, expr } of expressions()) {
      assert.ok(balanced(expr), `${where}: ${expr}`);
      for (const m of metricsIn(expr)) {
        used.add(m);
        assert.ok(registered.has(m), `${where}: ${m} is registered in agent/ or sfu/`);
      }
    }
    assert.ok(used.size >= 8, "covers the exported metrics");
  });

  it("filters outcomes by values the agent reports", () => {
    for (const { where, expr } of expressions()) {
      for (const m of expr.matchAll(/outcome=~?"([^"]+)"/g)) {
        for (const o of (m[1] as string).split("|")) {
          assert.ok((SETTLEMENT_OUTCOMES as readonly string[]).includes(o), `${where}: outcome ${o}`);
        }
      }
    }
  });

  it("scrapes named ports the SFU pods really have", () => {
    const pm = findObject(monitoring, "PodMonitor", "sfu-server");
    assert.deepEqual(pm.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
    const ports = new Set(
      allContainers(podSpec(deployment)).flatMap((c) => (c.ports ?? []).map((p: K8sObject) => p.name)),
    );
    for (const ep of pm.spec.podMetricsEndpoints) assert.ok(ports.has(ep.port), ep.port);
    assert.equal(pm.spec.podMetricsEndpoints.length, 2, "the agent and the SFU");
  });

  it("ships a Grafana dashboard for the dashboard sidecar, unchanged from the JSON file", () => {
    const cm = findObject(monitoring, "ConfigMap", "sfu-config-dashboard");
    assert.equal(cm.metadata.labels.grafana_dashboard, "1");
    assert.equal(
      cm.data["sfu-config.json"],
      readFileSync(join(K8S_DIR, "monitoring", "dashboards", "sfu-config.json"), "utf8"),
    );
    assert.equal(dashboard.uid, "sfu-config");
    const ids = (dashboard.panels as K8sObject[]).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, "unique panel ids");
    for (const p of dashboard.panels as K8sObject[]) {
      assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the grid`);
      if (p.type !== "row") assert.ok(p.targets?.length > 0, `${p.title} has queries`);
    }
    const vars = (dashboard.templating.list as K8sObject[]).map((v) => v.name);
    assert.deepEqual(vars.sort(), ["datasource", "namespace"]);
  });
});
