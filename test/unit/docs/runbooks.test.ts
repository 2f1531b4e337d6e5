/**
 * Every alert of k8s/monitoring/prometheusrule.yaml carries a `runbook_url`
 * pointing at its own section of docs/troubleshooting.md, and that section
 * says how to confirm, the likely causes and the fix.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { anchors, ROOT, slug } from "../../helpers/markdown.ts";

const RULES = parse(readFileSync(join(ROOT, "k8s", "monitoring", "prometheusrule.yaml"), "utf8")) as {
  spec: { groups: { rules: { alert?: string; annotations?: Record<string, string> }[] }[] };
};
const DOC = readFileSync(join(ROOT, "docs", "troubleshooting.md"), "utf8");
const RUNBOOK = /^https:\/\/github\.com\/[\w.-]+\/[\w.-]+\/blob\/main\/docs\/troubleshooting\.md#([a-z0-9-]+)$/;

/** The text of the `### heading` section whose slug is `anchor`, up to the next heading. */
function section(anchor: string): string | null {
  const lines = DOC.split("\n");
  const start = lines.findIndex((l) => /^#{2,3} /.test(l) && slug(l.replace(/^#+ /, "")) === anchor);
  if (start < 0) return null;
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((l) => /^#{1,3} /.test(l));
  return rest.slice(0, end < 0 ? undefined : end).join("\n");
}

describe("alert runbooks", () => {
  const alerts = RULES.spec.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);

  it("finds the alerts", () => {
    assert.ok(alerts.length >= 5);
  });

  it("every alert has a runbook_url to its own section of docs/troubleshooting.md", () => {
    const bad: string[] = [];
    const docAnchors = anchors(DOC);
    for (const r of alerts) {
      const url = r.annotations?.runbook_url;
      const m = url === undefined ? null : RUNBOOK.exec(url);
      if (!m) bad.push(`${r.alert}: runbook_url ${JSON.stringify(url)} is not .../docs/troubleshooting.md#anchor`);
      else if (m[1] !== slug(r.alert!)) bad.push(`${r.alert}: points at #${m[1]}, not #${slug(r.alert!)}`);
      else if (!docAnchors.has(m[1]!)) bad.push(`${r.alert}: docs/troubleshooting.md has no #${m[1]}`);
    }
    assert.deepEqual(bad, []);
  });

  it("each alert's section says how to confirm, the likely causes and the fix", () => {
    const bad: string[] = [];
    for (const r of alerts) {
      const text = section(slug(r.alert!));
      if (text === null) {
        bad.push(`${r.alert}: no section`);
        continue;
      }
      for (const part of ["**Confirm:**", "**Likely causes:**", "**Fix:**"]) {
        if (!text.includes(part)) bad.push(`${r.alert}: no ${part}`);
      }
    }
    assert.deepEqual(bad, []);
  });
});
