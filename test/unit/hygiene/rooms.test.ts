/**
 * agent/ is laid out by process, so the path of a module tells which binary
 * mode runs it: sidecar/ (`sfu-agent run`), hook/ (the PostSync Job's
 * `notify` and `rollout`), conformance/ (the kit for SFU vendors), admission/
 * (the webhook), fleet/ (`sfu-agent status`). They share code only through
 * protocol/ and the toolboxes: shared/ (every process) and aws/ (the AWS
 * clients, error classification and the S3 rollout state). commands/ and
 * cli.ts are the command line and may import any room.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { describe, it } from "node:test";
import { importSpecifiers } from "../../helpers/import-specifiers.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const AGENT = join(ROOT, "agent");
const PROCESS_ROOMS = ["sidecar", "hook", "conformance", "admission", "fleet"];
const TOOLBOXES = ["shared", "aws"];
/** What each room may import besides itself and protocol/. */
const MAY_IMPORT: Record<string, string[]> = {
  ...Object.fromEntries(PROCESS_ROOMS.map((r) => [r, TOOLBOXES])),
  aws: ["shared"],
  shared: [],
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** The room of a path under agent/ (its first folder), "" for agent/ itself, null outside agent/. */
function roomOf(path: string): string | null {
  const rel = relative(AGENT, path);
  if (rel.startsWith("..")) return null;
  return rel.includes(sep) ? rel.split(sep)[0]! : "";
}

describe("agent/ rooms by process", () => {
  const files = tsFiles(AGENT);

  it("every agent/ module is in a room, the command line or a toolbox", () => {
    const known = new Set([...PROCESS_ROOMS, ...TOOLBOXES, "commands"]);
    const stray = files.filter((f) => {
      const room = roomOf(f)!;
      return room === "" ? relative(AGENT, f) !== "cli.ts" : !known.has(room);
    });
    assert.deepEqual(
      stray.map((f) => relative(ROOT, f)),
      [],
    );
  });

  it("a room imports only itself, protocol/ and the toolboxes it may use", () => {
    const offences: string[] = [];
    for (const file of files) {
      const room = roomOf(file)!;
      const allowed = MAY_IMPORT[room];
      if (allowed === undefined) continue; // commands/ and cli.ts
      for (const spec of importSpecifiers(readFileSync(file, "utf8"))) {
        if (!spec.startsWith(".")) continue;
        const target = resolve(dirname(file), spec);
        const to = roomOf(target);
        if (to === null) {
          if (!target.startsWith(join(ROOT, "protocol") + sep)) offences.push(`${relative(ROOT, file)} -> ${spec}`);
        } else if (to !== room && !allowed.includes(to)) {
          offences.push(`${relative(ROOT, file)} -> ${spec}`);
        }
      }
    }
    assert.deepEqual(offences, []);
  });

  it("the rule sees an offence", () => {
    assert.equal(roomOf(join(AGENT, "hook", "driver.ts")), "hook");
    assert.equal(roomOf(join(AGENT, "cli.ts")), "");
    assert.equal(roomOf(join(ROOT, "protocol", "hash.ts")), null);
    assert.ok(!MAY_IMPORT["hook"]!.includes("sidecar"));
    assert.ok(!MAY_IMPORT["conformance"]!.includes("sidecar"));
  });
});
