/**
 * The decision of `sfu-agent admission` for one AdmissionReview
 * (`admission.k8s.io/v1`): what the API server sent in, what goes back.
 * Transport-free: agent/admission/admission-server.ts moves the bytes.
 *
 * A review is judged exactly as the agent would judge the mounted files: the
 * ConfigMap's config key goes through the one config loader
 * (protocol/config-loader.ts, same limits) and its rollout key, when present,
 * through the rollout policy loader, with `sfu-agent validate --no-check-files`
 * semantics (the Secret is not mounted in the webhook: secret paths are
 * checked to lie under `--secrets-dir`, not opened). The denial's lines are
 * `sfu-agent validate`'s own (agent/commands/validate.ts), so a denial reads
 * like the CI job's output for the same file.
 *
 * Allowed untouched, without looking further (the webhook configuration
 * scopes what is sent; the server does not guess): any operation other than
 * CREATE and UPDATE (DELETE, CONNECT), any object other than a core/v1
 * ConfigMap, and a ConfigMap without the config key.
 */
import { loadConfigBytes, loadConfigText } from "../../protocol/config-loader.ts";
import { loadRolloutPolicyText } from "../../protocol/rollout-policy.ts";
import { capText, escapeControlChars } from "../../protocol/safe-text.ts";
import { problemLines, toPolicyReport, toReport } from "../shared/validate-report.ts";

/** What the review needs to know about the agent it stands in for (the `run` flags of the same names). */
export interface ReviewOptions {
  /** ConfigMap key holding the config (`--config-key`, default `config.yaml`). */
  configKey: string;
  /** ConfigMap key holding the rollout policy (`--rollout-key`, default `rollout.yaml`). */
  rolloutKey: string;
  /** Directory secret files must live under (`--secrets-dir`). */
  secretsDir: string;
}

/** The `response` of an AdmissionReview, as the API server reads it. */
export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string; reason?: string };
  warnings?: string[];
}

/** An AdmissionReview sent back to the API server. */
export interface AdmissionReviewReply {
  apiVersion: "admission.k8s.io/v1";
  kind: "AdmissionReview";
  response: AdmissionResponse;
}

/** How a review ended, for metrics and logs. `skipped`: allowed without validation (not ours to judge). */
export type ReviewOutcome = "allowed" | "denied" | "skipped";

/** A judged review: the reply and what it concerned (for the log line; never the config itself). */
export interface ReviewResult {
  outcome: ReviewOutcome;
  reply: AdmissionReviewReply;
  /** `namespace/name` of the object, when known. */
  object: string | null;
  operation: string | null;
  dryRun: boolean;
  /** Problem lines in the denial (0 when allowed). */
  problems: number;
}

/** The review could not be read as an AdmissionReview: answered with HTTP 400 and this message. */
export interface MalformedReview {
  malformed: string;
}

/**
 * Most warnings sent back, and their total size. The API server keeps at most
 * 4096 bytes of warnings per response and may truncate each one past 256
 * characters; the rest are dropped with one counting line.
 */
export const MAX_WARNING_BYTES = 4096;
const MAX_WARNING_CHARS = 256;

/** Largest base64 text of a `binaryData` config key decoded (the loader refuses more than 1 MiB anyway). */
const MAX_BINARY_BASE64_CHARS = Math.ceil((1024 * 1024 + 1) / 3) * 4 + 4;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Judges one parsed AdmissionReview body. Never throws for any input: what
 * is not an AdmissionReview `admission.k8s.io/v1` with a `request.uid` is
 * returned as {@link MalformedReview} (the server answers 400; the API server
 * then applies the webhook's failurePolicy).
 */
export async function reviewAdmission(body: unknown, options: ReviewOptions): Promise<ReviewResult | MalformedReview> {
  if (!isObject(body)) return { malformed: "the body is not a JSON object" };
  if (body["apiVersion"] !== "admission.k8s.io/v1" || body["kind"] !== "AdmissionReview") {
    return { malformed: "expected apiVersion admission.k8s.io/v1, kind AdmissionReview" };
  }
  const request = body["request"];
  if (!isObject(request)) return { malformed: "the AdmissionReview has no request" };
  const uid = request["uid"];
  if (typeof uid !== "string" || uid === "" || uid.length > 128) {
    return { malformed: "request.uid must be a non-empty string" };
  }
  const operation = typeof request["operation"] === "string" ? request["operation"] : null;
  const dryRun = request["dryRun"] === true;
  const kind = request["kind"];
  const name = typeof request["name"] === "string" ? request["name"] : null;
  const namespace = typeof request["namespace"] === "string" ? request["namespace"] : null;
  const object = name === null ? null : capText(escapeControlChars(`${namespace ?? ""}/${name}`), 256);
  const done = (outcome: ReviewOutcome, response: Omit<AdmissionResponse, "uid">, problems = 0): ReviewResult => ({
    outcome,
    reply: { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: { uid, ...response } },
    object,
    operation,
    dryRun,
    problems,
  });
  if (operation !== "CREATE" && operation !== "UPDATE") return done("skipped", { allowed: true });
  const isConfigMap =
    isObject(kind) && kind["group"] === "" && kind["version"] === "v1" && kind["kind"] === "ConfigMap";
  if (!isConfigMap) return done("skipped", { allowed: true });
  const configMap = request["object"];
  if (!isObject(configMap)) return { malformed: `request.object is missing for ${operation}` };
  const config = entry(configMap, options.configKey);
  if (config === null) return done("skipped", { allowed: true });
  if ("invalid" in config)
    return deny(done, [`${escapeControlChars(options.configKey)}:1:1: /: ${config.invalid}`], []);

  const configReport = toReport(
    options.configKey,
    "text" in config
      ? await loadConfigText(config.text, {
          source: options.configKey,
          checkFiles: false,
          secretsDir: options.secretsDir,
        })
      : await loadConfigBytes(config.bytes, {
          source: options.configKey,
          checkFiles: false,
          secretsDir: options.secretsDir,
        }),
  );
  const lines = problemLines(configReport);
  const problems = [...lines.problems];
  const warnings = [...lines.warnings];
  const policy = entry(configMap, options.rolloutKey);
  if (policy !== null) {
    if ("invalid" in policy) problems.push(`${escapeControlChars(options.rolloutKey)}:1:1: /: ${policy.invalid}`);
    else {
      const text = "text" in policy ? policy.text : decodeUtf8(policy.bytes);
      const policyLines =
        text === null
          ? [`${escapeControlChars(options.rolloutKey)}:1:1: /: file is not valid UTF-8 text`]
          : problemLines(
              toPolicyReport(options.rolloutKey, loadRolloutPolicyText(text, { source: options.rolloutKey })),
            ).problems;
      problems.push(...policyLines);
    }
  }
  if (problems.length > 0) return deny(done, problems, warnings);
  return done("allowed", { allowed: true, ...warningsField(warnings) });
}

/**
 * A denial: `status.message` is `validate`'s problem lines, one per line,
 * capped as `validate` caps them (20 per file, then "and N more").
 */
function deny(
  done: (outcome: ReviewOutcome, response: Omit<AdmissionResponse, "uid">, problems?: number) => ReviewResult,
  problems: string[],
  warnings: string[],
): ReviewResult {
  return done(
    "denied",
    {
      allowed: false,
      status: { code: 422, reason: "Invalid", message: problems.join("\n") },
      ...warningsField(warnings),
    },
    problems.length,
  );
}

/** `{ warnings }` capped to what the API server keeps, or nothing when there are none. */
function warningsField(warnings: string[]): { warnings?: string[] } {
  if (warnings.length === 0) return {};
  const out: string[] = [];
  let bytes = 0;
  for (let i = 0; i < warnings.length; i++) {
    const w = capText(warnings[i] as string, MAX_WARNING_CHARS);
    const size = Buffer.byteLength(w, "utf8");
    if (bytes + size > MAX_WARNING_BYTES - 64) {
      out.push(`and ${warnings.length - i} more warning(s) not shown`);
      break;
    }
    out.push(w);
    bytes += size;
  }
  return { warnings: out };
}

/** A ConfigMap key's content: text from `data`, bytes from `binaryData`, null when absent, or why it cannot be read. */
function entry(configMap: Json, key: string): { text: string } | { bytes: Uint8Array } | { invalid: string } | null {
  const data = configMap["data"];
  if (isObject(data) && Object.hasOwn(data, key)) {
    const v = data[key];
    return typeof v === "string" ? { text: v } : { invalid: "the ConfigMap's data value is not a string" };
  }
  const binary = configMap["binaryData"];
  if (isObject(binary) && Object.hasOwn(binary, key)) {
    const v = binary[key];
    if (typeof v !== "string" || v.length > MAX_BINARY_BASE64_CHARS || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) {
      return { invalid: "the ConfigMap's binaryData value is not base64 of at most 1 MiB" };
    }
    return { bytes: Buffer.from(v, "base64") };
  }
  return null;
}

function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}
