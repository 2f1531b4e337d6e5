/**
 * Keeps PROTOCOL.md section 19 (progressive rollout) honest: its policy,
 * cohort ranks, state, reload event and stage event examples are read out of
 * the document and checked against the code.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseState } from "../../../agent/aws/state-store.ts";
import { cohortRank, cohortThreshold, inCohort } from "../../../protocol/cohort.ts";
import { parseReloadEvent, parseStatusEvent } from "../../../protocol/messages.ts";
import { loadRolloutPolicyText } from "../../../protocol/rollout-policy.ts";
import { parseRolloutField } from "../../../protocol/rollout-schema.ts";

const DOC = readFileSync(join(import.meta.dirname, "..", "..", "..", "protocol", "PROTOCOL.md"), "utf8");

function one(marker: string): string {
  const re = new RegExp(`<!-- ${marker} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\``, "g");
  const found = [...DOC.matchAll(re)].map((m) => m[1]!);
  assert.equal(found.length, 1, `exactly one <!-- ${marker} --> block in PROTOCOL.md`);
  return found[0]!;
}

describe("PROTOCOL.md section 19 (progressive rollout)", () => {
  it("the policy example loads", () => {
    const r = loadRolloutPolicyText(one("example:rollout-policy"));
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
    assert.deepEqual(
      r.policy.steps.map((s) => s.percent),
      [10, 50, 100],
    );
  });

  it("the cohort ranks are what cohortRank computes, and 25% of them is the documented pod", () => {
    const rows = one("example:cohort-ranks")
      .split("\n")
      .map((l) => l.split(" ") as [string, string]);
    for (const [pod, rank] of rows) assert.equal(cohortRank(pod), Number(rank), pod);
    const ranks = rows.map(([pod]) => cohortRank(pod));
    const t = cohortThreshold(ranks, 25);
    assert.equal(t, 0.504628716269508);
    assert.deepEqual(
      rows.filter(([pod]) => inCohort(cohortRank(pod), t)).map(([pod]) => pod),
      ["sfu-7d9f-fghij"],
    );
  });

  it("the state example is a valid state whose stable config matches its hash", async () => {
    const s = await parseState(one("example:rollout-state"));
    assert.equal(s.candidate?.state, "halted");
    assert.equal(
      s.candidate?.threshold,
      cohortThreshold(["sfu-7d9f-abcde", "sfu-7d9f-fghij", "sfu-7d9f-klmno", "sfu-7d9f-pqrst"].map(cohortRank), 25),
    );
  });

  it("the reload event with rollout parses, and so does its rollout field", () => {
    const r = parseReloadEvent(one("example:rollout-reload-event"));
    assert.ok(r.ok);
    assert.deepEqual(parseRolloutField(r.event), {
      id: "5b2c0e0e-8d7e-4c53-9d41-0c1f5a4e2b77",
      step: 1,
      threshold: 0.504628716269508,
    });
  });

  it("the stage event is a valid status event with the pod's rank", () => {
    const text = one("example:stage-event");
    const r = parseStatusEvent(text);
    assert.ok(r.ok, JSON.stringify(r));
    const e = JSON.parse(text) as { pod: string; rank: number; stage: string };
    assert.equal(e.rank, cohortRank(e.pod));
    assert.equal(e.stage, "reverted");
  });
});
