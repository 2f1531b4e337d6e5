/**
 * docs/troubleshooting.md has an entry, with a cause and a fix, for every code
 * a user can see: the literal `code`s of the sources (typed errors, failure
 * results, settlement errors, `*Code` unions), the sfu-config/1 close codes,
 * the NACK codes and the SFU's signalling error codes. A code added on another
 * branch without its entry fails here at merge.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { CloseCode } from "../../../protocol/close-codes.ts";
import { NACK_CODES } from "../../../protocol/messages-schema.ts";
import { SignalErrorCode } from "../../../sfu/errors.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const DOC = readFileSync(join(ROOT, "docs", "troubleshooting.md"), "utf8");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() && e.name !== "web" && e.name !== "node_modules") out.push(...sources(p));
    else if (e.isFile() && e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Every error code literal of agent/, sfu/, protocol/ and scripts/local/, with where it was found. */
function codesInSources(): Map<string, string> {
  const found = new Map<string, string>();
  const add = (code: string, file: string) => {
    if (!found.has(code)) found.set(code, relative(ROOT, file));
  };
  const files = ["agent", "sfu", "protocol", join("scripts", "local")].flatMap((d) => sources(join(ROOT, d)));
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    // `readonly code = "X"`, `code: "X"` (a failure result, a settlement error), `errorOf(e, "X", ...)`.
    for (const m of text.matchAll(/\bcode(?: =|:) "([A-Z][A-Z0-9_]+)"/g)) add(m[1]!, file);
    for (const m of text.matchAll(/\berrorOf\([^,]+, "([A-Z][A-Z0-9_]+)"/g)) add(m[1]!, file);
    // A code built from an HTTP status: `code: \`HTTP_${r.status}\`` for the statuses it is built for.
    if (/\bcode: `HTTP_\$\{/.test(text)) for (const c of ["HTTP_409", "HTTP_422"]) add(c, file);
    // `export type SomethingCode = | "A" | "B";` (comments between members allowed).
    for (const m of text.matchAll(/export type \w*Code =([^;]*);/g)) {
      for (const lit of m[1]!.matchAll(/"([A-Z][A-Z0-9_]+)"/g)) add(lit[1]!, file);
    }
  }
  return found;
}

/** The rows of the table under `## heading`: first cell (backticks stripped) -> the other cells. */
function tableRows(heading: string): Map<string, string[]> {
  const start = DOC.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `docs/troubleshooting.md has a '## ${heading}' section`);
  const end = DOC.indexOf("\n## ", start + 1);
  const rows = new Map<string, string[]>();
  for (const line of DOC.slice(start, end < 0 ? undefined : end).split("\n")) {
    if (!line.startsWith("| ") || line.startsWith("| code ") || line.startsWith("|---")) continue;
    const cells = line
      .slice(2, -2)
      .split(" | ")
      .map((c) => c.trim());
    for (const code of cells[0]!.replaceAll("`", "").split(", ")) rows.set(code, cells.slice(1));
  }
  return rows;
}

function missingOrEmpty(rows: Map<string, string[]>, codes: Iterable<string>, where: (c: string) => string): string[] {
  const bad: string[] = [];
  for (const code of codes) {
    const cells = rows.get(code);
    if (!cells) bad.push(`${code} (${where(code)}): no row`);
    else if (cells.length < 3 || cells.some((c) => c === "" || c === "–")) bad.push(`${code}: a cell is empty`);
  }
  return bad;
}

describe("docs/troubleshooting.md covers every code a user can see", () => {
  it("every error code literal in the sources has a row with where, cause and fix", () => {
    const codes = codesInSources();
    // The scan finds the codes it must (one of each kind of definition).
    for (const c of ["INVALID_OPTIONS", "ACK_TIMEOUT", "PROPAGATION_TIMEOUT", "STATE_URL", "QUEUE_AWS", "REJECTED"]) {
      assert.ok(codes.has(c), `scan finds ${c}`);
    }
    const nack = new Set<string>(NACK_CODES);
    const rows = tableRows("Error codes");
    const errorCodes = [...codes.keys()].filter((c) => !nack.has(c) || rows.has(c));
    assert.deepEqual(
      missingOrEmpty(rows, errorCodes, (c) => codes.get(c)!),
      [],
    );
  });

  it("every NACK code has a row", () => {
    assert.deepEqual(
      missingOrEmpty(tableRows("NACK codes"), NACK_CODES, () => "protocol/messages-schema.ts NACK_CODES"),
      [],
    );
  });

  it("every close code has a row with its number and name", () => {
    const rows = tableRows("Close codes");
    const bad: string[] = [];
    for (const [name, value] of Object.entries(CloseCode)) {
      const cells = rows.get(String(value));
      if (!cells) bad.push(`${value} ${name}: no row`);
      else if (cells[0] !== `\`${name}\``) bad.push(`${value}: named ${cells[0]}, not ${name}`);
      else if (cells.slice(1).some((c) => c === "")) bad.push(`${value}: a cell is empty`);
    }
    assert.deepEqual(bad, []);
  });

  it("every signalling error code has a row", () => {
    assert.deepEqual(
      missingOrEmpty(tableRows("Signalling error codes"), Object.values(SignalErrorCode), () => "sfu/errors.ts"),
      [],
    );
  });

  it("no row documents a code the sources no longer define", () => {
    const known = new Set<string>([...codesInSources().keys(), ...NACK_CODES, ...Object.values(SignalErrorCode)]);
    const stale = [...tableRows("Error codes").keys()].filter((c) => !known.has(c));
    assert.deepEqual(stale, []);
  });
});
