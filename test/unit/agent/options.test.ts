import assert from "node:assert/strict";
import { test } from "node:test";
import { parseRunOptions, RUN_FLAGS, runUsage } from "../../../agent/commands/run-options.ts";
import { envName, parseDuration, parseListenAddress } from "../../../agent/shared/cli-values.ts";

test("defaults are the documented ones (README flag table)", () => {
  const r = parseRunOptions([], {}, "host-1");
  assert.ok(r.ok);
  assert.deepEqual(r.options, {
    configDir: "/etc/sfu",
    configKey: "config.yaml",
    listen: { host: "127.0.0.1", port: 7070 },
    push: null,
    http: { host: "0.0.0.0", port: 9090 },
    httpAllowedHosts: [],
    podIp: null,
    topicArn: null,
    queueUrl: null,
    statusTopicArn: null,
    podName: "host-1",
    queuePrefix: "sfu-config-",
    region: null,
    endpointUrl: null,
    tokenFile: null,
    secretsDir: "/etc/sfu/secrets",
    ackTimeoutMs: 10_000,
    propagationTimeoutMs: 300_000,
    resyncIntervalMs: 60_000,
    logLevel: "info",
    rolloutKey: "rollout.yaml",
    rolloutState: null,
    rolloutStateCache: null,
    healthReportIntervalMs: 10_000,
  });
});

test("rollout flags: --rollout-key, --rollout-state (s3://BUCKET/KEY), --health-report-interval", () => {
  const r = parseRunOptions(
    [
      "--rollout-key",
      "canary.yaml",
      "--rollout-state",
      "s3://sfu-rollout/prod/state.json",
      "--health-report-interval",
      "5s",
    ],
    {},
    "h",
  );
  assert.ok(r.ok);
  assert.equal(r.options.rolloutKey, "canary.yaml");
  assert.equal(r.options.rolloutState, "s3://sfu-rollout/prod/state.json");
  assert.equal(r.options.healthReportIntervalMs, 5_000);
  const env = parseRunOptions([], { SFU_AGENT_ROLLOUT_STATE: "s3://b-1/k" }, "h");
  assert.ok(env.ok && env.options.rolloutState === "s3://b-1/k");
  for (const [argv, message] of [
    [["--rollout-state", "https://bucket/key"], /--rollout-state: "https:\/\/bucket\/key" is not s3:\/\/BUCKET\/KEY/],
    [["--rollout-key", "../x"], /--rollout-key: "..\/x" must be a plain file name/],
    [["--rollout-key", "config.yaml"], /--rollout-key: "config.yaml" must differ from --config-key/],
    [["--health-report-interval", "10"], /--health-report-interval: "10" is not a duration/],
  ] as const) {
    const bad = parseRunOptions([...argv], {}, "h");
    assert.ok(!bad.ok, argv.join(" "));
    assert.match(bad.error.message, message);
  }
});

test("env SFU_AGENT_<FLAG> fills in, flags win, POD_NAME is the pod-name fallback", () => {
  const env = {
    SFU_AGENT_CONFIG_DIR: "/from/env",
    SFU_AGENT_ACK_TIMEOUT: "500ms",
    SFU_AGENT_LOG_LEVEL: "debug",
    POD_NAME: "pod-a",
    SFU_AGENT_STATUS_TOPIC_ARN: "arn:aws:sns:eu-west-1:1:s",
  };
  const r = parseRunOptions(["--config-dir", "/from/flag"], env, "h");
  assert.ok(r.ok);
  assert.equal(r.options.configDir, "/from/flag");
  assert.equal(r.options.ackTimeoutMs, 500);
  assert.equal(r.options.logLevel, "debug");
  assert.equal(r.options.podName, "pod-a");
  assert.equal(r.options.statusTopicArn, "arn:aws:sns:eu-west-1:1:s");
  assert.equal(envName("propagation-timeout"), "SFU_AGENT_PROPAGATION_TIMEOUT");
});

test("--secrets-dir comes from the flag or SFU_AGENT_SECRETS_DIR; empty is refused", () => {
  const fromEnv = parseRunOptions([], { SFU_AGENT_SECRETS_DIR: "/run/secrets" }, "h");
  assert.ok(fromEnv.ok && fromEnv.options.secretsDir === "/run/secrets");
  const fromFlag = parseRunOptions(["--secrets-dir", "/x"], { SFU_AGENT_SECRETS_DIR: "/run/secrets" }, "h");
  assert.ok(fromFlag.ok && fromFlag.options.secretsDir === "/x");
  const empty = parseRunOptions(["--secrets-dir", " "], {}, "h");
  assert.ok(!empty.ok);
  assert.match(empty.error.message, /--secrets-dir: must not be empty/);
});

test("bad values are all reported, naming the flag or variable", () => {
  const r = parseRunOptions(["--ack-timeout", "10", "--http", "9090", "--topic-arn", "a", "--queue-url", "b"], {
    SFU_AGENT_LOG_LEVEL: "loud",
  });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.error.code, "INVALID_OPTIONS");
  assert.match(r.error.message, /--ack-timeout: "10" is not a duration/);
  assert.match(r.error.message, /--http: "9090" is not host:port/);
  assert.match(r.error.message, /SFU_AGENT_LOG_LEVEL: "loud"/);
  assert.match(r.error.message, /exclusive/);
  const unknown = parseRunOptions(["--nope"], {});
  assert.equal(unknown.ok, false);
  const positional = parseRunOptions(["file.yaml"], {});
  assert.equal(positional.ok, false);
  const key = parseRunOptions(["--config-key", "../x"], {});
  assert.equal(key.ok, false);
});

test("durations and addresses", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("10s"), 10_000);
  assert.equal(parseDuration("1.5s"), 1_500);
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  for (const bad of ["10", "s", "-1s", "1 d", "", "1e3s"]) assert.equal(parseDuration(bad), null, bad);
  assert.deepEqual(parseListenAddress("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
  assert.deepEqual(parseListenAddress("[::1]:7070"), { host: "::1", port: 7070 });
  assert.deepEqual(parseListenAddress("localhost:80"), { host: "localhost", port: 80 });
  for (const bad of ["7070", ":7070", "host:70000", "a b:1"]) assert.equal(parseListenAddress(bad), null, bad);
});

test("usage lists every flag", () => {
  const u = runUsage();
  for (const [name] of RUN_FLAGS) assert.ok(u.includes(`--${name}`), name);
});

test("--push / SFU_AGENT_PUSH: an http(s) URL without userinfo, exclusive with an explicit --listen", () => {
  const flag = parseRunOptions(["--push", "http://127.0.0.1:8080/sfu-config"], {});
  assert.ok(flag.ok);
  assert.equal(flag.options.push, "http://127.0.0.1:8080/sfu-config");
  const env = parseRunOptions([], { SFU_AGENT_PUSH: "https://sfu.local/config?x=1" });
  assert.ok(env.ok);
  assert.equal(env.options.push, "https://sfu.local/config?x=1");
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["--push", "ws://127.0.0.1:1/x"], {}, /--push: must be an http:\/\/ or https:\/\/ URL/],
    [["--push", "not a url"], {}, /--push: "not a url" is not a URL/],
    [["--push", "http://u:secret@127.0.0.1/x"], {}, /must not carry user:password/],
    [["--push", "http://127.0.0.1/x#frag"], {}, /fragment/],
    [["--push", "http://127.0.0.1/x", "--listen", "127.0.0.1:7070"], {}, /--listen and --push are exclusive/],
    [
      [],
      { SFU_AGENT_PUSH: "http://127.0.0.1/x", SFU_AGENT_LISTEN: "127.0.0.1:1" },
      /SFU_AGENT_LISTEN and SFU_AGENT_PUSH/,
    ],
  ];
  for (const [argv, e, re] of cases) {
    const r = parseRunOptions(argv, e);
    assert.equal(r.ok, false, argv.join(" "));
    if (!r.ok) {
      assert.match(r.error.message, re);
      assert.doesNotMatch(r.error.message, /secret/);
    }
  }
});

test("--http-allowed-hosts (or its variable) lists extra Host names; POD_IP is read from env", () => {
  const r = parseRunOptions(["--http-allowed-hosts", "sfu-agent.sfu.svc, Agent.Example.com."], { POD_IP: "10.1.2.3" });
  assert.ok(r.ok);
  assert.deepEqual(r.options.httpAllowedHosts, ["sfu-agent.sfu.svc", "agent.example.com."]);
  assert.equal(r.options.podIp, "10.1.2.3");
  const e = parseRunOptions([], { SFU_AGENT_HTTP_ALLOWED_HOSTS: "a.local,10.0.0.9,[fd00::1]" });
  assert.ok(e.ok);
  assert.deepEqual(e.options.httpAllowedHosts, ["a.local", "10.0.0.9", "[fd00::1]"]);
  const bad = parseRunOptions(["--http-allowed-hosts", "*.example.com,host:9090"], {});
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? "" : bad.error.message, /--http-allowed-hosts: "\*\.example\.com" is not a host name or IP/);
  assert.match(bad.ok ? "" : bad.error.message, /"host:9090"/);
});
